"""The lab API server stores objects in the control planes' one etcd cluster, served to the
distribution's kubectl with admin.conf, authorized by RBAC, encrypted at rest as configured."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from support.lab_cli import kubectl, wait_for
pytestmark = pytest.mark.skipif(not shutil.which("kubectl") or not shutil.which("etcdctl"),
                                reason="needs kubectl (kubernetes-client) and etcdctl (etcd-client)")


@pytest.fixture(scope="module")
def lab(lab_factory):
    with lab_factory.running(control_planes=2, workers=0, wait_ready=True, seed_secrets=6) as lab:
        wait_for(lambda: kubectl(lab, "get", "secret", "bulk-00005", "-n", "default").returncode == 0)
        yield lab


def etcdctl(lab, *args):
    pki = lab.dir / "nodes" / "cp1" / "root/etc/kubernetes/pki"
    return subprocess.run(["etcdctl", f"--endpoints=https://{lab.nodes['cp1']}:2379",
                           f"--cacert={pki}/etcd/ca.crt", f"--cert={pki}/apiserver-etcd-client.crt",
                           f"--key={pki}/apiserver-etcd-client.key", *args],
                          capture_output=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
                          timeout=30)


def test_object_written_through_one_api_server_is_read_through_the_other(lab):
    made = kubectl(lab, "create", "secret", "generic", "shared", "--from-literal=k=v", "-n", "apps")
    assert made.returncode == 0, made.stderr
    read = kubectl(lab, "get", "secret", "shared", "-n", "apps", "-o", "json", node="cp2")
    assert read.returncode == 0, read.stderr
    assert base64.b64decode(json.loads(read.stdout)["data"]["k"]) == b"v"
    keys = etcdctl(lab, "get", "--prefix", "--keys-only", "/registry/secrets/apps/")
    assert b"/registry/secrets/apps/shared" in keys.stdout.split()


def test_seeded_state_lists_across_namespaces_with_selectors(lab):
    names = kubectl(lab, "get", "secrets", "-A", "-o", "name").stdout.split()
    assert sum(n.startswith("secret/bulk-") for n in names) == 6
    labelled = kubectl(lab, "get", "ns", "-l", "team=apps", "-o", "name")
    assert labelled.stdout.split() == ["namespace/apps"]
    assert kubectl(lab, "label", "ns", "monitoring", "team=apps", "--overwrite").returncode == 0
    both = kubectl(lab, "get", "ns", "-l", "team=apps", "-o", "name").stdout.split()
    assert both == ["namespace/apps", "namespace/monitoring"]


def test_stale_resource_version_is_a_conflict(lab):
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "versioned", "namespace": "apps"}, "data": {"count": "1"}}
    assert kubectl(lab, "create", "-f", "-", stdin=json.dumps(cm)).returncode == 0
    current = json.loads(kubectl(lab, "get", "cm", "versioned", "-n", "apps", "-o", "json").stdout)
    stale = dict(current, data={"count": "2"})
    assert kubectl(lab, "replace", "-f", "-", stdin=json.dumps(stale)).returncode == 0
    again = kubectl(lab, "replace", "-f", "-", stdin=json.dumps(dict(current, data={"count": "3"})))
    assert again.returncode == 1 and "the object has been modified" in again.stderr
    applied = kubectl(lab, "apply", "-f", "-", stdin=yaml.safe_dump(
        {**cm, "data": {"count": "4"}}))
    assert applied.returncode == 0, applied.stderr
    assert kubectl(lab, "get", "cm", "versioned", "-n", "apps", "-o",
                   "jsonpath={.data.count}").stdout == "4"
    assert kubectl(lab, "delete", "cm", "versioned", "-n", "apps").returncode == 0
    gone = kubectl(lab, "get", "cm", "versioned", "-n", "apps")
    assert gone.returncode == 1 and 'configmaps "versioned" not found' in gone.stderr


def test_rbac_answers_from_stored_bindings(lab):
    assert kubectl(lab, "auth", "can-i", "delete", "secrets", "-A").stdout.strip() == "yes"
    who = ["--as=jane", "-n", "apps"]
    assert kubectl(lab, "auth", "can-i", "get", "configmaps", *who).stdout.strip() == "no"
    role = kubectl(lab, "create", "role", "cm-reader", "--verb=get", "--resource=configmaps",
                   "-n", "apps")
    assert role.returncode == 0, role.stderr
    bound = kubectl(lab, "create", "rolebinding", "jane-cm", "--role=cm-reader", "--user=jane",
                    "-n", "apps")
    assert bound.returncode == 0, bound.stderr
    assert kubectl(lab, "auth", "can-i", "get", "configmaps", *who).stdout.strip() == "yes"
    assert kubectl(lab, "auth", "can-i", "get", "configmaps", "--as=jane",
                   "-n", "default").stdout.strip() == "no"
    denied = kubectl(lab, "get", "secrets", *who)
    assert denied.returncode == 1 and 'User "jane" cannot list resource "secrets"' in denied.stderr


def test_components_have_the_real_binaries_command_names(lab):
    for name in ("kube-apiserver", "kube-scheduler", "kube-controller", "kubelet"):
        found = lab.ssh("cp1", f"pgrep -x {name}")
        assert found.returncode == 0 and len(found.stdout.split()) == 1, (name, found)


ENCRYPTION = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc:
      keys:
      - name: {name}
        secret: {secret}
  - identity: {{}}
"""


def test_encryption_at_rest_and_a_value_under_a_removed_key(lab_factory):
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True) as lab:
        # the seed is written in plaintext by the first API server, before encryption is on
        wait_for(lambda: kubectl(lab, "get", "secret", "monitoring-credentials", "-n",
                                 "monitoring").returncode == 0)
        root = lab.dir / "nodes" / "cp1" / "root/etc/kubernetes"
        enc = root / "enc.yaml"
        enc.write_text(ENCRYPTION.format(name="key1", secret=base64.b64encode(b"k" * 32).decode()))
        manifest_path = root / "manifests/kube-apiserver.yaml"
        manifest = yaml.safe_load(manifest_path.read_text())
        pod = manifest["spec"]
        pod["containers"][0]["command"] += [
            "--encryption-provider-config=/etc/kubernetes/enc.yaml",
            "--encryption-provider-config-automatic-reload=true"]
        pod["containers"][0]["volumeMounts"].append(
            {"mountPath": "/etc/kubernetes/enc.yaml", "name": "enc", "readOnly": True})
        pod["volumes"].append({"hostPath": {"path": "/etc/kubernetes/enc.yaml", "type": "File"},
                               "name": "enc"})
        manifest_path.write_text(yaml.safe_dump(manifest))
        wait_for(lambda: kubectl(lab, "create", "secret", "generic", "enc", "--from-literal=a=b",
                                 "-n", "apps").returncode == 0
                 and etcdctl(lab, "get", "/registry/secrets/apps/enc", "--print-value-only")
                 .stdout.startswith(b"k8s:enc:aescbc:v1:key1:"), timeout=60)
        read = kubectl(lab, "get", "secret", "enc", "-n", "apps", "-o", "jsonpath={.data.a}")
        assert base64.b64decode(read.stdout) == b"b"
        status, actual = stored_check(lab)
        assert status == "FAIL" and "secrets as identity" in actual, actual   # the seeded ones
        everything = kubectl(lab, "get", "secrets", "-A", "-o", "json").stdout
        assert kubectl(lab, "replace", "-f", "-", stdin=everything).returncode == 0
        total = len(json.loads(everything)["items"])
        status, actual = stored_check(lab)
        assert status == "PASS" and f"all {total} stored objects" in actual, actual
        assert "aescbc:key1" in actual and "etcdctl" in actual
        enc.write_text(ENCRYPTION.format(name="key2", secret=base64.b64encode(b"n" * 32).decode()))
        wait_for(lambda: kubectl(lab, "get", "secret", "enc", "-n", "apps").returncode == 1,
                 timeout=20)
        failed = kubectl(lab, "get", "secret", "enc", "-n", "apps")
        # the identity fallback matches every value and reports what it met, as upstream
        assert ('unable to transform key "/registry/secrets/apps/enc": identity transformer '
                'tried to read encrypted data' in failed.stderr)
        status, actual = stored_check(lab)
        assert status == "FAIL" and f"{total} secrets as aescbc:key1" in actual, actual
        assert f"{total} of them unreadable, under a key the config no longer holds" in actual


def test_the_stored_census_counts_every_secret_of_a_keyspace_over_several_pages(lab_factory):
    """1.2.28e reads etcd 500 keys a page: 1100 seeded secrets plus kubeadm's are three pages,
    and every one is counted once, as the API server lists them."""
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True,
                             seed_secrets=1100) as lab:
        def names() -> list[str]:
            return kubectl(lab, "get", "secrets", "-A", "-o", "name").stdout.split()

        wait_for(lambda: sum(n.startswith("secret/bulk-") for n in names()) == 1100, timeout=60)
        listed = len(names())
        status, actual = stored_check(lab)
        assert (status, actual) == ("FAIL", f"no EncryptionConfiguration: {listed} secrets stored "
                                            "in plaintext (read with etcdctl)")


def stored_check(lab) -> tuple[str, str]:
    """harden check's verdict on 1.2.28e for cp1: (status, actual)."""
    out = subprocess.run([sys.executable, "-m", "harden.cli", "check", "-i", str(lab.inventory),
                          "-l", "cp1", "--format", "json"], capture_output=True, text=True,
                         timeout=120)
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("id") == "1.2.28e":
                found.append((node.get("status"), node.get("actual")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(json.loads(out.stdout))
    assert found, out.stderr
    return found[0]


def section5(lab) -> dict[str, tuple[str, str, str | None]]:
    """id -> (status, actual, computed) of the automated section-5 checks on cp1."""
    out = subprocess.run([sys.executable, "-m", "harden.cli", "check", "-i", str(lab.inventory),
                          "-l", "cp1", "--format", "json"], capture_output=True, text=True,
                         timeout=180)
    found: dict[str, tuple[str, str]] = {}

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("id", "")).startswith(("5.1.", "5.2.1", "5.3.2")) and "status" in node:
                found[node["id"]] = (node["status"], node.get("actual") or "",
                                     node.get("computed"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(json.loads(out.stdout))
    return found


# What kube-bench's cis-1.12 definitions conclude on the seeded objects (unscored: a failure
# is WARN); the ids not listed are manual checks.
KUBEADM_5 = {"5.1.1": "WARN", "5.1.2": "PASS", "5.1.3": "PASS", "5.1.4": "PASS", "5.1.5": "WARN",
             "5.2.1": "WARN", "5.3.2": "WARN"}
WEAK_5 = {"5.1.1": "WARN", "5.1.2": "WARN", "5.1.3": "WARN", "5.1.4": "WARN", "5.1.5": "WARN",
          "5.2.1": "WARN", "5.3.2": "WARN"}


def test_section5_judges_the_weak_labs_objects(lab_factory):
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True, profile="weak") as weak:
        wait_for(lambda: kubectl(weak, "get", "pod", "privileged-debug", "-n", "legacy")
                 .returncode == 0)
        verdicts = section5(weak)
    assert {i: verdicts[i][0] for i in WEAK_5} == WEAK_5, verdicts
    # kube-bench's WARN, and the test's own verdict beside it: every one of them fails here
    assert {i: verdicts[i][2] for i in WEAK_5} == {i: "FAIL" for i in WEAK_5}, verdicts
    assert "dev-admin -> User dev@example.com" in verdicts["5.1.1"][1]
    assert "ClusterRole ops-wildcard" in verdicts["5.1.3"][1]
    assert "legacy" in verdicts["5.2.1"][1] and "legacy" in verdicts["5.3.2"][1]
    assert not any(a.startswith("not checked") or "kubectl failed" in a
                   for _, a, _ in verdicts.values())


def test_section5_on_kubeadm_objects_and_after_the_pod_security_labels(lab, tmp_path):
    verdicts = section5(lab)
    assert {i: verdicts[i][0] for i in KUBEADM_5} == KUBEADM_5, verdicts
    assert {i: verdicts[i][2] for i in KUBEADM_5} == \
        {i: "FAIL" if s == "WARN" else None for i, s in KUBEADM_5.items()}, verdicts
    assert not any("kubectl failed" in actual for _, actual, _ in verdicts.values())
    assert "kubeadm:cluster-admins -> Group kubeadm:cluster-admins" in verdicts["5.1.1"][1]
    playbook = __import__("pathlib").Path(__file__).resolve().parents[2] / "playbooks/pod-security.yml"
    applied = subprocess.run(
        [sys.executable, "-m", "harden.cli", "apply", "-i", str(lab.inventory), str(playbook),
         "-e", "pod_security_namespace_labels=true", "-e", "network_policy_default_deny=true",
         "-e", "harden_wait_interval=0.5"], capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "HARDEN_STATE_DIR": str(tmp_path)})
    assert applied.returncode == 0, applied.stdout[-3000:]
    labels = json.loads(kubectl(lab, "get", "ns", "-o", "json").stdout)["items"]
    levels = {n["metadata"]["name"]: n["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
              for n in labels}
    assert levels["kube-system"] == "privileged" and levels["apps"] == "baseline"
    after = section5(lab)
    assert after["5.2.1"][0] == "PASS", after["5.2.1"]
    assert after["5.3.2"] == ("WARN", "1 namespaces without a NetworkPolicy: kube-system", "FAIL")
