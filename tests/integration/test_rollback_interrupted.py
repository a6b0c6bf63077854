"""A run killed before its commit has no after-index; `harden rollback` must still refuse to
overwrite a file an operator changed since (judged by the run's after-partial), and restore it
with --force."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from support.lab_cli import APISERVER, harden

pytestmark = pytest.mark.lab

TEST_FILE = "/etc/kubernetes/harden-test/x"


def file_then_manifest_play() -> str:
    """The `sleep` flushes the file's write and holds the run before the manifest change."""
    return f"""
- hosts: control_plane
  become: true
  tasks:
    - name: test file
      copy:
        dest: {TEST_FILE}
        content: "written by the run\\n"
    - name: hold
      command:
        cmd: sleep 30
    - name: profiling off
      static_pod:
        manifest: {APISERVER}
        set: {{profiling: false}}
"""


def run_dirs(backups) -> set[str]:
    return set(os.listdir(backups)) if backups.exists() else set()


def wait_for_write(backups, existing: set[str], timeout: float = 30) -> bool:
    """Until a new run recorded the state it left TEST_FILE in (backup and write done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in run_dirs(backups) - existing:
            partial = backups / name / "after-partial"
            if partial.exists() and TEST_FILE in partial.read_text():
                return True
        time.sleep(0.1)
    return False


def test_rollback_of_a_killed_run_refuses_a_file_edited_since(lab_factory, tmp_path):
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True) as lab:
        lab.ssh("cp1", f"mkdir -p {os.path.dirname(TEST_FILE)} && "
                       f"printf 'original\\n' > {TEST_FILE}")
        manifest_before = lab.ssh("cp1", f"cat {APISERVER}").stdout
        playbook = tmp_path / "file-then-manifest.yml"
        playbook.write_text(file_then_manifest_play())
        backups = lab.node_root("cp1") / "var/lib/harden/backups"
        existing = run_dirs(backups)
        process = subprocess.Popen(
            [sys.executable, "-m", "harden.cli", "apply", "-i", str(lab.inventory),
             str(playbook)], env={**os.environ, "HARDEN_STATE_DIR": str(tmp_path)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert wait_for_write(backups, existing), "the run never wrote the test file"
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        [run_id] = run_dirs(backups) - existing
        assert not (backups / run_id / "after-index").exists()      # never committed
        assert lab.ssh("cp1", f"cat {APISERVER}").stdout == manifest_before
        lab.ssh("cp1", f"printf 'edited by an operator\\n' > {TEST_FILE}")

        refused = harden(tmp_path, "rollback", "-i", str(lab.inventory), run_id)
        assert refused.returncode == 4, refused.stdout + refused.stderr
        assert "refused" in refused.stdout and "interrupted run" in refused.stdout
        assert f"changed since the run: {TEST_FILE}" in refused.stdout
        assert lab.ssh("cp1", f"cat {TEST_FILE}").stdout == "edited by an operator\n"

        forced = harden(tmp_path, "rollback", "-i", str(lab.inventory), run_id, "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "rolled_back" in forced.stdout
        assert lab.ssh("cp1", f"cat {TEST_FILE}").stdout == "original\n"
