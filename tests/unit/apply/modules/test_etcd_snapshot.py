"""`etcd_snapshot`: planned only where no snapshot is yet, a script that is plain sh, and paths
that are absolute files (the lab test in test_rotation_kill.py takes a real one)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harden.apply.facts import census_functions
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


def _apiserver_pid(tmp_path, wait: int, absent_calls: int) -> tuple[subprocess.CompletedProcess, int]:
    """Run the census's apiserver_pid with a `ps` that shows no kube-apiserver for its first
    `absent_calls` calls (a static pod restarting), and a `sleep` that returns at once."""
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    (root / "proc/4242").mkdir(parents=True)
    (root / "proc/4242/cmdline").write_bytes(b"kube-apiserver\0--etcd-servers=https://e:2379\0")
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    calls.write_text("")
    (bin_dir / "ps").write_text(
        f"#!/bin/sh\necho x >> {calls}\n"
        f"[ $(wc -l < {calls}) -gt {absent_calls} ] && echo ' 4242 /usr/local/bin/kube-apiserver'\n"
        "echo '    1 /sbin/init'\n")
    (bin_dir / "sleep").write_text("#!/bin/sh\n:\n")
    for tool in ("ps", "sleep"):
        (bin_dir / tool).chmod(0o755)
    script = census_functions() + f'apiserver_pid {wait} || exit 7\necho "pid $apid"\n'
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HARDEN_CENSUS_ROOT": str(root)}
    done = subprocess.run(["sh", "-c", script], env=env, text=True, capture_output=True)
    return done, len(calls.read_text().splitlines())


def test_a_restarting_api_server_is_waited_for_not_taken_for_absent(tmp_path):
    done, calls = _apiserver_pid(tmp_path, wait=5, absent_calls=2)
    assert (done.returncode, done.stdout, calls) == (0, "pid 4242\n", 3)


def test_an_api_server_that_never_comes_back_fails_after_the_wait(tmp_path):
    done, calls = _apiserver_pid(tmp_path, wait=3, absent_calls=100)
    assert (done.returncode, calls) == (7, 4)


def test_a_fact_gathered_looks_once(tmp_path):
    done, calls = _apiserver_pid(tmp_path, wait=0, absent_calls=1)
    assert (done.returncode, calls) == (7, 1)
