"""Failure paths of `harden apply` on the lab (issue 4 acceptance 4 and 6): a control plane
that fails verification is rolled back and the rollout stops; a run killed half-way is shown
as interrupted and can be rolled back."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from support.lab_cli import APISERVER, harden

pytestmark = pytest.mark.lab

MANIFESTS = {"etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml",
             "kube-scheduler.yaml"}


def bad_plugin_play(timeout: int) -> str:
    return f"""
- name: Unknown admission plugin
  hosts: control_plane
  serial: 1
  become: true
  tasks:
    - name: enable a plugin that does not exist
      static_pod:
        manifest: {APISERVER}
        add_to_list:
          enable-admission-plugins: [NoSuchPlugin]
      notify: wait for kube-apiserver
  handlers:
    - name: wait for kube-apiserver
      wait_for_static_pod:
        name: kube-apiserver
        successes: 2
        timeout: {timeout}
        interval: 1
"""


@pytest.fixture(scope="module")
def lab2cp(lab_factory):
    """Two control planes: what a rollout that stops after the first must leave alone, and
    what a dead run's preflight locked, is proved by one other node as well as by two."""
    with lab_factory.running(control_planes=2, workers=0) as lab:
        yield lab


def manifest_state(lab, node: str) -> tuple[str, int, int, int]:
    path = lab.node_root(node) / APISERVER.lstrip("/")
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mode & 0o7777, st.st_uid, \
        st.st_gid


def static_pod_files_seen(lab, node: str) -> set[str]:
    """Every non-dot file the lab kubelet ever saw in its static-pod dir (acceptance 7:
    restore temp files are dot-prefixed, backups live elsewhere)."""
    state = json.loads((lab.node_root(node) / "var/lib/kubelet/harden-lab-pods.json")
                       .read_text())
    return set(state["seen_files"])


def apiserver_healthy(lab, node: str) -> bool:
    address = lab.nodes[node]
    result = lab.ssh(node, f"curl -sk -o /dev/null -w '%{{http_code}}' "
                           f"https://{address}:6443/livez", check=False)
    return result.stdout.strip() in ("200", "401")


def test_failed_verification_rolls_back_the_first_control_plane_only(lab2cp, tmp_path):
    playbook = tmp_path / "bad-plugin.yml"
    playbook.write_text(bad_plugin_play(timeout=8))
    before = {node: manifest_state(lab2cp, node) for node in lab2cp.nodes}
    result = harden(tmp_path, "apply", "-i", str(lab2cp.inventory), str(playbook),
                    "--format", "json")
    assert result.returncode == 4, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert list(report["hosts"]) == ["cp1"]
    assert report["hosts"]["cp1"]["rolled_back"] == 1 and report["hosts"]["cp1"]["failed"] == 1
    assert report["stopped"]
    assert {node: manifest_state(lab2cp, node) for node in lab2cp.nodes} == before
    assert apiserver_healthy(lab2cp, "cp1")
    assert static_pod_files_seen(lab2cp, "cp1") == MANIFESTS
    for node in sorted(lab2cp.nodes)[1:]:
        assert not (lab2cp.node_root(node) / "var/lib/harden/backups").exists()
    text = harden(tmp_path, "apply", "-i", str(lab2cp.inventory), str(playbook))
    assert text.returncode == 4
    row = next(line for line in text.stdout.splitlines() if re.match(r"cp1\s+\d", line))
    failed, unreachable, rolled_back = row.split()[3:6]
    assert (failed, unreachable, rolled_back) == ("1", "0", "1"), text.stdout


def test_killed_run_shows_interrupted_and_rollback_restores(lab2cp, tmp_path):
    playbook = tmp_path / "bad-plugin.yml"
    playbook.write_text(bad_plugin_play(timeout=120))
    before = manifest_state(lab2cp, "cp1")
    backups = lab2cp.node_root("cp1") / "var/lib/harden/backups"
    existing = set(os.listdir(backups)) if backups.exists() else set()
    environ = {**os.environ, "HARDEN_STATE_DIR": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "harden.cli", "apply", "-i",
                                str(lab2cp.inventory), str(playbook)], env=environ,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _new_backup(backups, existing):
            time.sleep(0.1)
        assert _new_backup(backups, existing), "the run never wrote a backup"
        # the first backup may be kubeadm-config's (the ConfigMap is written before the
        # manifest): wait for the manifest itself
        while time.monotonic() < deadline and manifest_state(lab2cp, "cp1") == before:
            time.sleep(0.1)
        time.sleep(0.5)                     # backup and write done; now in the health wait
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert manifest_state(lab2cp, "cp1") != before          # killed with the bad manifest
    locks = {node: lab2cp.node_root(node) / "var/lib/harden/lock" for node in lab2cp.nodes}
    # Locked in the preflight, the other control planes (never reached) stay locked too.
    assert all(os.path.islink(lock) for lock in locks.values())
    listing = json.loads(harden(tmp_path, "runs", "--json").stdout)
    assert listing[0]["interrupted"] is True
    run_id = listing[0]["id"]
    assert "interrupted" in harden(tmp_path, "runs").stdout
    result = harden(tmp_path, "rollback", "-i", str(lab2cp.inventory), run_id)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cp1" in result.stdout and "rolled_back" in result.stdout
    assert result.stdout.count("took over the lock of run " + run_id) == len(locks) == 2
    assert not any(os.path.lexists(lock) for lock in locks.values())
    assert manifest_state(lab2cp, "cp1") == before
    assert apiserver_healthy(lab2cp, "cp1")
    assert static_pod_files_seen(lab2cp, "cp1") == MANIFESTS


def _new_backup(backups, existing: set) -> bool:
    if not backups.exists():
        return False
    return any((backups / name / "index").exists() for name in set(os.listdir(backups))
               - existing)


def test_verification_and_kubelet_wait_work_through_sudo(lab2cp, tmp_path):
    """A non-root login with become: the manifest change is verified although no task waits
    for it, and the kubelet's service state is asked for as root."""
    playbook = tmp_path / "profiling.yml"
    playbook.write_text(f"""
- hosts: cp2
  become: true
  tasks:
    - name: profiling off
      static_pod:
        manifest: {APISERVER}
        set: {{profiling: false}}
    - name: kubelet read-only port off
      kubelet_config:
        set: {{readOnlyPort: 0}}
      notify: [restart kubelet, wait for kubelet]
  handlers:
    - name: restart kubelet
      service: {{name: kubelet, state: restarted}}
    - name: wait for kubelet
      wait_for_kubelet: {{successes: 2, timeout: 30, interval: 1}}
""")
    result = harden(tmp_path, "apply", "-i", str(lab2cp.sudo_inventory), str(playbook),
                    env={"HARDEN_BECOME_PASSWORD": lab2cp.become_password})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verify kube-apiserver  ok" in result.stdout
    assert "wait for kubelet  ok" in result.stdout
    assert "--profiling=false" in lab2cp.ssh("cp2", f"cat {APISERVER}").stdout
    assert apiserver_healthy(lab2cp, "cp2")


def test_a_play_failing_on_every_host_ends_the_run_before_the_next_play(lab2cp, tmp_path):
    """As ansible-playbook: cp1's play failed entirely, so cp2's play is never started; cp1's
    write is rolled back, cp2 is left as it was, and the output says why the run stopped."""
    target = "/etc/kubernetes/harden-stop-rule"
    playbook = tmp_path / "two-plays.yml"
    playbook.write_text(f"""
- name: first control plane
  hosts: cp1
  become: true
  gather_facts: false
  tasks:
    - name: a file, then a failure
      copy: {{dest: {target}, content: "x\\n"}}
    - name: refuse
      fail: {{msg: "this play fails on every host"}}
- name: second control plane
  hosts: cp2
  become: true
  gather_facts: false
  tasks:
    - name: never written
      copy: {{dest: {target}, content: "y\\n"}}
""")
    result = harden(tmp_path, "apply", "-i", str(lab2cp.inventory), str(playbook))
    assert result.returncode == 4, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert "play 'first control plane': stopped, every host of the batch failed (cp1)" in output
    assert "second control plane" not in output and "never written" not in output
    for node in ("cp1", "cp2"):
        assert not (lab2cp.node_root(node) / target.lstrip("/")).exists(), node


def test_unknown_flag_is_rolled_back_within_a_minute_naming_the_component_and_its_error(
        lab2cp, tmp_path):
    """No wait task and no pacing variables: the implicit gate with its defaults notices the
    crash loop from the kubelet's pod log, long before its 300 s timeout."""
    playbook = tmp_path / "unknown-flag.yml"
    playbook.write_text(f"""
- hosts: cp1
  become: true
  tasks:
    - name: a flag kube-apiserver does not know
      static_pod:
        manifest: {APISERVER}
        set: {{no-such-flag: "true"}}
""")
    before = manifest_state(lab2cp, "cp1")
    started = time.monotonic()
    result = harden(tmp_path, "apply", "-i", str(lab2cp.inventory), str(playbook))
    elapsed = time.monotonic() - started
    assert result.returncode == 4, result.stdout + result.stderr
    assert elapsed < 60, f"took {elapsed:.0f}s"
    print(f"unknown flag: exit 4 after {elapsed:.1f}s")
    output = " ".join(result.stdout.split())
    assert "failed to start: static pod kube-apiserver" in output, result.stdout
    assert "unknown flag: --no-such-flag" in output, result.stdout
    assert "rolled back 2 path(s)" in output     # the manifest and kubeadm-config
    assert manifest_state(lab2cp, "cp1") == before
    assert apiserver_healthy(lab2cp, "cp1")
