"""Health waiting: N healthy polls in a row, the old process never counts, and probes fetched
through a tunnel (HTTP and HTTPS over a socket standing in for the direct-tcpip channel)."""

from __future__ import annotations

import datetime
import http.server
import os
import socket
import ssl
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from harden.apply.health import tunnel_status, wait_healthy
from harden.apply.modules.wait_for_static_pod import (LOG_LINE_CHARS, LOG_LINES, POD_LOG_ROOT,
                                                     HttpProbe, PodLogs, WaitSpec)
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


def test_a_container_that_keeps_exiting_fails_at_once_with_its_own_error():
    crash = ("H 0 000\nR 2\n"
             "T 2026-12-05T10:00:00.000000001Z stderr F Error: unknown flag: --no-such-flag\n"
             "T 2026-12-05T10:00:00.000000002Z stderr F Run 'kube-apiserver --help' for usage.\n")
    session = ScriptedSession(["H 0 000\nR 0\n", crash])
    result = wait_healthy(session, spec(timeout=60), sleep=lambda s: None)
    assert not result.healthy and result.crashed and session.polls == 2
    assert result.detail.startswith("static pod kube-apiserver: the new container exited 2 time")
    assert "Error: unknown flag: --no-such-flag | Run 'kube-apiserver --help'" in result.detail
    assert result.failure(300).startswith("failed to start: static pod kube-apiserver")


def test_new_processes_that_die_between_polls_count_as_exits_without_any_log():
    session = ScriptedSession(["P 201 0\nH 0 000\n", "H 0 000\n", "P 202 0\nH 0 000\n",
                               "H 0 000\n"])
    result = wait_healthy(session, spec(timeout=60), previous_pids={100}, sleep=lambda s: None)
    assert result.crashed and session.polls == 4
    assert "exited 2 time(s)" in result.detail and "no container log found" in result.detail


def test_a_restarted_container_that_is_healthy_now_is_not_failed():
    session = ScriptedSession(["P 300 1\nH 0 200\nR 3\n"])
    assert wait_healthy(session, spec(timeout=60), sleep=lambda s: None).healthy


def test_a_slow_starter_restarted_by_its_probes_but_running_now_is_waited_for():
    session = ScriptedSession(["P 301 1\nH 0 000\nR 3\n", "P 302 1\nH 0 000\nR 4\n",
                               "P 302 2\nH 0 200\nR 4\n", "P 302 3\nH 0 200\nR 4\n"])
    result = wait_healthy(session, spec(timeout=60), sleep=lambda s: None)
    assert result.healthy and session.polls == 4


def test_max_restarts_zero_waits_for_the_timeout():
    wait = spec(timeout=0.2)
    wait.max_restarts = 0
    result = wait_healthy(ScriptedSession(["H 0 000\nR 9\n"]), wait, sleep=lambda s: None)
    assert not result.crashed and result.failure(0.2).startswith("not healthy after 0.2s")


def _pod_log_script(tmp_path, manifest_age: float):
    """The node-side part of a poll, run by sh against a /var/log/pods stand-in."""
    root = tmp_path / "pods"
    manifest = tmp_path / "kube-apiserver.yaml"
    manifest.write_text("x")
    os.utime(manifest, (time.time() - manifest_age,) * 2)
    logs = PodLogs("kube-system", "kube-apiserver", "kube-apiserver", str(manifest))
    return root, logs.shell().replace(POD_LOG_ROOT, str(root))


def _run_sh(script: str) -> str:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout


def test_pod_log_script_reads_the_newest_pod_created_after_the_write(tmp_path):
    root, script = _pod_log_script(tmp_path, manifest_age=60)
    old = root / "kube-system_kube-apiserver-cp1_aaa" / "kube-apiserver"
    old.mkdir(parents=True)
    (old / "7.log").write_text("old pod\n")
    os.utime(old.parent, (time.time() - 120,) * 2)         # created before the write
    assert _run_sh(script) == ""
    new = root / "kube-system_kube-apiserver-cp1_bbb" / "kube-apiserver"
    new.mkdir(parents=True)
    (new / "0.log").write_text("2026-12-05T10:00:00Z stderr F first\n")
    (new / "1.log").write_text("")                          # the current attempt, no output yet
    out = _run_sh(script)
    assert out == "R 1\nT 2026-12-05T10:00:00Z stderr F first\n"
    assert WaitSpec("x", ["a"], [], 1, 1, 0).interpret(out).log_tail == ["first"]


def test_pod_log_script_bounds_what_a_node_sends(tmp_path):
    root, script = _pod_log_script(tmp_path, manifest_age=60)
    new = root / "kube-system_kube-apiserver-cp1_bbb" / "kube-apiserver"
    new.mkdir(parents=True)
    (new / "0.log").write_text(("y" * 10000 + "\n") * 50)
    lines = _run_sh(script).splitlines()
    assert lines[0] == "R 0" and len(lines) == 1 + LOG_LINES
    assert all(len(line) <= LOG_LINE_CHARS + 2 for line in lines)


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
