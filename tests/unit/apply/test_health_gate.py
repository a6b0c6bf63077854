"""Health waiting: N healthy polls in a row, the old process never counts, and probes fetched
through a tunnel (HTTP and HTTPS over a socket standing in for the direct-tcpip channel)."""

from __future__ import annotations

import datetime
import http.server
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harden.apply.health import tunnel_status, wait_healthy
from harden.apply.modules.wait_for_static_pod import HttpProbe, WaitSpec
from harden.ssh.session import CommandResult


class ScriptedSession:
    """Answers each poll with the next canned output of the node's check command."""

    def __init__(self, outputs: list[str], server=None):
        self.outputs = list(outputs)
        self.polls = 0
        self.server = server

    def run(self, command, *, become=None, stdin=None, timeout=None):
        self.polls += 1
        out = self.outputs.pop(0) if len(self.outputs) > 1 else self.outputs[0]
        return CommandResult(0, out.encode(), b"")

    def open_tcp(self, host, port, timeout=None):
        return socket.create_connection((host, port), timeout=timeout)


def spec(successes=2, timeout=5.0, probes=None) -> WaitSpec:
    return WaitSpec("static pod kube-apiserver", ["kube-apiserver", "--x=1"],
                    probes or [HttpProbe("HTTPS", "127.0.0.1", 6443, "/livez")], successes,
                    timeout, 0)


def test_needs_consecutive_successes_from_a_new_process():
    session = ScriptedSession(["P 100 50\nH 0 200\n",      # the old pod: does not count
                               "P 200 1\nH 0 200\n",
                               "P 200 2\nH 0 500\n",       # streak broken
                               "P 200 3\nH 0 200\n",
                               "P 200 4\nH 0 200\n"])
    result = wait_healthy(session, spec(), previous_pids={100}, sleep=lambda s: None)
    assert result.healthy and result.polls == 5


def test_gives_up_after_the_timeout_and_says_why():
    session = ScriptedSession(["H 0 200\n"])                 # no process with the new args
    result = wait_healthy(session, spec(timeout=0.2), sleep=lambda s: None)
    assert not result.healthy and result.polls >= 1
    assert "no process runs with the expected arguments" in result.detail
    only_old = wait_healthy(ScriptedSession(["P 100 9\nH 0 200\n"]), spec(timeout=0.2),
                            previous_pids={100}, sleep=lambda s: None)
    assert not only_old.healthy and "from before the change" in only_old.detail


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/livez" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(params=["HTTP", "HTTPS"])
def server(request, tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if request.param == "HTTPS":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*_self_signed(tmp_path))
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield request.param, httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_probes_go_through_the_tunnel_when_the_node_has_no_http_client(server):
    scheme, port = server
    live = HttpProbe(scheme, "127.0.0.1", port, "/livez")
    missing = HttpProbe(scheme, "127.0.0.1", port, "/nope")
    session = ScriptedSession(["P 7 1\nH 0 none\n"])
    assert tunnel_status(session, live) == "200"
    assert tunnel_status(session, missing) == "404"
    waited = wait_healthy(session, spec(successes=2, probes=[live]), sleep=lambda s: None)
    assert waited.healthy
    failing = wait_healthy(session, spec(timeout=0.2, probes=[missing]), sleep=lambda s: None)
    assert not failing.healthy and "404" in failing.detail


def test_a_closed_port_is_an_unhealthy_probe():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
    assert tunnel_status(ScriptedSession(["x"]), HttpProbe("HTTP", "127.0.0.1", port, "/")) \
        == "000"
