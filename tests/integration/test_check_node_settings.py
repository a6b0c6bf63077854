"""`harden check` on a live lab where a component's effective setting is not where CIS looks:
kube-scheduler with --config (the --profiling flag is ignored, enableProfiling decides, 1.4.1)
and a sysctl file that would undo a kernel tunable the kubelet requires at the next boot
(4.2.14k). Each is fixed with the shipped playbook and checked again."""

from __future__ import annotations

import json

import pytest
import yaml
from support.lab_cli import harden

from support.rotation import LAB_VARS, PLAYBOOKS

pytestmark = pytest.mark.lab

SCHEDULER = "etc/kubernetes/manifests/kube-scheduler.yaml"
CONFIG = "/etc/kubernetes/scheduler-config.yaml"


@pytest.fixture(scope="module")
def lab(lab_factory):
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True) as lab:
        yield lab


def check(lab, state, cid: str) -> tuple[int, dict]:
    done = harden(state, "check", "-i", str(lab.inventory), "--format", "json")
    assert done.returncode in (0, 2), done.stdout[-2000:] + done.stderr
    [result] = [r for r in json.loads(done.stdout)["results"] if r["id"] == cid]
    return done.returncode, result


def apply(lab, state, playbook: str):
    done = harden(state, "apply", "-i", str(lab.inventory), str(PLAYBOOKS / playbook), *LAB_VARS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    lab.wait_ready(timeout=120)


def test_scheduler_with_config_ignores_the_profiling_flag(lab, tmp_path):
    cp = lab.names("control-plane")[0]
    root = lab.node_root(cp)
    (root / CONFIG.lstrip("/")).write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
        "clientConnection:\n  kubeconfig: /etc/kubernetes/scheduler.conf\n")
    manifest = root / SCHEDULER
    pod = yaml.safe_load(manifest.read_text())
    container = pod["spec"]["containers"][0]
    container["command"] += ["--profiling=false", f"--config={CONFIG}"]
    container.setdefault("volumeMounts", []).append(
        {"name": "scheduler-config", "mountPath": CONFIG, "readOnly": True})
    pod["spec"].setdefault("volumes", []).append(
        {"name": "scheduler-config", "hostPath": {"path": CONFIG, "type": "FileOrCreate"}})
    manifest.write_text(yaml.safe_dump(pod))
    lab.wait_ready(timeout=120)

    _, before = check(lab, tmp_path, "1.4.1")
    assert before["status"] == "FAIL", before
    assert "--profiling=false is ignored" in before["actual"]
    assert f"runs with --config {CONFIG}; the default is true" in before["actual"]

    apply(lab, tmp_path, "cis-control-plane.yml")
    assert "enableProfiling: false" in (root / CONFIG.lstrip("/")).read_text()
    _, after = check(lab, tmp_path, "1.4.1")
    assert after["status"] == "PASS", after
    assert "config enableProfiling = false" in after["actual"] and not after.get("drift")


def test_a_later_sysctl_file_undoing_a_kubelet_tunable_is_reported(lab, tmp_path):
    cp = lab.names("control-plane")[0]
    apply(lab, tmp_path, "kubelet.yml")
    code, clean = check(lab, tmp_path, "4.2.14k")
    assert clean["status"] == "PASS", clean
    assert "/etc/sysctl.d/90-harden-kubelet.conf" in clean["actual"]

    lab.ssh(cp, "printf 'net.core.somaxconn = 4096\\nvm.overcommit_memory = 0\\n' "
                "> /etc/sysctl.d/99-tuning.conf")
    try:
        code, result = check(lab, tmp_path, "4.2.14k")
        assert code == 2 and result["status"] == "FAIL", result
        assert "/etc/sysctl.d/99-tuning.conf sets vm.overcommit_memory = 0" in result["actual"]
        assert "would not start after a reboot" in result["drift"]
    finally:
        lab.ssh(cp, "rm -f /etc/sysctl.d/99-tuning.conf")
