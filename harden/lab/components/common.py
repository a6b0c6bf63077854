"""Start-up checks shared by the emulated components: files as the container sees them, TLS."""

from __future__ import annotations

import os
import posixpath
import sys

from harden.lab.components import podenv

GO_CIPHER_SUITES = set("""
TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256
TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA
TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA
TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305
TLS_RSA_WITH_RC4_128_SHA TLS_RSA_WITH_3DES_EDE_CBC_SHA TLS_RSA_WITH_AES_128_CBC_SHA
TLS_RSA_WITH_AES_256_CBC_SHA TLS_RSA_WITH_AES_128_CBC_SHA256 TLS_RSA_WITH_AES_128_GCM_SHA256
TLS_RSA_WITH_AES_256_GCM_SHA384 TLS_ECDHE_ECDSA_WITH_RC4_128_SHA TLS_ECDHE_RSA_WITH_RC4_128_SHA
TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256
TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256
""".split())


class StartupError(Exception):
    """The component refuses to start; the message is what the real one logs."""


def cipher_errors(names: list[str]) -> list[str]:
    return [f"Cipher suite {name} not supported or doesn't exist" for name in names
            if name and name not in GO_CIPHER_SUITES]


def lab_note(message: str) -> None:
    """An extra log line for lab users (why a path is invisible), marked as the lab's own."""
    print(f"I harden-lab] {message}", file=sys.stderr, flush=True)


class FileView:
    """The container's file system: only paths under a volumeMount exist for it."""

    def __init__(self, mounts: list[podenv.Mount] | None):
        self.mounts = mounts

    @classmethod
    def from_env(cls) -> FileView:
        return cls(podenv.pod_mounts())

    def require(self, path: str) -> str:
        """Host path of container path `path`; StartupError (ENOENT) when the container can't
        see it, either because nothing is mounted there or because the file is missing."""
        host = podenv.visible_host_path(path, self.mounts)
        if host is None:
            lab_note(f"{path} exists for the container only through a hostPath volume + "
                     f"volumeMount; no volumeMount of this pod covers it")
            raise StartupError(f"open {path}: no such file or directory")
        if not os.path.exists(host):
            raise StartupError(f"open {path}: no such file or directory")
        return host

    def open_for_append(self, path: str) -> str:
        """Create/append a log file (the audit log is opened at start-up: ensureLogFile)."""
        host = podenv.visible_host_path(path, self.mounts)
        writable = self.mounts is None or any(
            not m.read_only and (posixpath.normpath(path) + "/").startswith(
                posixpath.normpath(m.mount_path).rstrip("/") + "/") for m in self.mounts)
        if host is None or not os.path.isdir(os.path.dirname(host)):
            if host is None:
                lab_note(f"no volumeMount of this pod covers {path}")
            raise StartupError(f"ensureLogFile: open {path}: no such file or directory")
        if not writable:
            raise StartupError(f"ensureLogFile: open {path}: read-only file system")
        fd = os.open(host, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        os.close(fd)
        return host


def check_tls_pair(view: FileView, cert_path: str, key_path: str) -> None:
    """tls.LoadX509KeyPair: PEM present, key parses, key matches the certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(view.require(cert_path), "rb") as handle:
        cert_data = handle.read()
    with open(view.require(key_path), "rb") as handle:
        key_data = handle.read()
    prefix = f"failed to load x509 key pair {cert_path}, {key_path}"
    try:
        certs = x509.load_pem_x509_certificates(cert_data)
    except ValueError:
        raise StartupError(f"{prefix}: tls: failed to find any PEM data in certificate input") from None
    try:
        key = serialization.load_pem_private_key(key_data, password=None)
    except (ValueError, TypeError):
        raise StartupError(f"{prefix}: tls: failed to find any PEM data in key input") from None
    def der(public_key) -> bytes:
        return public_key.public_bytes(serialization.Encoding.DER,
                                       serialization.PublicFormat.SubjectPublicKeyInfo)

    if der(certs[0].public_key()) != der(key.public_key()):
        raise StartupError(f"{prefix}: tls: private key does not match public key")
