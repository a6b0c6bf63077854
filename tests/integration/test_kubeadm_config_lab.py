"""A cluster that starts hardened (issue 11): a lab started from `harden kubeadm-config` output
(`harden lab up --kubeadm-config DIR`, the lab's kubeadm init) against a default lab hardened
by `harden apply` (site.yml, then encryption-at-rest.yml's prepare run).

* `harden check` on it FAILs only the scored checks a kubeadm config cannot fix;
* its control-plane manifests carry the same flags, component by component, as the default
  lab's after apply (per-node facts aside: addresses and the per-node ports the lab gives);
* `harden apply site.yml` on it afterwards changes no flag, volume or kubelet key; what it
  does change is pinned here and listed in docs/operations.md.
"""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from harden.apply.manifest import Manifest
from support.lab_cli import harden
from support.paths import REPO

pytestmark = pytest.mark.lab

KEY = base64.b64encode(bytes(range(1, 33))).decode()
SITE = str(REPO / "playbooks" / "site.yml")
ENCRYPTION = str(REPO / "playbooks" / "encryption-at-rest.yml")
LAB_VARS = ("-e", "harden_wait_interval=0.5")
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd")
# What a kubeadm config cannot fix (docs/operations.md): etcd runs as root, kubelet serving
# certificates are not CA-signed, token lifetimes are left alone (the three site.yml leaves
# too), and on every node the modes of the kubelet package's drop-in and of the config.yaml
# kubeadm writes (0644 both; site.yml's cis-worker play fixes them after init).
UNFIXABLE = {"1.1.12", "1.2.5", "1.2.30"}
NODE_FILES = {"4.1.1", "4.1.9"}
# Flags whose value is a per-node fact: the lab gives each node its own ports on 127.0.0.1.
PER_NODE = {"secure-port"}
KUBELET_PER_NODE = {"address", "healthzBindAddress"}
# What apply site.yml still changes on the kubeadm-config lab: the config-hash annotations
# static_pod keeps for the files the API server reads (a kubeadm config has no such field)
# and the two file modes of NODE_FILES.
APPLY_CHANGES = {"kube-apiserver audit flags and mounts",
                 "kube-apiserver uses it, with EventRateLimit enabled",
                 "kubelet drop-in (pkgs.k8s.io packages) at most 0600 root:root (4.1.1, 4.1.2)",
                 "kubelet unit (written by hand or legacy packages) at most 0600 root:root "
                 "(4.1.1, 4.1.2)",
                 "kubelet config file at most 0600 root:root (4.1.9, 4.1.10)"}


def scored_fails(lab, state_dir) -> dict[str, set[str]]:
    done = harden(state_dir, "check", "-i", str(lab.inventory), "--format", "json")
    assert done.returncode in (0, 2), done.stderr
    fails: dict[str, set[str]] = {host: set() for host in lab.nodes}
    for result in json.loads(done.stdout)["results"]:
        if result["scored"] and result["status"] in ("FAIL", "ERROR"):
            fails[result["host"]].add(result["id"])
    return fails


def manifest_flags(lab, node: str, component: str) -> dict[str, str | None]:
    """The component's flags with this lab's node addresses replaced, per-node ports left out."""
    path = lab.node_root(node) / "etc/kubernetes/manifests" / f"{component}.yaml"
    flags = Manifest(path.read_text(), str(path)).flags(None)
    out = {}
    for name, value in flags.items():
        if name in PER_NODE:
            continue
        for other, address in lab.nodes.items():
            value = value.replace(address, f"<{other}>") if value else value
        out[name] = value
    return out


def kubelet_config(lab, node: str) -> dict:
    """The node's KubeletConfiguration without the node's own addresses (the lab's)."""
    config = yaml.safe_load((lab.node_root(node) / "var/lib/kubelet/config.yaml").read_text())
    return {k: v for k, v in config.items() if k not in KUBELET_PER_NODE}


def apply(lab, state_dir, *args: str) -> dict:
    done = harden(state_dir, "apply", "-i", str(lab.inventory), *args, *LAB_VARS,
                  "--format", "json", timeout=500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return json.loads(done.stdout)


def kubeadm_config(tmp_path, api: str):
    config = tmp_path / f"kubeadm-{api}"
    made = harden(tmp_path, "kubeadm-config", str(config), "--kubeadm-api", api,
                  "-e", f"encryption_key={KEY}")
    assert made.returncode == 0, made.stderr
    return config


def assert_only_unfixable_fails(lab, fails: dict[str, set[str]]) -> None:
    for host, role in lab.roles.items():
        assert fails[host] == NODE_FILES | (UNFIXABLE if role == "control-plane" else set()), \
            (host, fails[host])


@pytest.mark.timeout(300)
def test_lab_from_v1beta3_kubeadm_config_fails_only_what_a_config_cannot_fix(lab_factory,
                                                                              tmp_path):
    """The map shape reaches the same cluster (the flags themselves: the v1beta4 test below
    and the unit tests, which find both shapes' extraArgs identical)."""
    with lab_factory.running(control_planes=1, workers=1, wait_ready=True,
                             kubeadm_config_dir=kubeadm_config(tmp_path, "v1beta3")) as lab:
        assert json.loads((lab.dir / "lab.json").read_text())["kubeadm_api"] == "v1beta3"
        assert_only_unfixable_fails(lab, scored_fails(lab, tmp_path))


@pytest.mark.timeout(900)
def test_lab_from_kubeadm_config_is_hardened_like_applied_playbooks(lab_factory, tmp_path):
    built = lab_factory.start(control_planes=1, workers=1,
                              kubeadm_config_dir=kubeadm_config(tmp_path, "v1beta4"))
    reference = lab_factory.start(control_planes=1, workers=1)
    try:
        built.wait_ready(60)
        reference.wait_ready(60)
        fails = scored_fails(built, tmp_path)
        assert_only_unfixable_fails(built, fails)

        apply(reference, tmp_path, SITE)
        apply(reference, tmp_path, ENCRYPTION, "-e", f"encryption_key={KEY}")
        reference.wait_ready(60)
        cp, ref_cp = built.names("control-plane")[0], reference.names("control-plane")[0]
        assert cp == ref_cp
        for component in COMPONENTS:
            assert manifest_flags(built, cp, component) == \
                manifest_flags(reference, ref_cp, component), component
        for node in built.nodes:
            assert kubelet_config(built, node) == kubelet_config(reference, node), node

        flags = {c: manifest_flags(built, cp, c) for c in COMPONENTS}
        kubelet = {n: kubelet_config(built, n) for n in built.nodes}
        result = apply(built, tmp_path, SITE)
        changed = {t["task"] for tasks in result["tasks"].values() for t in tasks
                   if t["status"] == "changed"}
        assert changed <= APPLY_CHANGES, changed - APPLY_CHANGES
        built.wait_ready(60)
        assert {c: manifest_flags(built, cp, c) for c in COMPONENTS} == flags
        assert {n: kubelet_config(built, n) for n in built.nodes} == kubelet
        assert scored_fails(built, tmp_path) == \
            {host: ids - NODE_FILES for host, ids in fails.items()}
    finally:
        built.down()
        reference.down()
