"""The shipped content on lab clusters set up the way real ones can be (issue 12): structured
authorization instead of --authorization-mode, and admission plugins asked for before their
configuration exists. The lab's API server refuses both mistakes exactly as the real one does,
so a wrong playbook would show here as a crash-looping control plane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"
AUTHZ = "/etc/kubernetes/pki/authorization-config.yaml"
AUTHZ_CONFIG = """apiVersion: apiserver.config.k8s.io/v1
kind: AuthorizationConfiguration
authorizers:
- type: Node
  name: node
- type: RBAC
  name: rbac
"""
LAB_VARS = ("-e", "harden_wait_interval=0.5")


def harden(state_dir, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARDEN_STATE_DIR": str(state_dir), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=500, env=env)


def statuses(lab, state_dir, *ids: str) -> list[str]:
    done = harden(state_dir, "check", "-i", str(lab.inventory), "--format", "json")
    assert done.returncode in (0, 2), done.stderr
    found = {r["id"]: r for r in json.loads(done.stdout)["results"]
             if lab.roles[r["host"]] == "control-plane"}
    return [found[i]["status"] for i in ids]


@pytest.fixture(scope="module")
def authz_lab(lab_factory):
    """One kubeadm control plane whose API server authorizes through an
    AuthorizationConfiguration (as kubeadm writes it: no --authorization-mode)."""
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True) as lab:
        cp = lab.names("control-plane")[0]
        lab.ssh(cp, f"umask 077; cat > {AUTHZ}", stdin=AUTHZ_CONFIG)
        lab.ssh(cp, f"sed -i 's|    - --authorization-mode=Node,RBAC|"
                    f"    - --authorization-config={AUTHZ}|' {APISERVER}")
        lab.wait_ready(60)
        yield lab


@pytest.mark.timeout(600)
def test_control_plane_play_leaves_authorization_mode_alone_with_an_authorization_config(
        authz_lab, tmp_path):
    lab, cp = authz_lab, authz_lab.names("control-plane")[0]
    done = harden(tmp_path, "apply", "-i", str(lab.inventory),
                  str(PLAYBOOKS / "cis-control-plane.yml"), *LAB_VARS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "left --authorization-mode alone: --authorization-config is set" in done.stdout
    manifest = lab.ssh(cp, f"cat {APISERVER}").stdout
    assert "--authorization-mode" not in manifest and "--profiling=false" in manifest
    lab.wait_ready(60)
    assert statuses(lab, tmp_path, "1.2.6", "1.2.7", "1.2.8", "1.2.15") == ["PASS"] * 4


@pytest.mark.timeout(600)
def test_plugin_without_its_configuration_is_refused_and_nothing_stays_changed(
        authz_lab, tmp_path):
    lab, cp = authz_lab, authz_lab.names("control-plane")[0]
    before = lab.ssh(cp, f"sha256sum {APISERVER}").stdout
    extra = tmp_path / "plugins.yml"
    extra.write_text("apiserver_admission_plugins: [NodeRestriction, EventRateLimit]\n")
    done = harden(tmp_path, "apply", "-i", str(lab.inventory),
                  str(PLAYBOOKS / "cis-control-plane.yml"), "-e", f"@{extra}", *LAB_VARS)
    assert done.returncode == 4, done.stdout[-3000:] + done.stderr
    assert "admission plugin EventRateLimit needs its configuration and " \
           "--admission-control-config-file is not set" in done.stdout + done.stderr
    assert lab.ssh(cp, f"sha256sum {APISERVER}").stdout == before
    lab.wait_ready(60)


@pytest.mark.timeout(600)
def test_pod_security_play_prints_its_preflight_and_enforces_nothing_cluster_wide(
        authz_lab, tmp_path):
    lab, cp = authz_lab, authz_lab.names("control-plane")[0]
    done = harden(tmp_path, "apply", "-i", str(lab.inventory),
                  str(PLAYBOOKS / "pod-security.yml"), *LAB_VARS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    # the lab's API server serves namespaces without pods: every namespace would be safe to
    # enforce, kube-system is exempt, and nothing is labelled without being asked
    assert "default: no violations; enforce=baseline would be safe" in done.stdout, done.stdout
    assert "kube-system: exempt" in done.stdout, done.stdout
    config = lab.ssh(cp, "cat /etc/kubernetes/admission/admission-config.yaml").stdout
    assert 'enforce: "privileged"' in config and 'audit: "restricted"' in config
    assert "EventRateLimit" in lab.ssh(cp, f"grep enable-admission-plugins {APISERVER}").stdout
    lab.wait_ready(60)


@pytest.mark.timeout(600)
def test_kubelet_play_refuses_a_sysctl_file_that_would_undo_its_settings_at_boot(
        authz_lab, tmp_path):
    lab, cp = authz_lab, authz_lab.names("control-plane")[0]
    lab.ssh(cp, "printf 'vm.overcommit_memory = 0\\n' > /etc/sysctl.d/99-tuning.conf")
    config_before = lab.ssh(cp, "sha256sum /var/lib/kubelet/config.yaml").stdout
    try:
        done = harden(tmp_path, "apply", "-i", str(lab.inventory),
                      str(PLAYBOOKS / "kubelet.yml"), *LAB_VARS)
        assert done.returncode == 4, done.stdout[-3000:] + done.stderr
        assert "vm.overcommit_memory: /etc/sysctl.d/99-tuning.conf sets 0 and is read after " \
               "/etc/sysctl.d/90-harden-kubelet.conf at boot" in done.stdout
        assert lab.ssh(cp, "sha256sum /var/lib/kubelet/config.yaml").stdout == config_before
    finally:
        lab.ssh(cp, "rm -f /etc/sysctl.d/99-tuning.conf")
    done = harden(tmp_path, "apply", "-i", str(lab.inventory), str(PLAYBOOKS / "kubelet.yml"),
                  *LAB_VARS)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "podPidsLimit: 16384" in lab.ssh(cp, "cat /var/lib/kubelet/config.yaml").stdout
