"""Encryption at rest as kube-apiserver applies it to values it stores in etcd.

Driven by the EncryptionConfiguration of --encryption-provider-config: the first entry whose
resource list covers a resource decides; its first provider (first key) encrypts writes, and a
read tries every provider of that entry whose prefix the stored value carries. Value formats
are upstream's (staging/src/k8s.io/apiserver/pkg/storage/value/encrypt/):

* identity:  the plain value
* aescbc:    `k8s:enc:aescbc:v1:<key>:` + 16-byte IV + AES-CBC(PKCS#7 padded value)
* aesgcm:    `k8s:enc:aesgcm:v1:<key>:` + 12-byte nonce + AES-GCM(value, AAD = the etcd key)
* secretbox: `k8s:enc:secretbox:v1:<key>:` + 24-byte nonce + NaCl secretbox(value)

A value that no configured provider can read fails with the API server's error (`unable to
transform key ...`), never comes back as garbage.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

ENC_PREFIX = b"k8s:enc:"


class TransformError(Exception):
    """A stored value no configured provider can read (or a write no provider can make)."""


@dataclass
class Provider:
    kind: str                  # identity | aescbc | aesgcm | secretbox | kms
    key_name: str = ""
    secret: bytes = b""

    @property
    def prefix(self) -> bytes:
        if self.kind == "identity":
            return b""
        return f"k8s:enc:{self.kind}:v1:{self.key_name}:".encode()

    def seal(self, data: bytes, key: str) -> bytes:
        if self.kind == "identity":
            return data
        return self.prefix + SEALERS[self.kind](self.secret, data, key.encode())

    def open(self, data: bytes, key: str) -> bytes:
        if self.kind == "identity":
            if data.startswith(ENC_PREFIX):
                raise TransformError("identity transformer tried to read encrypted data")
            return data
        return OPENERS[self.kind](self.secret, data[len(self.prefix):], key.encode())


# --- primitives (the `cryptography` package; secretbox through PyNaCl) ---------------------------

def _cbc_seal(secret: bytes, data: bytes, _aad: bytes) -> bytes:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    return iv + encryptor.update(padded) + encryptor.finalize()


def _cbc_open(secret: bytes, data: bytes, _aad: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if len(data) < 16:
        raise TransformError("the stored data was shorter than the required size")
    iv, body = data[:16], data[16:]
    if len(body) % 16:
        raise TransformError("the stored data is not a multiple of the block size")
    decryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).decryptor()
    plain = decryptor.update(body) + decryptor.finalize()
    pad = plain[-1] if plain else 0
    if not plain or not 1 <= pad <= 16 or plain[-pad:] != bytes([pad]) * pad:
        raise TransformError("invalid PKCS7 data (empty or not padded)")
    return plain[:-pad]


def _gcm_seal(secret: bytes, data: bytes, aad: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    return nonce + AESGCM(secret).encrypt(nonce, data, aad)


def _gcm_open(secret: bytes, data: bytes, aad: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(data) < 12:
        raise TransformError("the stored data was shorter than the required size")
    try:
        return AESGCM(secret).decrypt(data[:12], data[12:], aad)
    except InvalidTag:
        raise TransformError("cipher: message authentication failed") from None


def _secretbox():
    try:
        import nacl.secret
    except ImportError:
        raise TransformError("secretbox needs PyNaCl on the lab machine (pip install pynacl)") \
            from None
    return nacl.secret


def _box_seal(secret: bytes, data: bytes, _aad: bytes) -> bytes:
    box = _secretbox().SecretBox(secret)
    return bytes(box.encrypt(data, os.urandom(24)))   # nonce + sealed box


def _box_open(secret: bytes, data: bytes, _aad: bytes) -> bytes:
    if len(data) < 24:
        raise TransformError("the stored data was shorter than the required size")
    import nacl.exceptions
    try:
        return _secretbox().SecretBox(secret).decrypt(data[24:], data[:24])
    except nacl.exceptions.CryptoError:
        raise TransformError("output array too small") from None


def _unsupported(kind: str) -> Callable[[bytes, bytes, bytes], bytes]:
    def fail(*_args) -> bytes:
        raise TransformError(f"{kind} provider is not available in the lab")
    return fail


SEALERS = {"aescbc": _cbc_seal, "aesgcm": _gcm_seal, "secretbox": _box_seal,
           "kms": _unsupported("kms")}
OPENERS = {"aescbc": _cbc_open, "aesgcm": _gcm_open, "secretbox": _box_open,
           "kms": _unsupported("kms")}


# --- configuration ----------------------------------------------------------------------------

def providers_of(entry: dict) -> list[Provider]:
    """Providers in config order, one per key (a provider's keys are tried in order)."""
    found = []
    for provider in entry.get("providers") or []:
        for kind, body in provider.items():
            if kind == "identity":
                found.append(Provider("identity"))
            elif kind == "kms":
                found.append(Provider("kms", str((body or {}).get("name", ""))))
            else:
                for key in (body or {}).get("keys") or []:
                    found.append(Provider(kind, str(key.get("name", "")),
                                          base64.b64decode(str(key.get("secret", "")))))
    return found


def covers(name: str, resource: str, group: str) -> bool:
    """Whether an EncryptionConfiguration resource name selects resource in API group."""
    if name == "*.*":
        return True
    head, _, tail = name.partition(".")
    if head == "*":
        return tail == group
    return head == resource and tail == group


class Transformers:
    """The running encryption configuration; reloaded when the file changes if asked to."""

    def __init__(self, path: str | None, load: Callable[[str], dict], auto_reload: bool):
        self.path, self.load, self.auto_reload = path, load, auto_reload
        self.entries: list[tuple[list[str], list[Provider]]] = []
        self.mtime = 0.0
        self.checked = 0.0
        self.lock = threading.Lock()
        if path:
            self._reload()

    def _reload(self) -> None:
        doc = self.load(self.path)
        self.entries = [([str(r) for r in e.get("resources") or []], providers_of(e))
                        for e in doc.get("resources") or []]
        self.mtime = os.stat(self.path).st_mtime

    def _maybe_reload(self) -> None:
        if not (self.path and self.auto_reload) or time.monotonic() - self.checked < 1.0:
            return
        with self.lock:
            self.checked = time.monotonic()
            try:
                if os.stat(self.path).st_mtime != self.mtime:
                    self._reload()
            except Exception:   # noqa: BLE001 - a bad new config keeps the old one, as upstream
                pass

    def providers(self, resource: str, group: str) -> list[Provider]:
        self._maybe_reload()
        for names, providers in self.entries:
            if any(covers(n, resource, group) for n in names):
                return providers
        return [Provider("identity")]

    def to_storage(self, resource: str, group: str, key: str, data: bytes) -> bytes:
        try:
            return self.providers(resource, group)[0].seal(data, key)
        except TransformError as err:
            raise TransformError(f'unable to transform key "{key}": {err}') from None

    def from_storage(self, resource: str, group: str, key: str, value: bytes) -> bytes:
        errors = []
        for provider in self.providers(resource, group):
            if not value.startswith(provider.prefix):
                continue
            try:
                return provider.open(value, key)
            except TransformError as err:
                errors.append(str(err))
                if provider.kind == "identity":   # upstream: identity failing falls through
                    continue
                break
        # upstream reduces the collected errors: one is itself, several print as a list
        reason = (errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]" if errors
                  else "no matching prefix found")
        raise TransformError(f'unable to transform key "{key}": {reason}')
