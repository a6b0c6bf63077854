"""`wait_for_static_pod` / `wait_for_kubelet`: what to wait for, the node-side check and its
verdict. The check command is run here with the local sh against a real process and a real
HTTP listener on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from harden.errors import InputError
from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed
from harden.apply.modules.wait_for_static_pod import HttpProbe
from support.modules import file_state, kubelet_process, make_facts, manifest_text, plan

APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def spec_for(module, args, facts):
    mod = get_module(module)
    return mod.wait_spec(mod.validate(args), facts)


def test_static_pod_spec_from_manifest():
    facts = make_facts(file_state(APISERVER, manifest_text("kube-apiserver.yaml")))
    assert plan("wait_for_static_pod", {"name": "kube-apiserver"}, facts) == []
    spec = spec_for("wait_for_static_pod", {"name": "kube-apiserver", "successes": 5}, facts)
    assert spec.argv[:2] == ["kube-apiserver", "--advertise-address=192.168.56.11"]
    assert [p.url for p in spec.probes] == ["https://192.168.56.11:6443/livez",   # deduplicated
                                            "https://192.168.56.11:6443/readyz"]
    assert spec.successes == 5 and spec.timeout == 300


def test_pacing_comes_from_arguments_then_variables_then_defaults():
    facts = make_facts(file_state(APISERVER, manifest_text("kube-apiserver.yaml")))
    mod = get_module("wait_for_static_pod")
    default = mod.wait_spec(mod.validate({"name": "kube-apiserver"}), facts)
    assert (default.successes, default.interval) == (3, 2.0)
    tuned = {"harden_wait_interval": "0.5", "harden_wait_successes": 2}
    from_vars = mod.wait_spec(mod.validate({"name": "kube-apiserver"}), facts, tuned)
    assert (from_vars.successes, from_vars.interval) == (2, 0.5)
    explicit = mod.validate({"name": "kube-apiserver", "interval": "1.5", "successes": 4})
    spec = mod.wait_spec(explicit, facts, tuned)
    assert (spec.successes, spec.interval) == (4, 1.5)
    with pytest.raises(InputError, match="non-negative number"):
        mod.validate({"name": "kube-apiserver", "interval": "soon"})


def test_etcd_probe_keeps_query_and_scheme():
    path = "/etc/kubernetes/manifests/etcd.yaml"
    facts = make_facts(file_state(path, manifest_text("etcd.yaml")))
    spec = spec_for("wait_for_static_pod", {"name": "etcd"}, facts)
    assert [p.url for p in spec.probes] == [                      # startup, then liveness
        "http://127.0.0.1:2381/health?serializable=false",
        "http://127.0.0.1:2381/health?exclude=NOSPACE&serializable=true"]


def test_interpret_requires_a_new_process_and_passing_probes():
    facts = make_facts(file_state(APISERVER, manifest_text("kube-apiserver.yaml")))
    spec = spec_for("wait_for_static_pod", {"name": "kube-apiserver"}, facts)
    ok = spec.interpret("P 4242 7\nH 0 200\nH 1 200\n")
    assert ok.healthy() and not ok.healthy(previous_pids={4242})
    assert not spec.interpret("P 4242 7\nH 0 200\nH 1 401\n").healthy()
    assert not spec.interpret("H 0 200\nH 1 200\n").healthy()        # old args still running
    assert spec.interpret("P 1 1\nH 0 none\nH 1 none\n").needs_tunnel()


def test_missing_manifest_fails():
    with pytest.raises(TaskFailed, match="does not exist"):
        plan("wait_for_static_pod", {"name": "kube-apiserver"}, make_facts(absent=[APISERVER]))


def test_kubelet_spec_follows_its_config():
    config = b"kind: KubeletConfiguration\nhealthzBindAddress: 127.0.0.2\nhealthzPort: 10249\n"
    facts = make_facts(file_state("/var/lib/kubelet/config.yaml", config),
                       kubelet=kubelet_process())
    spec = spec_for("wait_for_kubelet", {}, facts)
    assert [p.url for p in spec.probes] == ["http://127.0.0.2:10249/healthz"]
    assert spec.service == "kubelet" and spec.argv is None
    assert spec.interpret("S active\nH 0 200\n").healthy()
    assert not spec.interpret("S failed\nH 0 200\n").healthy()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def http_component():
    port = _free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd="/")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield argv, port, proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_check_command_finds_the_process_and_probes_it(http_component):
    argv, port, pid = http_component
    manifest = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n"
                "  - command:\n" + "".join(f"    - '{a}'\n" for a in argv) +
                "    livenessProbe:\n      httpGet:\n        host: 127.0.0.1\n        path: /\n"
                f"        port: {port}\n        scheme: HTTP\n    name: web\n")
    path = "/etc/kubernetes/manifests/web.yaml"
    facts = make_facts(file_state(path, manifest.encode()))
    spec = spec_for("wait_for_static_pod", {"name": "web"}, facts)
    out = subprocess.run(["sh", "-s"], input=spec.check_command(), capture_output=True,
                         text=True, check=True).stdout
    result = spec.interpret(out)
    assert result.pids == [pid]
    assert result.probe_status == {"0": "200"}
    assert result.healthy() and not result.healthy(previous_pids={pid})


def test_probe_to_a_closed_port_is_not_healthy():
    probe = HttpProbe("HTTP", "127.0.0.1", _free_port(), "/healthz")
    out = subprocess.run(["sh", "-c", probe.shell("0")], capture_output=True, text=True).stdout
    assert out.split()[:2] == ["H", "0"] and out.split()[2] in ("000", "none")
