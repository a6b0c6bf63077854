"""`harden prune` on a real node: three small runs, `--keep 1` removes the two older runs'
backups, their rollback is refused with the reason, and the kept run still rolls back."""

from __future__ import annotations

import json
import os

import pytest
from support.lab_cli import harden

pytestmark = pytest.mark.lab

TEST_FILE = "/etc/kubernetes/harden-test-prune"     # in an existing directory: copy makes none


def write_play(content: str) -> str:
    return f"""
- hosts: control_plane
  become: true
  tasks:
    - name: test file
      copy:
        dest: {TEST_FILE}
        content: "{content}\\n"
"""


def test_prune_keeps_the_newest_run_and_refuses_rollback_of_pruned_ones(lab_factory, tmp_path):
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True) as lab:
        inventory = str(lab.inventory)
        backups = lab.node_root("cp1") / "var/lib/harden/backups"
        records = lab.node_root("cp1") / "var/lib/harden/journal"
        before = set(os.listdir(backups)) if backups.exists() else set()
        run_ids = []
        for number in (1, 2, 3):
            playbook = tmp_path / f"v{number}.yml"
            playbook.write_text(write_play(f"version {number}"))
            done = harden(tmp_path, "apply", "-i", inventory, str(playbook))
            assert done.returncode == 0, done.stdout + done.stderr
            [run_id] = set(os.listdir(backups)) - before - set(run_ids)
            run_ids.append(run_id)
        oldest, middle, newest = run_ids

        dry = harden(tmp_path, "prune", "-i", inventory, "--keep", "1", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert dry.stdout.count("would prune") == 2 and f"{newest}" in dry.stdout
        assert set(run_ids) <= set(os.listdir(backups))

        pruned = harden(tmp_path, "prune", "-i", inventory, "--keep", "1")
        assert pruned.returncode == 0, pruned.stdout + pruned.stderr
        assert "cp1: 1 kept, 2 pruned" in pruned.stdout
        assert set(os.listdir(backups)) & set(run_ids) == {newest}
        for run_id in (oldest, middle):
            assert json.loads((records / f"{run_id}.json").read_text())["pruned"] > 0
        assert json.loads((records / f"{newest}.json").read_text()).get("pruned") is None

        runs = harden(tmp_path, "runs")
        assert sum(f"{run_id}" in line and "pruned 1" in line
                   for line in runs.stdout.splitlines() for run_id in (oldest, middle)) == 2

        refused = harden(tmp_path, "rollback", "-i", inventory, oldest)
        assert refused.returncode == 4, refused.stdout + refused.stderr
        assert f"backups of {oldest} were pruned on cp1 at" in refused.stdout
        assert lab.ssh("cp1", f"cat {TEST_FILE}").stdout == "version 3\n"

        rolled = harden(tmp_path, "rollback", "-i", inventory, newest)
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        assert lab.ssh("cp1", f"cat {TEST_FILE}").stdout == "version 2\n"
