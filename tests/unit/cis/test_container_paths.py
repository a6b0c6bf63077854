"""Files a containerised component names are judged where its container sees them: kube-proxy's
kubeconfig from its --config file (4.1.3/4.1.4), the API server's audit policy and encryption
config (3.2.2/1.2.28) through /proc/<pid>/root, or through the manifest's hostPath volumes when
the API server is not running. The real probe script runs over a fake node tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harden.cis.catalogue import load_catalogue
from harden.cis.evaluate import evaluate_host
from harden.cis.probe import Facts, build_probe_script, parse_probe_output

SECRET = "c2VjcmV0LWtleS1tYXRlcmlhbC1tdXN0LW5vdC1sZWF2ZQ=="
GOOD_POLICY = """kind: Policy
rules:
  - level: Metadata
    resources:
      - {group: "", resources: ["secrets", "configmaps"]}
      - {group: "authentication.k8s.io", resources: ["tokenreviews"]}
  - level: RequestResponse
    verbs: ["create", "update", "patch", "delete"]
    resources:
      - {group: "", resources: ["pods"]}
      - {group: "apps", resources: ["deployments"]}
  - level: Metadata
"""
WEAK_POLICY = "kind: Policy\nrules:\n  - level: None\n"
STRONG_ENC = ("kind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n"
              f"      - aescbc:\n          keys:\n            - name: k1\n              secret: {SECRET}\n"
              "      - identity: {}\n")
WEAK_ENC = "kind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n      - identity: {}\n"
AUDIT = "/etc/kubernetes/audit/policy.yaml"
ENC = "/etc/kubernetes/enc/enc.yaml"
APISERVER = ["kube-apiserver", f"--audit-policy-file={AUDIT}", f"--encryption-provider-config={ENC}"]
MANIFEST = f"""apiVersion: v1
kind: Pod
spec:
  containers:
  - command:
{"".join(f"    - {a}{chr(10)}" for a in APISERVER)}    image: registry.k8s.io/kube-apiserver:v1.33.2
    volumeMounts:
    - mountPath: /etc/kubernetes/audit
      name: audit
      readOnly: true
    - mountPath: {ENC}
      name: enc
      subPath: enc.yaml
  hostNetwork: true
  volumes:
  - hostPath:
      path: /srv/audit
      type: DirectoryOrCreate
    name: audit
  - name: enc
    hostPath:
      path: /srv/secret
"""


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def put(root: Path, path: str, text: str, mode: int = 0o600) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def proc(root: Path, pid: int, *argv: str) -> None:
    target = root / "proc" / str(pid)
    target.mkdir(parents=True, exist_ok=True)
    (target / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


def probe(root: Path) -> Facts:
    done = subprocess.run(["sh", "-c", build_probe_script(str(root))], capture_output=True, text=True,
                          env=dict(os.environ, PATH="/usr/bin:/bin"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout
    return parse_probe_output(done.stdout)


def verdicts(facts: Facts, catalogue, role: str = "control-plane") -> dict:
    return {r.id: r for r in evaluate_host("node", facts, catalogue, role)}


def test_kube_proxy_kubeconfig_named_in_its_config_file(tmp_path, catalogue):
    proc(tmp_path, 30, "/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf")
    put(tmp_path, "/proc/30/root/var/lib/kube-proxy/config.conf",
        "kind: KubeProxyConfiguration\nclientConnection:\n  acceptContentTypes: ''\n"
        "  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf\n  qps: 5\nmode: iptables\n", 0o644)
    put(tmp_path, "/proc/30/root/var/lib/kube-proxy/kubeconfig.conf", "kind: Config\n", 0o644)
    results = verdicts(probe(tmp_path), catalogue, "worker")
    inside = "/proc/30/root/var/lib/kube-proxy/kubeconfig.conf"
    assert results["4.1.3"].status == "WARN" and f"{inside}: 644" in results["4.1.3"].actual
    assert inside in results["4.1.4"].actual and "not found" not in results["4.1.4"].actual


def test_kube_proxy_without_config_falls_back_to_its_kubeconfig_flag(tmp_path, catalogue):
    proc(tmp_path, 30, "kube-proxy", "--kubeconfig=/etc/kp/kubeconfig")
    put(tmp_path, "/proc/30/root/etc/kp/kubeconfig", "kind: Config\n", 0o600)
    result = verdicts(probe(tmp_path), catalogue, "worker")["4.1.3"]
    assert result.status == "PASS" and "/proc/30/root/etc/kp/kubeconfig: 600" in result.actual


def test_running_apiserver_files_are_read_inside_its_container(tmp_path, catalogue):
    put(tmp_path, "/etc/kubernetes/manifests/kube-apiserver.yaml", MANIFEST)
    proc(tmp_path, 21, *APISERVER)
    # the host's files at the same paths are other files: they must not be judged
    put(tmp_path, AUDIT, WEAK_POLICY)
    put(tmp_path, ENC, WEAK_ENC)
    put(tmp_path, f"/proc/21/root{AUDIT}", GOOD_POLICY)
    put(tmp_path, f"/proc/21/root{ENC}", STRONG_ENC)
    results = verdicts(probe(tmp_path), catalogue)
    assert results["3.2.2"].status == "PASS", results["3.2.2"].actual
    assert results["1.2.28"].status == "PASS", results["1.2.28"].actual
    assert "aescbc" in results["1.2.28"].actual and "container" in results["1.2.28"].actual


def test_stopped_apiserver_files_are_read_through_the_manifest_host_paths(tmp_path, catalogue):
    put(tmp_path, "/etc/kubernetes/manifests/kube-apiserver.yaml", MANIFEST)
    put(tmp_path, "/srv/audit/policy.yaml", GOOD_POLICY)
    put(tmp_path, "/srv/secret/enc.yaml", STRONG_ENC)
    facts = probe(tmp_path)
    assert facts.host_paths["kube-apiserver"] == {AUDIT: "/srv/audit/policy.yaml", ENC: "/srv/secret/enc.yaml"}
    assert "/srv/secret/enc.yaml" not in facts.contents      # only provider names leave the node
    results = verdicts(facts, catalogue)
    assert results["3.2.2"].status == "PASS" and "host /srv/audit/policy.yaml" in results["3.2.2"].actual
    assert results["1.2.28"].status == "PASS" and "host /srv/secret/enc.yaml" in results["1.2.28"].actual


def test_path_no_volume_covers_is_looked_for_at_the_same_host_path(tmp_path, catalogue):
    manifest = MANIFEST.split("    volumeMounts:")[0]
    put(tmp_path, "/etc/kubernetes/manifests/kube-apiserver.yaml", manifest)
    put(tmp_path, AUDIT, WEAK_POLICY)
    facts = probe(tmp_path)
    assert "kube-apiserver" not in facts.host_paths
    results = verdicts(facts, catalogue)
    assert results["3.2.2"].status == "WARN" and f"{AUDIT}:" in results["3.2.2"].actual
    assert "not found" in results["1.2.28"].actual
