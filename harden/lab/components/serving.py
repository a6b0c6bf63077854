"""HTTPS serving for emulated control-plane components, with the real servers' auth answers.

A component answers like the real one: a client certificate signed by --client-ca-file (or a
token from --token-auth-file) authenticates; otherwise the request is anonymous, which the
component's `allow_anonymous` policy accepts or refuses with a 401 Status object.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

UNAUTHORIZED = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


def klog_error(message: str, where: str = "run.go:72") -> None:
    """Print one klog-formatted error line, as Kubernetes components do before exiting."""
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
    print(f"E{stamp} {os.getpid():>7} {where}] {message}", file=sys.stderr, flush=True)


# the Kubernetes version every emulated component reports (`--version`, the API's /version);
# the lab gives its nodes the kubectl of this minor version where the machine has several
MINOR = 33
VERSION = f"v1.{MINOR}.0-harden-lab"


def informational(command: str, flags) -> int | None:
    """--help / --version print and exit 0 before any validation, as cobra/verflag do."""
    if flags.get("help"):
        print(f"Usage:\n  {command} [flags]\n\n(harden lab emulation of {command})")
        return 0
    if flags.has("version"):
        print(f"Kubernetes {VERSION}")
        return 0
    return None


def command_failed(err: str) -> int:
    """How cli.Run reports a RunE error: klog `"command failed" err=...`, exit status 1."""
    klog_error(f'"command failed" err={json.dumps(err)}')
    return 1


def flag_error(command: str, err: str) -> int:
    """How cobra reports a flag parse error: `Error: ...` then a usage hint, exit status 1."""
    print(f"Error: {err}\nRun '{command} --help' for usage.", file=sys.stderr, flush=True)
    return 1


def self_signed_pem(host: str) -> tuple[bytes, bytes]:
    """(cert, key) PEM of a fresh self-signed serving cert, as components make when no
    --tls-cert-file is given."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{host}@{int(time.time())}")])
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        sans.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        sans.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def server_context(cert: str | None, key: str | None, client_ca: str | None,
                   host: str) -> ssl.SSLContext:
    """TLS context from host paths; a self-signed pair when no cert is configured."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert and key:
        context.load_cert_chain(cert, key)
    else:
        # load_cert_chain reads only files: the pair exists in a private 0700 directory for
        # the moment of loading, and is removed on any error too
        cert_pem, key_pem = self_signed_pem(host)
        with tempfile.TemporaryDirectory(prefix="harden-lab-tls-") as directory:
            cert_path, key_path = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
            for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
                with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                    handle.write(data)
            context.load_cert_chain(cert_path, key_path)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


@dataclass
class Request:
    path: str
    query: str
    user: str | None      # None = anonymous
    headers: dict = field(default_factory=dict)
    source: str = ""      # client IP
    method: str = "GET"
    body: bytes = b""
    groups: tuple = ()    # the client certificate's O values, or the token file's groups


Responder = Callable[[Request], tuple[int, str, bytes]]


def _peer_identity(connection) -> tuple[str | None, tuple]:
    """(user, groups) of a verified client certificate: CN and every O, as the x509 authenticator
    maps them; (None, ()) without one."""
    try:
        cert = connection.getpeercert()
    except (ValueError, AttributeError):
        return None, ()
    if not cert:
        return None, ()
    user, groups = "unknown", []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return user, tuple(groups)


def _peer_user(connection) -> str | None:
    return _peer_identity(connection)[0]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as Go's net/http server sets on every connection: http.server writes the
    # headers and the body in two sends, and with Nagle on a kept-alive connection the body
    # then waits for the client's delayed ACK of the headers (~40 ms per request), which a
    # real API server, etcd or kubelet never makes a client wait
    disable_nagle_algorithm = True
    responder: Responder
    tokens: dict[str, str]

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        path, _, query = self.path.partition("?")
        user, groups = _peer_identity(self.connection)
        auth = self.headers.get("Authorization", "")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if user is None and auth.startswith("Bearer "):
            entry = self.tokens.get(auth[7:].strip())
            if entry is None:
                return self._send(401, "application/json", json.dumps(UNAUTHORIZED).encode())
            user, groups = (entry, ()) if isinstance(entry, str) else entry
        status, content_type, body = self.responder(Request(
            path, query, user, dict(self.headers), self.client_address[0], self.command, body,
            groups))
        self._send(status, content_type, body)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815 (the responder routes by method)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        return


class _TLSServer(ThreadingHTTPServer):
    """Threaded server whose socket may be TLS-wrapped after binding."""

    daemon_threads = True
    allow_reuse_address = True


def serve_https(host: str, port: int, context: ssl.SSLContext, responder: Responder,
                tokens: dict[str, str] | None = None) -> ThreadingHTTPServer:
    """Bind now (so bind errors surface at start-up) and serve in a daemon thread."""
    handler = type("Handler", (_Handler,), {"responder": staticmethod(responder),
                                            "tokens": tokens or {}})
    server = _TLSServer((host, port), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600},
                     daemon=True).start()
    return server


def serve_http(host: str, port: int, responder: Responder) -> ThreadingHTTPServer:
    """Plain-HTTP variant (etcd's metrics URL)."""
    handler = type("Handler", (_Handler,), {"responder": staticmethod(responder), "tokens": {}})
    server = _TLSServer((host, port), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600},
                     daemon=True).start()
    return server


def health_body(checks: dict[str, bool], verbose: bool, name: str) -> tuple[int, bytes]:
    """The /livez and /readyz answer format: `ok`, or a verbose list of [+]/[-] checks."""
    healthy = all(checks.values())
    if verbose or not healthy:
        lines = [f"[+]{check} ok" if ok else f"[-]{check} failed: reason withheld"
                 for check, ok in checks.items()]
        lines.append(f"{name} check passed" if healthy else f"{name} check failed")
        return (200 if healthy else 500), ("\n".join(lines) + "\n").encode()
    return 200, b"ok"


def wait_forever() -> None:
    """Keep the main thread (and its signal handling) alive while servers run in threads."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()
