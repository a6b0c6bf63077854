"""The lab kubelet as a process: static pod rules, probes, crash loops, restarts, state file.

Each test runs a real kubelet on a private node root (HARDEN_LAB_ROOT) with a small time scale;
every process started under that root is killed afterwards, also when the test fails.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from harden.lab import procname
from harden.lab.components import container, podenv, staticpod

SCALE = "0.02"
HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"


def lab_address() -> tuple[str, int]:
    return f"127.64.{random.randint(1, 250)}.{random.randint(2, 250)}", random.randint(20000, 60000)


class Node:
    """A node root plus the kubelets started on it."""

    def __init__(self, root: Path):
        self.root = root
        self.manifests = root / "etc/kubernetes/manifests"
        self.manifests.mkdir(parents=True)
        (root / "var/lib/kubelet").mkdir(parents=True)
        (root / "etc/sysctl.d").mkdir(parents=True)
        self.healthz = lab_address()
        self.kubelets: list[subprocess.Popen] = []
        self.write_config("")

    def write_config(self, body: str) -> None:
        """`body` plus what every test node needs: its manifests dir and private addresses."""
        defaults = {"staticPodPath": "/etc/kubernetes/manifests", "address": self.healthz[0],
                    "port": self.healthz[1] + 1, "healthzBindAddress": self.healthz[0],
                    "healthzPort": self.healthz[1]}
        given = yaml.safe_load(body) or {}
        extra = "".join(f"{k}: {v}\n" for k, v in defaults.items() if k not in given)
        (self.root / "var/lib/kubelet/config.yaml").write_text(HEAD + body + extra)

    def env(self) -> dict:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), podenv.ROOT_ENV: str(self.root),
                podenv.TIME_SCALE_ENV: SCALE, "PYTHONPATH": ":".join(p for p in sys.path if p)}

    def start_kubelet(self, *extra: str) -> subprocess.Popen:
        log = open(self.root / "kubelet.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "harden.lab.kubelet",
                                 "--config=/var/lib/kubelet/config.yaml", *extra],
                                env=self.env(), stdout=log, stderr=log)
        log.close()
        self.kubelets.append(proc)
        return proc

    def state(self) -> dict:
        try:
            return json.loads((self.root / "var/lib/kubelet/harden-lab-pods.json").read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            result = predicate(state) if state else None
            if result:
                return result
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; state: {json.dumps(self.state(), indent=1)}")

    def pod(self, name: str) -> dict:
        return self.state().get("pods", {}).get(name, {})

    def write_manifest(self, filename: str, name: str, argv: list[str], **container_extra) -> None:
        doc = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": "kube-system"},
               "spec": {"hostNetwork": True, "containers": [
                   {"name": name, "image": f"registry.k8s.io/{name}:v1", "command": argv,
                    **container_extra}]}}
        volumes = container_extra.pop("_volumes", None)
        if volumes:
            doc["spec"]["volumes"] = volumes
            del doc["spec"]["containers"][0]["_volumes"]
        tmp = self.manifests / f".{filename}.tmp"
        tmp.write_text(yaml.safe_dump(doc))
        tmp.rename(self.manifests / filename)

    def cleanup(self) -> None:
        for proc in self.kubelets:
            proc.kill()
            proc.wait()
        marker = f"{podenv.ROOT_ENV}={self.root}".encode()
        for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
            try:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    if marker in handle.read().split(b"\0"):
                        os.kill(pid, signal.SIGKILL)
            except OSError:
                continue


@pytest.fixture
def node(tmp_path):
    lab_node = Node(tmp_path / "root")
    try:
        yield lab_node
    finally:
        lab_node.cleanup()


def running(name: str):
    return lambda s: s.get("pods", {}).get(name, {}).get("state") == "running" and s["pods"][name]


IDLE = ["lab-idle", "--alpha=1", "--beta=" + "b" * 80]


def test_static_pod_runs_with_the_manifest_argv_as_cmdline(node):
    node.write_manifest("idle.yaml", "idle", IDLE)
    node.start_kubelet()
    pod = node.wait(running("idle"), what="idle running")
    assert procname.read_cmdline(pod["pid"]) == IDLE
    assert pod["argv"] == IDLE and pod["restarts"] == 0 and pod["ready"] is True


def test_kubelet_retitles_itself_and_serves_healthz(node):
    proc = node.start_kubelet("--node-ip=127.64.0.9")
    node.wait(lambda s: s.get("kubelet", {}).get("healthz"), what="kubelet state")
    assert procname.read_cmdline(proc.pid) == ["kubelet", "--config=/var/lib/kubelet/config.yaml",
                                               "--node-ip=127.64.0.9"]
    import urllib.request

    host, port = node.healthz
    with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as response:
        assert response.read() == b"ok"


def test_dot_files_ignored_and_backup_copy_is_a_duplicate_pod(node):
    node.write_manifest("idle.yaml", "idle", IDLE)
    node.start_kubelet()
    first = node.wait(running("idle"))
    (node.manifests / ".idle.yaml.swp").write_text("not even yaml: [")
    node.write_manifest("idle.yaml.bak", "idle", IDLE + ["--old"])
    pod = node.wait(lambda s: s["pods"].get("idle", {}).get("duplicate_files") and s["pods"]["idle"],
                    what="duplicate error")
    assert pod["duplicate_files"] == ["idle.yaml", "idle.yaml.bak"]
    assert 'duplicate pod name "idle"' in pod["error"]
    assert pod["pid"] == first["pid"] and pod["argv"] == IDLE  # first in name order keeps running
    state = node.state()
    assert "idle.yaml.bak" in state["seen_files"] and ".idle.yaml.swp" not in state["seen_files"]
    assert ".idle.yaml.swp" in state["seen_ignored_files"] and not state["file_errors"]


def test_changed_manifest_replaces_the_pod(node):
    node.write_manifest("idle.yaml", "idle", IDLE)
    node.start_kubelet()
    old = node.wait(running("idle"))
    node.write_manifest("idle.yaml", "idle", IDLE + ["--profiling=false"])
    new = node.wait(lambda s: running("idle")(s) and s["pods"]["idle"]["pid"] != old["pid"]
                    and s["pods"]["idle"], what="new pod")
    assert procname.read_cmdline(new["pid"]) == IDLE + ["--profiling=false"]
    assert not container._alive(old["pid"])


def test_unparsable_manifest_stops_the_pod_at_the_next_relist(node):
    node.write_manifest("idle.yaml", "idle", IDLE)
    node.start_kubelet()
    old = node.wait(running("idle"))
    (node.manifests / "idle.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: [broken\n")
    state = node.wait(lambda s: "idle" not in s["pods"] and s, what="pod stopped")
    assert "Could not process manifest file" in state["file_errors"]["idle.yaml"]
    assert not container._alive(old["pid"])


def test_removed_manifest_stops_the_pod_and_transient_names_are_recorded(node):
    node.write_manifest("idle.yaml", "idle", IDLE)
    node.start_kubelet()
    old = node.wait(running("idle"))
    (node.manifests / "scratch").write_text("x")
    (node.manifests / "scratch").unlink()
    (node.manifests / "idle.yaml").unlink()
    state = node.wait(lambda s: "idle" not in s["pods"] and s)
    assert not container._alive(old["pid"])
    node.wait(lambda s: "scratch" in s["seen_files"], what="transient file recorded")


def test_crashing_container_is_restarted_with_back_off(node):
    node.write_manifest("kube-apiserver.yaml", "kube-apiserver", ["kube-apiserver", "--bogus=1"])
    node.start_kubelet()
    pod = node.wait(lambda s: s["pods"].get("kube-apiserver", {}).get("restarts", 0) >= 2
                    and s["pods"]["kube-apiserver"], what="two restarts")
    assert pod["state"] == "crash-looping" and pod["last_exit_code"] == 1
    assert "unknown flag: --bogus" in pod["last_error"]
    log = (node.root / "var/log/kubernetes/lab/kube-apiserver.log").read_text()
    assert log.count("Error: unknown flag: --bogus") >= 2


def test_crashing_container_attempts_are_logged_under_var_log_pods_as_a_kubelet_does(node):
    node.write_manifest("kube-apiserver.yaml", "kube-apiserver", ["kube-apiserver", "--bogus=1"])
    node.start_kubelet()
    pod = node.wait(lambda s: s["pods"].get("kube-apiserver", {}).get("restarts", 0) >= 3
                    and s["pods"]["kube-apiserver"], what="three restarts")
    dirs = list((node.root / "var/log/pods").glob("kube-system_kube-apiserver-*_*"))
    assert [d.name.rsplit("_", 1)[1] for d in dirs] == [pod["uid"]]
    files = sorted((dirs[0] / "kube-apiserver").iterdir())
    numbers = sorted(int(f.name[:-4]) for f in files)
    assert len(numbers) == 2 and numbers[1] == numbers[0] + 1     # current and previous only
    ended = (dirs[0] / "kube-apiserver" / f"{numbers[0]}.log").read_text().splitlines()
    assert ended and all(re.match(r"\d{4}-\d\d-\d\dT[\d:]+\.\d{9}Z stderr F ", line)
                         for line in ended)
    assert any(line.endswith("stderr F Error: unknown flag: --bogus") for line in ended)
    (node.manifests / "kube-apiserver.yaml").unlink()
    node.wait(lambda s: "kube-apiserver" not in s["pods"], what="pod gone")
    assert not dirs[0].exists()


def test_back_off_doubles_up_to_the_cap(monkeypatch):
    monkeypatch.setenv(podenv.TIME_SCALE_ENV, "1")
    runner = container.ContainerRunner.__new__(container.ContainerRunner)
    runner._backoff = 0.0
    delays = [runner._next_backoff() for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]


def apiserver_manifest(node: Node, *extra: str, startup_delay: int = 0) -> tuple[str, int]:
    host, port = lab_address()
    (node.root / "etc/kubernetes/pki").mkdir(parents=True, exist_ok=True)
    (node.root / "etc/kubernetes/pki/sa.key").write_text("unused by the emulator\n")
    probe = {"httpGet": {"host": host, "path": "/livez", "port": port, "scheme": "HTTPS"},
             "initialDelaySeconds": startup_delay, "periodSeconds": 10, "failureThreshold": 10,
             "timeoutSeconds": 15}
    node.write_manifest(
        "kube-apiserver.yaml", "kube-apiserver",
        ["kube-apiserver", f"--bind-address={host}", f"--secure-port={port}",
         "--etcd-servers=https://127.0.0.1:1", "--service-account-issuer=https://k",
         "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key", *extra],
        startupProbe=probe, livenessProbe=probe,
        readinessProbe={**probe, "httpGet": {**probe["httpGet"], "path": "/livez"}},
        volumeMounts=[{"name": "k8s-certs", "mountPath": "/etc/kubernetes/pki", "readOnly": True}],
        _volumes=[{"name": "k8s-certs", "hostPath": {"path": "/etc/kubernetes/pki",
                                                     "type": "DirectoryOrCreate"}}])
    return host, port


def test_probes_pass_for_a_healthy_apiserver(node):
    apiserver_manifest(node)
    node.start_kubelet()
    pod = node.wait(lambda s: s["pods"].get("kube-apiserver", {}).get("ready")
                    and s["pods"]["kube-apiserver"], what="apiserver ready")
    time.sleep(1.0)
    assert node.pod("kube-apiserver")["restarts"] == 0 and pod["state"] == "running"


def test_probes_getting_401_restart_the_container(node):
    apiserver_manifest(node, "--anonymous-auth=false")
    node.start_kubelet()
    pod = node.wait(lambda s: s["pods"].get("kube-apiserver", {}).get("restarts", 0) >= 1
                    and s["pods"]["kube-apiserver"], what="probe restart")
    assert "Startup probe failed: HTTP probe failed with statuscode: 401" in pod["last_error"]
    assert pod["ready"] is False


def test_file_not_mounted_crash_loops_until_mounted(node):
    enc = node.root / "etc/kubernetes/enc"
    enc.mkdir(parents=True)
    (enc / "enc.yaml").write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
                                  "resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n")
    apiserver_manifest(node, "--encryption-provider-config=/etc/kubernetes/enc/enc.yaml")
    node.start_kubelet()
    pod = node.wait(lambda s: s["pods"].get("kube-apiserver", {}).get("restarts", 0) >= 1
                    and s["pods"]["kube-apiserver"])
    assert "open /etc/kubernetes/enc/enc.yaml: no such file or directory" in pod["last_error"]


def test_missing_hostpath_file_keeps_pod_pending_until_it_exists(node):
    node.write_manifest("idle.yaml", "idle", IDLE,
                        volumeMounts=[{"name": "audit", "mountPath": "/etc/kubernetes/audit.yaml"}],
                        _volumes=[{"name": "audit", "hostPath": {"path": "/etc/kubernetes/audit.yaml",
                                                                 "type": "File"}}])
    node.start_kubelet()
    pod = node.wait(lambda s: s["pods"].get("idle", {}).get("state") == "pending" and s["pods"]["idle"])
    assert "hostPath type check failed: /etc/kubernetes/audit.yaml does not exist" in pod["last_error"]
    (node.root / "etc/kubernetes/audit.yaml").write_text("x")
    node.wait(running("idle"), what="pod started after the file appeared")


def test_kubelet_restart_keeps_and_adopts_running_containers(node):
    node.write_manifest("idle.yaml", "idle", IDLE)
    first = node.start_kubelet()
    pod = node.wait(running("idle"))
    first.send_signal(signal.SIGTERM)
    assert first.wait(5) == 0
    assert container._alive(pod["pid"])
    second = node.start_kubelet()
    node.wait(lambda s: s["kubelet"]["pid"] == second.pid and running("idle")(s), what="adopted")
    assert node.pod("idle")["pid"] == pod["pid"]


def test_kubelet_restart_replaces_container_of_a_manifest_changed_meanwhile(node):
    node.write_manifest("idle.yaml", "idle", IDLE)
    first = node.start_kubelet()
    pod = node.wait(running("idle"))
    first.send_signal(signal.SIGTERM)
    first.wait(5)
    node.write_manifest("idle.yaml", "idle", IDLE + ["--changed"])
    second = node.start_kubelet()
    new = node.wait(lambda s: s["kubelet"]["pid"] == second.pid and running("idle")(s)
                    and s["pods"]["idle"]["pid"] != pod["pid"] and s["pods"]["idle"])
    assert new["argv"][-1] == "--changed"
    time.sleep(0.2)
    assert not container._alive(pod["pid"])


@pytest.mark.parametrize("body,message", [
    ("staticPodPath: /etc/kubernetes/manifests\nprotectKernelDefault: true\n", "unknown field"),
    ("protectKernelDefaults: true\n", "invalid kernel flag"),
])
def test_kubelet_refuses_to_start_on_bad_config(node, body, message):
    node.write_config(body)
    proc = node.start_kubelet()
    assert proc.wait(10) == 1
    assert message in (node.root / "kubelet.log").read_text()
    state = node.state()["kubelet"]
    assert state["state"] == "failed" and message in state["error"]


def test_unparsable_manifest_change_event_keeps_the_pod_until_a_relist(node):
    node.write_config("staticPodPath: /etc/kubernetes/manifests\nfileCheckFrequency: 1000s\n"
                      "healthzPort: 0\n")  # first re-list at start, the next one 20 s later
    node.write_manifest("idle.yaml", "idle", IDLE)
    node.start_kubelet()
    pod = node.wait(running("idle"))
    (node.manifests / "idle.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: [broken\n")
    state = node.wait(lambda s: s["file_errors"] and s, what="parse error seen via inotify")
    time.sleep(0.5)
    assert "idle" in node.state()["pods"] and container._alive(pod["pid"])
    assert "Could not process manifest file" in state["file_errors"]["idle.yaml"]


def test_readiness_failure_marks_unready_without_restarting(node):
    host, port = lab_address()
    (node.root / "etc/kubernetes/pki").mkdir(parents=True, exist_ok=True)
    (node.root / "etc/kubernetes/pki/sa.key").write_text("x\n")
    probe = {"httpGet": {"host": host, "path": "/livez", "port": port, "scheme": "HTTPS"},
             "periodSeconds": 10, "failureThreshold": 10}
    node.write_manifest(
        "kube-apiserver.yaml", "kube-apiserver",
        ["kube-apiserver", f"--bind-address={host}", f"--secure-port={port}",
         "--etcd-servers=https://127.0.0.1:1", "--service-account-issuer=https://k",
         "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key"],
        livenessProbe=probe,
        readinessProbe={**probe, "failureThreshold": 1,
                        "httpGet": {**probe["httpGet"], "path": "/readyz"}},
        volumeMounts=[{"name": "pki", "mountPath": "/etc/kubernetes/pki"}],
        _volumes=[{"name": "pki", "hostPath": {"path": "/etc/kubernetes/pki"}}])
    node.start_kubelet()
    pod = node.wait(lambda s: "Readiness probe failed" in s["pods"].get("kube-apiserver", {})
                    .get("last_error", "") and s["pods"]["kube-apiserver"], what="readiness failure")
    time.sleep(1.5)
    pod = node.pod("kube-apiserver")
    assert pod["ready"] is False and pod["restarts"] == 0 and "statuscode: 500" in pod["last_error"]


@pytest.mark.parametrize("policy,restarts", [("Never", 0), ("OnFailure", 1)])
def test_restart_policy(node, policy, restarts):
    node.write_manifest("kube-apiserver.yaml", "kube-apiserver", ["kube-apiserver", "--bogus"])
    doc = yaml.safe_load((node.manifests / "kube-apiserver.yaml").read_text())
    doc["spec"]["restartPolicy"] = policy
    (node.manifests / "kube-apiserver.yaml").write_text(yaml.safe_dump(doc))
    node.start_kubelet()
    pod = node.wait(lambda s: s["pods"].get("kube-apiserver", {}).get("restarts", 0) >= restarts
                    and s["pods"]["kube-apiserver"].get("last_exit_code") == 1
                    and s["pods"]["kube-apiserver"], what="exit seen")
    if policy == "Never":
        node.wait(lambda s: s["pods"]["kube-apiserver"]["state"] == "stopped", what="stopped")
        time.sleep(0.5)
        assert node.pod("kube-apiserver")["restarts"] == 0


def test_kubelet_port_answers_401_and_read_only_port_is_closed_by_default(node):
    host, port = lab_address()
    node.write_config(f"staticPodPath: /etc/kubernetes/manifests\naddress: {host}\nport: {port}\n"
                      f"healthzPort: 0\n")
    node.start_kubelet()
    state = node.wait(lambda s: s.get("kubelet", {}).get("server") and s, what="server up")
    assert state["kubelet"]["server"] == [f"https://{host}:{port}"]
    from harden.lab.components.probes import run_probe
    from harden.lab.components.staticpod import Probe

    ok, why = run_probe(Probe("httpGet", {"host": host, "port": port, "path": "/pods",
                                          "scheme": "HTTPS"}, 0, 1, 1, 1, 1), {}, 2.0)
    assert not ok and "statuscode: 401" in why


def test_kubelet_exits_when_its_port_is_taken(node):
    import socket

    host, port = lab_address()
    with socket.socket() as taken:
        taken.bind((host, port))
        taken.listen()
        node.write_config(f"staticPodPath: /etc/kubernetes/manifests\naddress: {host}\n"
                          f"port: {port}\nhealthzPort: 0\n")
        proc = node.start_kubelet()
        assert proc.wait(10) == 1
    assert "Failed to listen and serve" in (node.root / "kubelet.log").read_text()


def test_a_stopping_kubelet_waits_for_a_container_being_started_and_records_its_pid(
        tmp_path, monkeypatch):
    # the kubelet takes SPAWNS before its last state write: a container whose process exists
    # but whose pid is not recorded yet would run on unknown to the next kubelet, which would
    # start a second one beside it (seen after a rollback restarted the kubelet mid-start)
    monkeypatch.setenv(podenv.ROOT_ENV, str(tmp_path))
    manifest = yaml.safe_dump({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
                               "spec": {"containers": [{"name": "kube-scheduler",
                                                        "image": "registry.k8s.io/s:v1",
                                                        "command": ["kube-scheduler"]}]}})
    spec = staticpod.parse_manifest("/etc/kubernetes/manifests/s.yaml", manifest.encode(), "n1")
    runner = container.ContainerRunner(spec, spec.containers[0], lambda: None, "kube-scheduler")
    started, release = threading.Event(), threading.Event()

    def slow_title(proc):
        started.set()
        release.wait(10)
    monkeypatch.setattr(runner, "_await_title", slow_title)
    threading.Thread(target=runner._spawn, daemon=True).start()
    assert started.wait(10)                       # the process exists, its pid is not recorded
    taken = threading.Event()
    threading.Thread(target=lambda: (container.SPAWNS.acquire(), taken.set()), daemon=True).start()
    try:
        assert not taken.wait(0.3)                # the stopping kubelet waits for it ...
        release.set()
        assert taken.wait(10)
        assert runner.status.pid == runner._proc.pid     # ... and then writes it down
    finally:
        release.set()
        if taken.wait(10):
            container.SPAWNS.release()
        runner._proc.kill()
        runner._proc.wait()
