"""Issue 3 acceptance: the lab's kubelet and control-plane emulation on a real 3+2 node lab.

Changes are made through ssh exactly as an operator (or harden) would make them; the outcome is
read from the node's kubelet state file (what `harden lab status` shows; read on this machine,
where the node's /var/lib/kubelet lives) and, where it matters, from `ps`, probes and etcdctl on
the node.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time

import pytest
import yaml

from harden.lab import cluster

pytestmark = pytest.mark.lab

MANIFESTS = "/etc/kubernetes/manifests"
APISERVER = f"{MANIFESTS}/kube-apiserver.yaml"
FAST_SCALE = "0.02"


class Lab5:
    """The module's lab plus how long it took to come up healthy."""

    def __init__(self, lab, seconds_to_ready: float):
        self.lab, self.seconds_to_ready = lab, seconds_to_ready

    def state(self, node: str) -> dict:
        """The node's kubelet state file, read where it lives on this machine: the tests poll it
        every 0.2 s, and an SSH round trip per poll cost more CPU than the emulation itself."""
        return json.loads((self.lab.node_root(node) / cluster.KUBELET_STATE_FILE.lstrip("/"))
                          .read_text())

    def pods(self, node: str) -> dict:
        row = next(r for r in cluster.status(self.lab.dir)["nodes"] if r["name"] == node)
        return row["pods"]

    def wait_pod(self, node: str, name: str, predicate, timeout: float = 30, what: str = ""):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.pods(node).get(name)
            if pod and predicate(pod):
                return pod
            time.sleep(0.2)
        raise AssertionError(f"{node}/{name}: timed out waiting for {what}: {self.pods(node).get(name)}")

    def kubelet_service(self, node: str) -> dict:
        row = next(r for r in cluster.status(self.lab.dir)["nodes"] if r["name"] == node)
        return row["services"]["kubelet"]

    def wait_healthy(self, node: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            report = cluster.status(self.lab.dir)
            problems = [p for p in cluster.unready(report) if p.startswith(f"{node}:")]
            if not problems:
                return
            assert time.monotonic() < deadline, problems
            time.sleep(0.2)

    def read_manifest(self, node: str, path: str = APISERVER) -> str:
        return self.lab.ssh(node, f"cat {path}").stdout

    def write_file(self, node: str, path: str, text: str, mode: str = "600") -> None:
        """Atomic replace through a dot-file in the same directory (the kubelet ignores it)."""
        directory, name = os.path.split(path)
        tmp = f"{directory}/.{name}.tmp"
        self.lab.ssh(node, f"cat > {tmp} && chmod {mode} {tmp} && mv {tmp} {path}", stdin=text)

    def edit_apiserver(self, node: str, edit) -> str:
        """Apply `edit(doc)` to the API server manifest; returns the original text."""
        original = self.read_manifest(node)
        doc = yaml.safe_load(original)
        edit(doc)
        self.write_file(node, APISERVER, yaml.safe_dump(doc, sort_keys=True))
        return original


@pytest.fixture(scope="module")
def lab5(lab_factory):
    started = time.monotonic()
    lab = lab_factory.start(control_planes=3, workers=2)
    try:
        cluster.wait_ready(lab.dir, timeout=30)
        seconds = time.monotonic() - started
        for node in lab.names("control-plane"):  # faster probes/back-off for the tests below
            lab.ssh(node, f"echo {FAST_SCALE} > /var/lib/kubelet/harden-lab-time-scale && "
                          "systemctl restart kubelet")
        cluster.wait_ready(lab.dir, timeout=30)
        yield Lab5(lab, seconds)
    finally:
        lab.down()


def container(doc: dict) -> dict:
    return doc["spec"]["containers"][0]


def add_flag(flag: str):
    return lambda doc: container(doc)["command"].append(flag)


def mount(name: str, path: str, kind: str = "DirectoryOrCreate"):
    def edit(doc: dict) -> None:
        container(doc)["volumeMounts"].append({"mountPath": path, "name": name, "readOnly": True})
        doc["spec"]["volumes"].append({"hostPath": {"path": path, "type": kind}, "name": name})
    return edit


def encryption_config(key_bytes: int) -> str:
    secret = base64.b64encode(os.urandom(key_bytes)).decode()
    return ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
            "- resources:\n  - secrets\n  providers:\n  - secretbox:\n      keys:\n"
            f"      - name: key1\n        secret: {secret}\n  - identity: {{}}\n")


def test_lab_of_three_control_planes_and_two_workers_is_healthy_within_ten_seconds(lab5):
    assert lab5.seconds_to_ready < 10, f"took {lab5.seconds_to_ready:.1f}s"
    for node in lab5.lab.names("control-plane"):
        pods = lab5.pods(node)
        assert sorted(pods) == ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
        assert all(p["ready"] and p["restarts"] == 0 for p in pods.values()), pods


def test_profiling_false_restarts_the_apiserver_and_it_becomes_healthy(lab5):
    node = "cp1"
    before = lab5.pods(node)["kube-apiserver"]
    original = lab5.edit_apiserver(node, add_flag("--profiling=false"))
    try:
        after = lab5.wait_pod(node, "kube-apiserver",
                              lambda p: p["pid"] != before["pid"] and p["ready"], what="new ready pod")
        assert "--profiling=false" in after["argv"] and after["restarts"] == 0
        ps = lab5.lab.ssh(node, "ps -eo args | grep '^kube-apiserver '").stdout
        assert "--profiling=false" in ps
        address = lab5.lab.nodes[node]
        code = lab5.lab.ssh(node, "curl -s -o /dev/null -w '%{http_code}' --cacert "
                                  f"/etc/kubernetes/pki/ca.crt https://{address}:6443/readyz").stdout
        assert code == "200"
    finally:
        lab5.write_file(node, APISERVER, original)


def test_encryption_config_must_be_mounted_into_the_pod(lab5):
    node = "cp2"
    lab5.wait_healthy(node)
    lab5.lab.ssh(node, "mkdir -p /etc/kubernetes/enc && chmod 700 /etc/kubernetes/enc")
    lab5.write_file(node, "/etc/kubernetes/enc/enc.yaml", encryption_config(32))
    flag = add_flag("--encryption-provider-config=/etc/kubernetes/enc/enc.yaml")
    original = lab5.edit_apiserver(node, flag)
    try:
        pod = lab5.wait_pod(node, "kube-apiserver", lambda p: p["restarts"] >= 1, what="crash loop")
        assert pod["state"] == "crash-looping" and not pod["ready"]
        assert "open /etc/kubernetes/enc/enc.yaml: no such file or directory" in pod["last_error"]
        shown = cluster.format_status(cluster.status(lab5.lab.dir))
        assert "kube-apiserver" in shown and "crash-looping" in shown

        lab5.write_file(node, APISERVER, original)
        lab5.wait_healthy(node)
        lab5.edit_apiserver(node, lambda doc: (flag(doc), mount("enc", "/etc/kubernetes/enc")(doc)))
        pod = lab5.wait_pod(node, "kube-apiserver",
                            lambda p: p["ready"] and any("encryption" in a for a in p["argv"]),
                            what="healthy with the mount")
        time.sleep(1.0)
        assert lab5.pods(node)["kube-apiserver"]["restarts"] == 0
    finally:
        lab5.write_file(node, APISERVER, original)


def test_secretbox_key_of_31_bytes_crash_loops(lab5):
    node = "cp3"
    lab5.wait_healthy(node)
    lab5.lab.ssh(node, "mkdir -p /etc/kubernetes/enc")
    lab5.write_file(node, "/etc/kubernetes/enc/enc.yaml", encryption_config(31))
    original = lab5.edit_apiserver(node, lambda doc: (
        add_flag("--encryption-provider-config=/etc/kubernetes/enc/enc.yaml")(doc),
        mount("enc", "/etc/kubernetes/enc")(doc)))
    try:
        pod = lab5.wait_pod(node, "kube-apiserver", lambda p: p["restarts"] >= 1, what="crash loop")
        assert "secret is not of the expected length, got 31, expected 32" in pod["last_error"]
        log = lab5.lab.ssh(node, "cat /var/log/kubernetes/lab/kube-apiserver.log").stdout
        assert "got 31, expected 32" in log
    finally:
        lab5.write_file(node, APISERVER, original)


def test_anonymous_auth_false_gets_401_probes_and_restarts_repeatedly(lab5):
    node = "cp1"
    lab5.wait_healthy(node)
    original = lab5.edit_apiserver(node, add_flag("--anonymous-auth=false"))
    try:
        pod = lab5.wait_pod(node, "kube-apiserver", lambda p: p["restarts"] >= 2, timeout=40,
                            what="two probe-driven restarts")
        assert "probe failed: HTTP probe failed with statuscode: 401" in pod["last_error"]
        address = lab5.lab.nodes[node]
        codes = []          # between a kill and the next start nothing listens (curl: 000)
        deadline = time.monotonic() + 20
        while "401" not in codes and time.monotonic() < deadline:
            codes.append(lab5.lab.ssh(node, "curl -sk -o /dev/null -w '%{http_code}' "
                                            f"https://{address}:6443/livez", check=False).stdout)
            time.sleep(0.2)
        assert "401" in codes and set(codes) <= {"401", "000"}, codes
    finally:
        lab5.write_file(node, APISERVER, original)


def test_backup_copy_in_manifests_dir_is_a_duplicate_pod_and_dot_files_are_ignored(lab5):
    node = "cp2"
    lab5.wait_healthy(node)
    try:
        lab5.lab.ssh(node, f"cp -p {APISERVER} {APISERVER}.bak && "
                           f"cp -p {APISERVER} {MANIFESTS}/.kube-apiserver.yaml.swp")
        pod = lab5.wait_pod(node, "kube-apiserver", lambda p: p.get("duplicate_files"),
                            what="duplicate error")
        assert pod["duplicate_files"] == ["kube-apiserver.yaml", "kube-apiserver.yaml.bak"]
        assert "duplicate pod name" in pod["error"]
        state = lab5.state(node)
        assert "kube-apiserver.yaml.bak" in state["seen_files"]
        assert ".kube-apiserver.yaml.swp" not in state["seen_files"]
        assert ".kube-apiserver.yaml.swp" in state["seen_ignored_files"]
    finally:
        lab5.lab.ssh(node, f"rm -f {APISERVER}.bak {MANIFESTS}/.kube-apiserver.yaml.swp")
    lab5.wait_pod(node, "kube-apiserver", lambda p: not p.get("duplicate_files"), what="no duplicate")


@pytest.mark.parametrize("node,change", [
    ("w1", "printf 'protectKernelDefault: true\\n' >> /var/lib/kubelet/config.yaml"),
    ("w2", "printf 'protectKernelDefaults: true\\n' >> /var/lib/kubelet/config.yaml"),
])
def test_bad_kubelet_config_stops_the_kubelet_after_restart(lab5, node, change):
    original = lab5.lab.ssh(node, "cat /var/lib/kubelet/config.yaml").stdout
    address = lab5.lab.nodes[node]
    try:
        lab5.lab.ssh(node, f"{change} && systemctl restart kubelet")
        deadline = time.monotonic() + 15
        while True:
            state = lab5.state(node)["kubelet"]
            if state.get("state") == "failed":
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        expected = "unknown field" if "Default:" in change else "invalid kernel flag: vm/overcommit_memory"
        assert expected in state["error"]
        restarts = lab5.kubelet_service(node)["restarts"]
        # Restart=always: the supervisor keeps trying (1 s apart), the kubelet keeps exiting
        deadline = time.monotonic() + 15
        while lab5.kubelet_service(node)["restarts"] <= restarts:
            assert time.monotonic() < deadline, "the supervisor stopped restarting the kubelet"
            time.sleep(0.2)
        assert "failed" == lab5.state(node)["kubelet"]["state"]
        healthz = lab5.lab.ssh(node, f"curl -s -m 2 http://{address}:10248/healthz", check=False)
        assert healthz.stdout != "ok"
    finally:
        lab5.write_file(node, "/var/lib/kubelet/config.yaml", original, mode="644")
        lab5.lab.ssh(node, "systemctl restart kubelet")
    lab5.wait_healthy(node)
    assert lab5.lab.ssh(node, f"curl -s http://{address}:10248/healthz").stdout == "ok"


def kubelet_failure_after(lab5, node: str, since: float) -> str:
    """The error of the first kubelet start that failed after `since` (host and node share a
    clock)."""
    deadline = time.monotonic() + 15
    while True:
        state = lab5.state(node)["kubelet"]
        if state.get("state") == "failed" and state.get("updated", 0) > since:
            return state["error"]
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def kubelet_running(lab5, node: str) -> None:
    """Until the kubelet's state file says it runs. The supervisor calls the unit active as soon
    as it starts the process, while the file still holds the failed start before it: the new
    kubelet writes "running" once it is up."""
    deadline = time.monotonic() + 15
    while (state := lab5.state(node)["kubelet"]).get("state") != "running":
        assert time.monotonic() < deadline, state
        time.sleep(0.2)


def test_protect_kernel_defaults_starts_once_the_node_has_the_sysctls(lab5):
    node = "w2"
    sysctls = ("vm.overcommit_memory = 1\nvm.panic_on_oom = 0\nkernel.panic = 10\n"
               "kernel.panic_on_oops = 1\nkernel.keys.root_maxkeys = 1000000\n"
               "kernel.keys.root_maxbytes = 25000000\n")
    keys = " ".join(line.split(" =")[0] for line in sysctls.splitlines())
    live_before = lab5.lab.ssh(node, f"sysctl {keys}").stdout
    original = lab5.lab.ssh(node, "cat /var/lib/kubelet/config.yaml").stdout
    try:
        lab5.write_file(node, "/var/lib/kubelet/config.yaml",
                        original + "protectKernelDefaults: true\n", mode="644")
        # persisted only is not enough: the kubelet checks the node's live values
        lab5.write_file(node, "/etc/sysctl.d/90-kubelet.conf", sysctls, mode="644")
        lab5.lab.ssh(node, "sysctl -w kernel.panic=0")
        since = time.time()
        lab5.lab.ssh(node, "systemctl restart kubelet")
        assert "invalid kernel flag: kernel/panic" in kubelet_failure_after(lab5, node, since)
        lab5.lab.ssh(node, "sysctl -q -p /etc/sysctl.d/90-kubelet.conf && systemctl restart kubelet")
        lab5.wait_healthy(node)
        kubelet_running(lab5, node)
        assert lab5.lab.ssh(node, f"sysctl {keys}").stdout == sysctls
    finally:
        lab5.write_file(node, "/var/lib/kubelet/config.yaml", original, mode="644")
        lab5.write_file(node, "/var/lib/harden/sysctl-before.conf", live_before, mode="644")
        lab5.lab.ssh(node, "sysctl -q -p /var/lib/harden/sysctl-before.conf; "
                     "rm -f /var/lib/harden/sysctl-before.conf /etc/sysctl.d/90-kubelet.conf; "
                     "systemctl restart kubelet")


@pytest.mark.skipif(not shutil.which("etcd") or not shutil.which("etcdctl"),
                    reason="the Debian etcd-server/etcd-client packages are not installed")
def test_real_etcd_requires_and_accepts_client_certificates(lab5):
    node = "cp3"
    lab5.wait_healthy(node)
    address = lab5.lab.nodes[node]
    manifest = yaml.safe_load(lab5.read_manifest(node, f"{MANIFESTS}/etcd.yaml"))
    assert "--client-cert-auth=true" in container(manifest)["command"]
    pki = "/etc/kubernetes/pki/etcd"
    base = f"ETCDCTL_API=3 etcdctl --endpoints=https://{address}:2379 --cacert={pki}/ca.crt"
    healthy = lab5.lab.ssh(node, f"{base} --cert={pki}/healthcheck-client.crt "
                                 f"--key={pki}/healthcheck-client.key endpoint health")
    assert "is healthy" in healthy.stdout + healthy.stderr
    anonymous = lab5.lab.ssh(node, f"{base} --command-timeout=2s endpoint health", check=False)
    assert anonymous.returncode != 0
    ps = lab5.lab.ssh(node, "ps -eo args | grep '^etcd '").stdout
    assert "--client-cert-auth=true" in ps


def test_kubelet_api_refuses_anonymous_and_read_only_port_is_closed(lab5):
    node = "w1"
    lab5.wait_healthy(node)
    address = lab5.lab.nodes[node]
    code = lab5.lab.ssh(node, f"curl -sk -o /dev/null -w '%{{http_code}}' https://{address}:10250/pods")
    assert code.stdout == "401"
    closed = lab5.lab.ssh(node, f"curl -s -m 2 http://{address}:10255/pods", check=False)
    assert closed.returncode != 0


def test_audit_logging_as_documented_writes_events(lab5):
    node = "cp3"
    lab5.wait_healthy(node)
    lab5.write_file(node, "/etc/kubernetes/audit-policy.yaml",
                    "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")

    def enable_audit(doc: dict) -> None:
        add_flag("--audit-policy-file=/etc/kubernetes/audit-policy.yaml")(doc)
        add_flag("--audit-log-path=/var/log/kubernetes/audit/audit.log")(doc)
        container(doc)["volumeMounts"] += [
            {"mountPath": "/etc/kubernetes/audit-policy.yaml", "name": "audit", "readOnly": True},
            {"mountPath": "/var/log/kubernetes/audit/", "name": "audit-log", "readOnly": False}]
        doc["spec"]["volumes"] += [
            {"hostPath": {"path": "/etc/kubernetes/audit-policy.yaml", "type": "File"}, "name": "audit"},
            {"hostPath": {"path": "/var/log/kubernetes/audit/", "type": "DirectoryOrCreate"},
             "name": "audit-log"}]

    original = lab5.edit_apiserver(node, enable_audit)
    try:
        lab5.wait_pod(node, "kube-apiserver",
                      lambda p: p["ready"] and any("audit" in a for a in p["argv"]), what="audited")
        deadline = time.monotonic() + 10
        while True:
            log = lab5.lab.ssh(node, "cat /var/log/kubernetes/audit/audit.log", check=False).stdout
            if '"requestURI": "/livez"' in log:
                break
            assert time.monotonic() < deadline, log[-500:]
            time.sleep(0.3)
        event = json.loads(log.splitlines()[-1])
        assert event["kind"] == "Event" and event["level"] == "Metadata"
        mode = lab5.lab.ssh(node, "stat -c %a /var/log/kubernetes/audit/audit.log").stdout.strip()
        assert mode == "600"
    finally:
        lab5.write_file(node, APISERVER, original)
