"""`harden apply` / `rollback` / `runs` against the lab: real sshd, emulated kubelet and
control-plane components (issue 4 acceptance items 1-3, 5, 7 here; 4 and 6 in
test_apply_failures.py).

The tests of this module run in order on one 2 control-plane + 1 worker lab and build on
each other: check on a fresh lab, apply, apply again, roll back. Two control planes are the
fewest on which the first play's `serial: 1` rolls from one API server to the next and the
encryption-key guard refuses on more than one host; a third and a second worker added no claim,
only CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
EVERY_MODULE = ROOT / "tests" / "fixtures" / "playbooks" / "every-module.yml"
WATCHED = ("etc/kubernetes", "var/lib/kubelet", "etc/systemd/system/kubelet.service.d",
           "usr/lib/systemd/system/kubelet.service.d", "etc/sysctl.d", "etc/default",
           "var/lib/harden", "proc/sys/kernel")     # proc/sys: the node's live kernel settings
LAB_RUNTIME = ("var/lib/kubelet/harden-lab-pods.json",)     # the lab kubelet's own status
# The lab's components restart in about a second: poll health every 0.5 s, not production's 2 s
LAB_VARS = ("-e", "harden_wait_interval=0.5")
MANIFESTS = {"etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml",
             "kube-scheduler.yaml"}


def harden(state_dir: Path, *args: str, env: dict | None = None,
           timeout: float = 500) -> subprocess.CompletedProcess:
    environ = {**os.environ, "HARDEN_STATE_DIR": str(state_dir), "COLUMNS": "200",
               **(env or {})}
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=environ)


def every_module(lab, state_dir: Path, *options: str) -> subprocess.CompletedProcess:
    """`harden apply` of every-module.yml on the lab, at the lab's health-poll pace."""
    return harden(state_dir, "apply", "-i", str(lab.inventory), str(EVERY_MODULE), *LAB_VARS,
                  *options)


def snapshot(lab) -> dict:
    """Every watched file and directory of every node: sha256, mode, uid, gid."""
    out = {}
    for node in lab.nodes:
        root = lab.node_root(node)
        for top in WATCHED:
            for base, dirs, files in os.walk(root / top):
                for name in dirs + files:
                    path = Path(base) / name
                    rel = str(path.relative_to(root))
                    if rel in LAB_RUNTIME or (name.startswith(".harden-lab-pods")):
                        continue
                    st = path.lstat()
                    digest = hashlib.sha256(path.read_bytes()).hexdigest() \
                        if stat.S_ISREG(st.st_mode) else "-"
                    out[(node, rel)] = (digest, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def snapshot_without_harden(taken: dict) -> dict:
    """A snapshot minus harden's own backups and records."""
    return {k: v for k, v in taken.items() if not k[1].startswith("var/lib/harden")}


def host_outcomes(rollback_output: str) -> dict[str, int]:
    """How many hosts `harden rollback` reported per outcome (its second column)."""
    return dict(Counter(line.split()[1] for line in rollback_output.splitlines()
                        if len(line.split()) > 1))


def changed_tasks(report: dict) -> set[tuple[str, str]]:
    return {(host, t["task"]) for host, tasks in report["tasks"].items() for t in tasks
            if t["status"] == "changed"}


def kubelet_seen_files(lab, node: str) -> set[str]:
    state = json.loads((lab.node_root(node) / LAB_RUNTIME[0]).read_text())
    return set(state["seen_files"])


@pytest.fixture(scope="module")
def lab(lab_factory):
    with lab_factory.running(control_planes=2, workers=1) as lab:
        yield lab


def role_count(lab, role: str) -> int:
    return len(lab.names(role))


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    return tmp_path_factory.mktemp("harden-state")


@pytest.fixture(scope="module")
def runs(lab, state):
    """Shared by the ordered tests below: results of the check, first and second apply."""
    return {"pristine": snapshot(lab)}


def test_check_on_a_fresh_lab_writes_nothing_and_exits_2(lab, state, runs):
    result = every_module(lab, state, "--check", "--format", "json")
    assert result.returncode == 2, result.stderr
    report = json.loads(result.stdout)
    assert report["check"] is True
    assert all(h["changed"] > 0 and not h["failed"] for h in report["hosts"].values())
    assert snapshot(lab) == runs["pristine"]
    runs["check"] = changed_tasks(report)


@pytest.mark.timeout(600)        # the lab's components restart slowly on a busy machine
def test_first_apply_changes_what_check_said(lab, state, runs):
    first = every_module(lab, state, "--format", "json")
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert set(report["hosts"]) == set(lab.nodes)
    assert changed_tasks(report) == runs["check"]
    runs["first"] = report["run_id"]
    cp1 = lab.ssh("cp1", "cat /etc/kubernetes/manifests/kube-apiserver.yaml").stdout
    assert "--profiling=false" in cp1 and "--audit-policy-file=" in cp1


@pytest.mark.timeout(600)
def test_second_apply_changes_nothing(lab, state, runs):
    assert "first" in runs
    after_first = snapshot(lab)
    second = every_module(lab, state, "--format", "json")
    assert second.returncode == 0, second.stderr
    assert all(h["changed"] == 0 for h in json.loads(second.stdout)["hosts"].values())
    assert snapshot(lab) == after_first          # not even a node record: nothing to undo


def test_static_pod_dir_never_held_anything_but_the_manifests(lab, runs):
    assert "first" in runs
    for node in lab.names("control-plane"):
        assert kubelet_seen_files(lab, node) == MANIFESTS


def test_runs_lists_the_runs(lab, state, runs):
    listing = json.loads(harden(state, "runs", "--json").stdout)
    first = next(r for r in listing if r["id"] == runs["first"])
    assert first["hosts"] == len(lab.nodes) and first["changed"] > 0 and first["exit_code"] == 0
    assert not first["interrupted"] and not first["rolled_back"]
    text = harden(state, "runs").stdout
    assert runs["first"] in text and "every-module.yml" in text


@pytest.mark.timeout(600)
def test_rollback_restores_byte_identical_and_check_shows_the_changes_again(lab, state, runs):
    # The one-time stamp was made by a `command`, the etcd snapshot by `etcd_snapshot`; such
    # tasks leave no backup, so rollback cannot know about them. Remove them as their owner
    # would.
    for node in lab.names("control-plane"):
        lab.ssh(node, "rm /etc/kubernetes/harden-test/stamp "
                       "/var/lib/harden/etcd-snapshots/every-module.db")
    # The run created an encryption config: undoing it would drop keys the API servers may
    # have written with, so the control planes refuse (nothing restored there), --force or
    # not, until --drop-encryption-key; the workers, which hold no such file, are rolled back
    # at once.
    refused = harden(state, "rollback", "-i", str(lab.inventory), runs["first"])
    assert refused.returncode == 4, refused.stdout + refused.stderr
    cps, workers = role_count(lab, "control-plane"), role_count(lab, "worker")
    assert host_outcomes(refused.stdout) == {"refused": cps, "rolled_back": workers}
    assert "key 'key1'" in refused.stdout
    assert snapshot_without_harden(snapshot(lab)) != snapshot_without_harden(runs["pristine"])
    forced = harden(state, "rollback", "-i", str(lab.inventory), runs["first"], "--force")
    assert forced.returncode == 4
    assert host_outcomes(forced.stdout) == {"refused": cps, "already": workers}
    result = harden(state, "rollback", "-i", str(lab.inventory), runs["first"],
                    "--drop-encryption-key")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DROPPED encryption key(s) in use" in result.stdout
    assert host_outcomes(result.stdout) == {"rolled_back": cps, "already": workers}
    assert snapshot_without_harden(snapshot(lab)) == \
        snapshot_without_harden(runs["pristine"])
    for node in lab.names("control-plane"):
        pods = json.loads((lab.node_root(node) / LAB_RUNTIME[0]).read_text())["pods"]
        assert pods["kube-apiserver"]["state"] == "running", pods["kube-apiserver"]
    check = every_module(lab, state, "--check", "--format", "json")
    assert check.returncode == 2
    assert changed_tasks(json.loads(check.stdout)) == runs["check"]
    listing = json.loads(harden(state, "runs", "--json").stdout)
    assert next(r for r in listing if r["id"] == runs["first"])["rolled_back"] == len(lab.nodes)


SECRET_KEY = "aGFyZGVuLWludGVncmF0aW9uLXRlc3Qta2V5LTMyYg=="
SECRET_PLAY = f"""
- name: a secret file
  hosts: cp1
  become: true
  tasks:
    - name: encryption key
      copy:
        dest: /etc/kubernetes/harden-test-key.yaml
        content: "key: {SECRET_KEY}\\n"
        mode: "0600"
        secret: true
"""


def test_secrets_never_reach_output_or_the_journal(lab, state, tmp_path):
    playbook = tmp_path / "secret.yml"
    playbook.write_text(SECRET_PLAY)
    password = lab.become_password
    env = {"HARDEN_BECOME_PASSWORD": password}
    outputs = []
    for extra in (("--check", "--diff"), ("--diff",), ("--diff", "--format", "json")):
        result = harden(state, "apply", "-i", str(lab.sudo_inventory), str(playbook), *extra,
                        env=env)
        assert result.returncode in (0, 2), result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "redacted" in outputs[0] and "harden-test-key.yaml" in outputs[0]
    assert lab.ssh("cp1", "cat /etc/kubernetes/harden-test-key.yaml").stdout == \
        f"key: {SECRET_KEY}\n"
    journal = (state / "journal.sqlite").read_bytes()
    for text in outputs + [harden(state, "runs").stdout]:
        assert SECRET_KEY not in text and password not in text
    assert SECRET_KEY.encode() not in journal and password.encode() not in journal
    lab.ssh("cp1", "rm /etc/kubernetes/harden-test-key.yaml")
