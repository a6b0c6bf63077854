"""Check 1.1.22k (beyond CIS): the manifests' hardened flags and volumes against kubeadm's
ClusterConfiguration, as the probe records them (manifest contents, `K|kubeadm-config`)."""

from __future__ import annotations

import pytest

from harden.cis import cluster_checks as cc
from harden.cis.catalogue import load_catalogue
from harden.cis.context import HostContext
from harden.cis.probe import Facts
from support.paths import FIXTURES

MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"
V4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
WATCHED = next(c for c in load_catalogue().checks if c.id == "1.1.22k").audit["kubeadm_config"]
AUDIT_MOUNT = (b"    volumeMounts:\n", b"    volumeMounts:\n    - mountPath: /etc/kubernetes/"
               b"audit-policy.yaml\n      name: audit\n      readOnly: true\n")
AUDIT_VOLUME = (b"  volumes:\n", b"  volumes:\n  - hostPath:\n      path: /etc/kubernetes/"
                b"audit-policy.yaml\n      type: File\n    name: audit\n")
AUDIT_FLAG = (b"    - --secure-port=6443\n", b"    - --secure-port=6443\n    - --audit-policy-file="
              b"/etc/kubernetes/audit-policy.yaml\n    - --profiling=false\n")


def hardened_manifest() -> str:
    text = (FIXTURES / "manifests" / "kube-apiserver.yaml").read_bytes()
    for old, new in (AUDIT_MOUNT, AUDIT_VOLUME, AUDIT_FLAG):
        assert old in text
        text = text.replace(old, new, 1)
    return text.decode()


def verdict(config: str | None, rc: int = 0):
    facts = Facts(contents={MANIFEST: hardened_manifest()})
    if config is not None:
        facts.kubectl["kubeadm-config"] = (rc, config)
    else:
        facts.kubectl["unavailable"] = (0, "/etc/kubernetes/admin.conf is not present")
    return cc.kubeadm_agreement(WATCHED, HostContext(facts))


def test_fails_naming_each_flag_and_volume_the_next_upgrade_would_drop():
    found = verdict(V4)
    assert found.passed is False
    assert found.actual == (
        "the next kubeadm upgrade would drop: kube-apiserver --profiling=false is not in "
        "ClusterConfiguration; kube-apiserver --audit-policy-file=/etc/kubernetes/audit-policy.yaml"
        " is not in ClusterConfiguration; kube-apiserver hostPath volume "
        "/etc/kubernetes/audit-policy.yaml (at /etc/kubernetes/audit-policy.yaml, for "
        "--audit-policy-file) is not in extraVolumes")


@pytest.mark.parametrize("config", [
    V4 + "apiServer:\n  extraArgs:\n  - name: profiling\n    value: \"false\"\n"
         "  - name: audit-policy-file\n    value: /etc/kubernetes/audit-policy.yaml\n"
         "  extraVolumes:\n  - name: audit\n    hostPath: /etc/kubernetes/audit-policy.yaml\n"
         "    mountPath: /etc/kubernetes/audit-policy.yaml\n    readOnly: true\n",
    "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n"
    "    profiling: \"false\"\n    audit-policy-file: /etc/kubernetes/audit-policy.yaml\n"
    "  extraVolumes:\n  - name: audit\n    hostPath: /etc/kubernetes/audit-policy.yaml\n"
    "    mountPath: /etc/kubernetes/audit-policy.yaml\n",
], ids=["v1beta4", "v1beta3"])
def test_passes_when_cluster_configuration_keeps_them(config):
    found = verdict(config)
    assert found.passed is True and "ClusterConfiguration" in found.actual


def test_without_the_configmap_it_is_skipped_and_unreadable_it_warns():
    assert verdict("").status == "SKIP"
    assert verdict(None).status == "WARN"
    assert verdict("Error from server (Forbidden)", rc=1).status == "WARN"


def test_a_configuration_kubeadm_would_refuse_fails():
    found = verdict("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
                    "apiServer:\n  extraArgs:\n    profiling: \"false\"\n")
    assert found.passed is False and "v1beta4 takes a list" in found.actual
