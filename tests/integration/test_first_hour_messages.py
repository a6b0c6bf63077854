"""The usual first mistakes, on a real lab: each ends with a message that says what to do,
and the documented exit code (issue 13)."""

from __future__ import annotations

import base64
import os

import pytest
from support.lab_cli import harden
from support.paths import REPO

pytestmark = pytest.mark.lab

PLAYBOOKS = REPO / "playbooks"

NO_BECOME = """
- name: Scheduler without become
  hosts: cp1
  become: false
  tasks:
    - name: Scheduler profiling off
      static_pod:
        manifest: /etc/kubernetes/manifests/kube-scheduler.yaml
        set: {profiling: false}
- name: A directory without become
  hosts: w1
  become: false
  tasks:
    - name: harden dir
      file: {path: /etc/kubernetes/harden-first-hour, state: directory}
"""


@pytest.fixture(scope="module")
def lab(lab_factory):
    with lab_factory.running(control_planes=1, workers=1, wait_ready=True) as lab:
        yield lab


def test_a_play_without_become_is_told_to_add_it(lab, tmp_path):
    playbook = tmp_path / "no-become.yml"
    playbook.write_text(NO_BECOME)
    env = {"HARDEN_BECOME_PASSWORD": lab.become_password}
    # a real run first takes each node's lock, in root's /var/lib/harden
    result = harden(tmp_path, "apply", "-i", str(lab.sudo_inventory), str(playbook), env=env)
    assert result.returncode == 4, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert ("cannot take the node lock /var/lib/harden/lock: permission denied as user labops; "
            "add `become: true` to the play or task") in out
    assert "not a harden lock" not in out
    assert not (lab.node_root("w1") / "etc/kubernetes/harden-first-hour").exists()
    # --check takes no lock: reading the manifest is what fails, not "does not exist"
    checked = harden(tmp_path, "apply", "-i", str(lab.sudo_inventory), str(playbook), "--check",
                     env=env)
    assert checked.returncode == 4, checked.stdout + checked.stderr
    out = checked.stdout + checked.stderr
    assert ("/etc/kubernetes/manifests/kube-scheduler.yaml: permission denied as user labops "
            "(a directory on the way cannot be searched") in out
    assert "does not exist" not in out


def test_a_shaped_run_id_no_host_knows_is_exit_1_with_the_closest_known(lab, tmp_path):
    done = harden(tmp_path, "apply", "-i", str(lab.inventory), str(PLAYBOOKS / "cis-worker.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split("RECAP run ")[1].split()[0]
    typo = run_id[:-1] + ("0" if run_id[-1] != "0" else "1")
    result = harden(tmp_path, "rollback", "-i", str(lab.inventory), typo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""                          # no "changed nothing here" rows
    assert (f"harden: error: unknown run id '{typo}': not in the local journal, and no "
            "selected host has a backup or record of it") in result.stderr
    assert f"closest known: {run_id} " in result.stderr


def test_runs_show_the_phase_of_each_run_and_never_the_key(lab, tmp_path):
    key = base64.b64encode(os.urandom(32)).decode()
    key_file = tmp_path / "key.yml"
    key_file.write_text(f"encryption_key: {key}\n")
    for phase in ("prepare", "enable"):
        run = harden(tmp_path, "apply", "-i", str(lab.inventory),
                     str(PLAYBOOKS / "encryption-at-rest.yml"), "--check", "-e", f"@{key_file}",
                     "-e", f"encryption_phase={phase}")
        assert run.returncode in (2, 4), run.stdout + run.stderr   # enable fails its preflight
    listed = harden(tmp_path, "runs")
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if "encryption-at-rest" in line]
    assert [line.split()[-1] for line in lines] == ["encryption_phase=enable",
                                                    "encryption_phase=prepare"]
    assert key.encode() not in (tmp_path / "journal.sqlite").read_bytes()


def test_a_phase_typo_is_exit_1_before_any_host_and_never_asks_for_the_key(lab, tmp_path):
    result = harden(tmp_path, "apply", "-i", str(lab.inventory),
                    str(PLAYBOOKS / "encryption-at-rest.yml"), "-e", "encryption_key=x",
                    "-e", "encryption_phase=enabel")
    spec_line = next(number for number, line in enumerate(
        (PLAYBOOKS / "encryption-at-rest.yml").read_text().splitlines(), start=1)
        if line.strip().startswith("encryption_phase: {choices:"))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"harden: error: {PLAYBOOKS}/encryption-at-rest.yml:{spec_line}: "
        "encryption_phase='enabel' (from -e) is not one of: prepare, enable")
    assert "give -e @key.yml" not in result.stderr


def test_a_lab_directory_as_inventory_names_its_inventory_files(lab, tmp_path):
    result = harden(tmp_path, "ping", "-i", str(lab.dir))
    assert result.returncode == 1
    assert result.stderr.startswith(f"harden: error: {lab.dir}/authorized_keys/root:1: not an "
                                    "inventory file")
    assert f"-i {lab.dir}/inventory.ini" in result.stderr
    public_key = (lab.dir / "id_ed25519.pub").read_text().split()[1]
    assert public_key not in result.stderr
