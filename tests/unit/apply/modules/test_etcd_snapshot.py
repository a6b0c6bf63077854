"""`etcd_snapshot`: planned only where no snapshot is yet, a script that is plain sh, and paths
that are absolute files (the lab test in test_rotation_kill.py takes a real one)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harden.apply.modules import get_module
from harden.apply.modules.base import PlanContext, TaskFailed
from support.modules import file_state, make_facts

MODULE = get_module("etcd_snapshot")
PATH = "/var/lib/harden/etcd-snapshots/etcd-r1.db"


def plan(path: str, *states, absent=()):
    args = MODULE.validate({"path": path})
    return MODULE.plan(args, make_facts(*states, absent=absent), PlanContext())


def test_a_new_path_is_one_snapshot_and_an_existing_file_is_kept():
    [change] = plan(PATH, absent=[PATH])
    assert change.summary == f"etcd snapshot to {PATH}" and change.path is None
    assert plan(PATH, file_state(PATH, b"old snapshot")) == []


@pytest.mark.parametrize("bad", ["etcd.db", "/var/lib/harden/", "/tmp/a\nb"])
def test_only_an_absolute_file_path_is_accepted(bad):
    with pytest.raises(TaskFailed, match="absolute file path"):
        plan(bad, absent=[bad])


def test_the_script_is_posix_sh_and_keeps_the_snapshot_private():
    [change] = plan(PATH, absent=[PATH])
    for shell in ("sh", "dash"):
        if shutil.which(shell):
            checked = subprocess.run([shell, "-n"], input=change.script, text=True,
                                     capture_output=True)
            assert checked.returncode == 0, checked.stderr
    assert "umask 077" in change.script and "chmod 0600" in change.script
    assert "snapshot save" in change.script and "snapshot status" in change.script
