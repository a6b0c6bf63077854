"""controller-manager, scheduler and etcd emulator rules, and probe judging."""

from __future__ import annotations

import http.server
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

from harden.lab import procname
from harden.lab.components import controller_manager, delegated, etcd, podenv, probes, scheduler
from harden.lab.components.common import FileView, StartupError
from harden.lab.components.flags import FlagSet
from harden.lab.components.staticpod import Probe

KUBECONFIG = ("apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster: {server: https://x}\n"
              "contexts:\n- name: c\n  context: {cluster: k, user: u}\nusers:\n- name: u\n  user: {}\n")


def run_component(argv: list[str], tmp_path, wait_url: str | None = None, timeout: float = 10):
    """Start a component under its manifest name; return (process, exit code or None)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), procname.ARGV_ENV: json.dumps(argv),
           podenv.ROOT_ENV: str(tmp_path), "PYTHONPATH": ":".join(p for p in sys.path if p)}
    log = open(tmp_path / "component.log", "wb")
    proc = subprocess.Popen(procname.runner_argv(argv), env=env, stdout=log, stderr=log)
    return proc


def https_status(host: str, port: int, path: str, timeout: float = 10) -> int:
    probe = Probe("httpGet", {"host": host, "port": port, "path": path, "scheme": "HTTPS"},
                  0, 1, 1, 1, 1)
    deadline = time.monotonic() + timeout
    while True:
        ok, why = probes.run_probe(probe, {}, 1.0)
        if ok:
            return 200
        if "statuscode" in why:
            return int(why.rsplit(" ", 1)[-1])
        if time.monotonic() > deadline:
            raise AssertionError(why)
        time.sleep(0.05)


def address() -> tuple[str, int]:
    return f"127.64.{random.randint(1, 250)}.{random.randint(2, 250)}", random.randint(20000, 60000)


@pytest.mark.parametrize("module", [controller_manager, scheduler])
def test_delegated_component_serves_healthz_to_anonymous_only(module, tmp_path):
    (tmp_path / "kc.conf").write_text(KUBECONFIG)
    host, port = address()
    proc = run_component([module.COMMAND, f"--bind-address={host}", f"--secure-port={port}",
                          f"--kubeconfig=/kc.conf", f"--authentication-kubeconfig=/kc.conf",
                          "--profiling=false"], tmp_path)
    try:
        assert https_status(host, port, "/healthz") == 200
        assert https_status(host, port, "/metrics") == 403
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("argv,message", [
    (["kube-scheduler", "--port=10251"], "Error: unknown flag: --port"),
    (["kube-controller-manager", "--profiling=nope"], 'invalid argument "nope"'),
    (["kube-scheduler", "--kubeconfig=/missing.conf"], "open /missing.conf: no such file"),
    (["kube-scheduler", "--kubeconfig=/bad.conf"], "no configuration has been provided"),
    (["kube-scheduler", "--secure-port=70000"], "must be between 0 and 65535"),
    (["kube-controller-manager", "--cluster-signing-cert-file=/bad.conf"],
     "cannot specify --cluster-signing-cert-file without"),
    (["kube-scheduler", "--config=/bad.conf"], "is registered for version"),
    (["kube-controller-manager", "--tls-cipher-suites=RC4"], "Cipher suite RC4 not supported"),
])
def test_delegated_component_start_failures(argv, message, tmp_path):
    (tmp_path / "bad.conf").write_text("apiVersion: v1\nkind: Config\n")
    proc = run_component(argv, tmp_path)
    assert proc.wait(15) == 1
    assert message in (tmp_path / "component.log").read_text()


def test_scheduler_config_kind_check(tmp_path, monkeypatch):
    monkeypatch.setenv(podenv.ROOT_ENV, str(tmp_path))
    (tmp_path / "s.yaml").write_text("apiVersion: kubescheduler.config.k8s.io/v1\n"
                                     "kind: KubeSchedulerConfiguration\n")
    flags = FlagSet(scheduler.COMMAND, scheduler.FLAGS).parse(["--config=/s.yaml"])
    assert scheduler.validate(flags) == []
    (tmp_path / "s.yaml").write_text("apiVersion: kubescheduler.config.k8s.io/v1beta3\n"
                                     "kind: KubeSchedulerConfiguration\n")
    assert "is registered for version" in scheduler.validate(flags)[0]


def test_kubeconfig_must_have_clusters_and_contexts(tmp_path):
    (tmp_path / "k").write_text("clusters: []\n")
    with pytest.raises(StartupError, match="no configuration has been provided"):
        delegated.load_kubeconfig(FileView([podenv.Mount("/k", str(tmp_path / "k"))]), "/k")


def etcd_flags(*args: str):
    return etcd.parse(list(args))


def test_etcd_flag_parsing_like_go_flag_package():
    assert etcd_flags("-name=a", "--client-cert-auth=true").get("client-cert-auth") is True
    with pytest.raises(StartupError, match="flag provided but not defined: -bogus"):
        etcd_flags("--bogus=1")
    with pytest.raises(StartupError, match="'true' is not a valid flag"):
        etcd_flags("--client-cert-auth", "true")


@pytest.mark.parametrize("args,message", [
    (["--listen-client-urls=https://1.2.3.4:2379"], "TLS key/cert (--cert-file, --key-file)"),
    (["--listen-client-urls=http://1.2.3.4:2379", "--listen-peer-urls=https://1.2.3.4:2380"],
     "--peer-cert-file"),
    (["--listen-client-urls=https://1.2.3.4:2379", "--cert-file=/c", "--key-file=/k",
      "--client-cert-auth=true"], "requires --trusted-ca-file"),
    (["--listen-client-urls=http://1.2.3.4:2379", "--peer-client-cert-auth=true"],
     "requires --peer-trusted-ca-file"),
])
def test_etcd_tls_rules(args, message):
    errors = etcd.validate_tls(etcd_flags(*args))
    assert errors and message in errors[0]
    assert etcd.validate_tls(etcd_flags("--listen-client-urls=http://1.2.3.4:2379",
                                        "--listen-peer-urls=http://1.2.3.4:2380")) == []


def test_etcd_needs_certs_and_data_dir_mounted(tmp_path):
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki/ca.crt").write_text("x")
    view = FileView([podenv.Mount("/etc/kubernetes/pki/etcd", str(tmp_path / "pki"))])
    with pytest.raises(StartupError, match="data directory"):
        etcd.check_view(etcd_flags("--data-dir=/var/lib/etcd",
                                   "--trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt"), view)
    with pytest.raises(StartupError, match="open /etc/kubernetes/pki/etcd/server.crt"):
        etcd.check_view(etcd_flags("--cert-file=/etc/kubernetes/pki/etcd/server.crt"), view)


def test_etcd_paths_are_rooted_only_under_a_test_root(monkeypatch):
    monkeypatch.setenv(podenv.ROOT_ENV, "/tmp/r")
    assert etcd._rooted("--data-dir=/var/lib/etcd") == "--data-dir=/tmp/r/var/lib/etcd"
    assert etcd._rooted("--name=cp1") == "--name=cp1"


def test_etcd_emulation_serves_health(tmp_path):
    host, port = address()
    env_argv = ["etcd", f"--listen-client-urls=http://{host}:{port}",
                f"--listen-peer-urls=http://{host}:{port + 1}", "--data-dir=/d"]
    env = {"PATH": "/usr/bin:/bin", procname.ARGV_ENV: json.dumps(env_argv),
           etcd.EMULATE_ENV: "1", podenv.ROOT_ENV: str(tmp_path),
           "PYTHONPATH": ":".join(p for p in sys.path if p)}
    proc = subprocess.Popen(procname.runner_argv(env_argv), env=env)
    try:
        probe = Probe("httpGet", {"host": host, "port": port, "path": "/health"}, 0, 1, 1, 1, 1)
        deadline = time.monotonic() + 10
        while not probes.run_probe(probe, {}, 1.0)[0]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()


class _Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        code = int(self.path.strip("/"))
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        return


@pytest.fixture
def status_server():
    server = http.server.ThreadingHTTPServer(("127.64.0.2", 0), _Status)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address
    finally:
        server.shutdown()


@pytest.mark.parametrize("code,ok", [(200, True), (302, True), (399, True), (400, False),
                                     (401, False), (500, False)])
def test_http_probe_success_is_200_to_399(status_server, code, ok):
    host, port = status_server
    probe = Probe("httpGet", {"host": host, "port": "web", "path": f"/{code}"}, 0, 1, 1, 1, 1)
    assert probes.run_probe(probe, {"web": port}, 2.0)[0] is ok


def test_tcp_probe_and_unknown_named_port(status_server):
    host, port = status_server
    assert probes.run_probe(Probe("tcpSocket", {"host": host, "port": port}, 0, 1, 1, 1, 1), {}, 1)[0]
    ok, why = probes.run_probe(Probe("tcpSocket", {"host": host, "port": "nope"}, 0, 1, 1, 1, 1), {}, 1)
    assert not ok and "unknown named port" in why
    with socket.socket() as sock:
        sock.bind(("127.64.0.2", 0))
        closed = sock.getsockname()[1]
    assert not probes.run_probe(Probe("tcpSocket", {"host": host, "port": closed}, 0, 1, 1, 1, 1), {}, 1)[0]


def test_unspecified_hosts_map_to_the_node_address(monkeypatch):
    monkeypatch.setenv(podenv.NODE_IP_ENV, "127.64.0.11")
    assert podenv.node_host("0.0.0.0") == "127.64.0.11" and podenv.node_host("") == "127.64.0.11"
    assert podenv.node_host("127.0.0.1") == "127.0.0.1"
    monkeypatch.delenv(podenv.NODE_IP_ENV)
    assert podenv.node_host("") == "127.0.0.1"


@pytest.mark.parametrize("argv,output", [(["kube-apiserver", "--help"], "Usage:"),
                                         (["kube-scheduler", "--version"], "Kubernetes v1."),
                                         (["kube-controller-manager", "-h"], "Usage:")])
def test_help_and_version_exit_zero_before_validation(argv, output, tmp_path):
    proc = run_component(argv, tmp_path)
    assert proc.wait(15) == 0
    assert output in (tmp_path / "component.log").read_text()
