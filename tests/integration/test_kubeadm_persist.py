"""Hardening that survives kubeadm (issue 11): site.yml keeps what it changes in kube-system's
kubeadm-config and kubelet-config, so the lab's `kubeadm upgrade apply|node` (harden/lab/kubeadm.py,
which regenerates manifests and the kubelet config from them) leaves `harden check` where the
apply left it; with persistence off the same upgrade undoes the hardening; the drift item
1.1.22k names a flag set by hand; a rollback of the run puts both ConfigMaps back byte for byte."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(not shutil.which("kubectl"), reason="needs kubectl")]

SITE = str(Path(__file__).resolve().parents[2] / "playbooks" / "site.yml")
LAB_VARS = ("-e", "harden_wait_interval=0.5")
DRIFT = "1.1.22k"
MANIFEST = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def harden(state_dir, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARDEN_STATE_DIR": str(state_dir)}
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=900, env=env)


def check(lab, state_dir) -> list[dict]:
    done = harden(state_dir, "check", "-i", str(lab.inventory), "--format", "json")
    assert done.returncode in (0, 2), done.stderr
    return json.loads(done.stdout)["results"]


def scored_fails(results: list[dict]) -> dict[str, set[str]]:
    fails: dict[str, set[str]] = {}
    for r in results:
        fails.setdefault(r["host"], set())
        if r["scored"] and r["status"] == "FAIL":
            fails[r["host"]].add(r["id"])
    return fails


def configmap_data(lab) -> dict[str, str]:
    """Both ConfigMaps' data values exactly as the API returns them (jsonpath, no parsing)."""
    out = {}
    for name, key in (("kubeadm-config", "ClusterConfiguration"), ("kubelet-config", "kubelet")):
        done = lab.ssh("cp1", f"kubectl --kubeconfig=/etc/kubernetes/admin.conf -n kube-system "
                              f"get cm {name} -o 'jsonpath={{.data.{key}}}'", check=True)
        out[name] = done.stdout
    return out


def apply_site(lab, state_dir, *extra: str) -> dict:
    done = harden(state_dir, "apply", "-i", str(lab.inventory), SITE, *LAB_VARS, *extra,
                  "--format", "json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return json.loads(done.stdout)


def kubeadm_upgrade(lab) -> None:
    """What an operator does: `kubeadm upgrade apply` on each control plane, `upgrade node` on
    the workers, then restart each kubelet (the upgrade rewrote its config.yaml)."""
    for node, role in lab.roles.items():
        command = "kubeadm upgrade apply -y" if role == "control-plane" else \
            "kubeadm upgrade node"
        done = lab.ssh(node, command, check=False, timeout=300)
        assert done.returncode == 0, (node, done.stdout[-2000:], done.stderr[-2000:])
        lab.ssh(node, "systemctl restart kubelet", check=True)
    lab.wait_ready(timeout=120)


@pytest.fixture(params=[("v1beta4", "kubeadm"), ("v1beta3", "weak")],
                ids=["v1beta4-kubeadm", "v1beta3-weak"])
def lab(lab_factory, request):
    api, profile = request.param
    with lab_factory.running(control_planes=1, workers=1, wait_ready=True, profile=profile,
                             kubeadm_api=api) as lab:
        yield lab


@pytest.mark.timeout(1200)
def test_hardening_survives_kubeadm_upgrade_and_rollback_restores_the_configmaps(lab, tmp_path):
    before = configmap_data(lab)
    assert DRIFT not in scored_fails(check(lab, tmp_path))["cp1"]
    run = apply_site(lab, tmp_path)
    kept = configmap_data(lab)
    assert kept["kubeadm-config"] != before["kubeadm-config"]
    assert kept["kubelet-config"] != before["kubelet-config"]
    assert "audit-policy-file" in kept["kubeadm-config"]
    after_apply = scored_fails(check(lab, tmp_path))
    assert DRIFT not in after_apply["cp1"]
    kubeadm_upgrade(lab)
    assert scored_fails(check(lab, tmp_path)) == after_apply
    # nothing was lost; kubeadm writes no pod annotations, so only the config-hash annotation
    # of the two tasks that hash a config file (audit policy, admission config) comes back
    again = apply_site(lab, tmp_path)
    changed = {t["task"] for tasks in again["tasks"].values() for t in tasks
               if t["status"] == "changed"}
    assert changed <= {"kube-apiserver audit flags and mounts",
                       "kube-apiserver uses it, with EventRateLimit enabled"}, changed
    back = harden(tmp_path, "rollback", "-i", str(lab.inventory), run["run_id"], "--force")
    assert back.returncode == 0, back.stdout[-2000:] + back.stderr
    assert configmap_data(lab) == before


@pytest.mark.timeout(1200)
def test_without_persistence_the_upgrade_undoes_the_hardening_and_the_drift_item_says_so(
        lab_factory, tmp_path):
    with lab_factory.running(control_planes=1, workers=1, wait_ready=True) as lab:
        lab.ssh("cp1", f"sed -i 's/^    - --secure-port=6443$/    - --profiling=false\\n&/' "
                       f"{MANIFEST}", check=True)
        lab.wait_ready(timeout=120)
        drift = [r for r in check(lab, tmp_path) if r["id"] == DRIFT and r["host"] == "cp1"]
        assert drift[0]["status"] == "FAIL"
        assert "kube-apiserver --profiling=false is not in ClusterConfiguration" in \
            drift[0]["actual"]
        before = configmap_data(lab)
        apply_site(lab, tmp_path, "-e", "harden_kubeadm_persist=false")
        assert configmap_data(lab) == before
        after_apply = scored_fails(check(lab, tmp_path))
        assert DRIFT in after_apply["cp1"]
        kubelet = "cat /var/lib/kubelet/config.yaml"
        assert "protectKernelDefaults: true" in lab.ssh("w1", kubelet).stdout
        kubeadm_upgrade(lab)
        after_upgrade = scored_fails(check(lab, tmp_path))
        lost = after_upgrade["cp1"] - after_apply["cp1"]
        assert {"1.2.15", "1.2.16", "1.3.2"} <= lost, after_upgrade
        assert "protectKernelDefaults: true" not in lab.ssh("w1", kubelet).stdout
        assert DRIFT not in after_upgrade["cp1"]      # the manifest is kubeadm's again


@pytest.mark.timeout(1200)
def test_encryption_is_never_enabled_while_cluster_configuration_lacks_its_flag(lab_factory,
                                                                                tmp_path):
    playbook = str(Path(SITE).parent / "encryption-at-rest.yml")
    key = tmp_path / "key.yml"
    key.write_text("encryption_key: " + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=\n")
    key.chmod(0o600)

    def encryption(*extra: str) -> subprocess.CompletedProcess:
        return harden(tmp_path, "apply", "-i", str(lab.inventory), playbook, *LAB_VARS,
                      "-e", f"@{key}", "-e", "encryption_rewrite=false", *extra)

    # encryption-at-rest.yml runs on the control planes only: a worker would prove nothing
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True) as lab:
        prepared = encryption("-e", "harden_kubeadm_persist=false")
        assert prepared.returncode == 0, prepared.stdout[-2000:] + prepared.stderr
        assert "encryption-provider-config" not in configmap_data(lab)["kubeadm-config"]
        refused = encryption("-e", "encryption_phase=enable")
        assert refused.returncode != 0
        assert "kube-system/kubeadm-config (ClusterConfiguration) lacks " \
               "--encryption-provider-config" in refused.stdout + refused.stderr
        assert "secretbox" not in lab.ssh(
            "cp1", "head -c 400 /etc/kubernetes/enc/encryption-config.yaml | "
                   "grep -m1 -o 'identity\\|secretbox'").stdout       # identity still writes
        again = encryption()                                 # prepare keeps flag and volume
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr
        config = configmap_data(lab)["kubeadm-config"]
        assert "encryption-provider-config" in config and "hostPath: /etc/kubernetes/enc" in config
        enabled = encryption("-e", "encryption_phase=enable")
        assert enabled.returncode == 0, enabled.stdout[-2000:] + enabled.stderr
