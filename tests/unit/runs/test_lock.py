"""The node lock (harden.runs.lock): its scripts really run with the local `sh` against a
temporary path, so what is tested is what a node does."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from harden.errors import HostError
from harden.runs.journal import Journal
from harden.runs.lock import STALE_AFTER, Holder, NodeLocked, dead_reason, holder_for, \
    release, take, take_then

from support.local_node import ShellSession


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def lock(tmp_path):
    return str(tmp_path / "var-lib-harden" / "lock")


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "state" / "journal.sqlite")
    yield j
    j.close()


def test_a_second_run_is_refused_with_the_holder_named_and_the_lock_kept(lock):
    first, second = holder_for("run-a", "apply"), holder_for("run-b", "apply")
    session = ShellSession()
    assert take(session, "cp1", first, lock) is None
    with pytest.raises(NodeLocked) as refused:
        take(session, "cp1", second, lock)
    assert "locked by run run-a (apply)" in str(refused.value)
    assert "since" in str(refused.value) and "nothing written" in str(refused.value)
    assert refused.value.holder == first
    assert Holder.parse(os.readlink(lock)) == first


def test_the_holder_may_take_it_again_and_only_the_holder_releases_it(lock):
    first, other = holder_for("run-a", "apply"), holder_for("run-b", "prune")
    session = ShellSession()
    take(session, "cp1", first, lock)
    assert take(session, "cp1", first, lock) is None
    assert release(session, other, lock) is False and os.path.islink(lock)
    assert release(session, first, lock) is True and not os.path.lexists(lock)
    assert take(session, "cp1", other, lock) is None


def test_a_script_run_with_the_lock_runs_only_once_the_lock_is_this_run_s(lock, tmp_path):
    first, second = holder_for("run-a", "apply"), holder_for("run-b", "apply")
    ran = tmp_path / "ran"
    script = f"echo one >> {ran}\nprintf 'fact line\\n'\nexit 3"
    session = ShellSession()
    # its own output comes back, and its exit status is not the lock's
    assert take_then(session, "cp1", first, lock, script) == (None, "fact line\n")
    assert take_then(session, "cp1", first, lock, script) == (None, "fact line\n")   # ours
    with pytest.raises(NodeLocked):
        take_then(session, "cp1", second, lock, script)
    assert ran.read_text() == "one\none\n"              # not run for the refused holder
    assert Holder.parse(os.readlink(lock)) == first


def test_a_lock_that_cannot_be_made_says_why_with_or_without_a_script(lock, tmp_path):
    # a file where the lock's directory should be: mkdir fails on the node
    with open(os.path.dirname(lock), "w"):
        pass
    for attempt in (lambda: take(ShellSession(), "cp1", holder_for("run-a", "apply"), lock),
                    lambda: take_then(ShellSession(), "cp1", holder_for("run-a", "apply"), lock,
                                      f"touch {tmp_path / 'ran'}")):
        with pytest.raises(HostError, match=r"taking the node lock failed \(exit 1\): mkdir"):
            attempt()
    assert not (tmp_path / "ran").exists()


def test_a_directory_in_the_lock_s_place_is_refused_and_left_as_it_is(lock):
    os.makedirs(lock)
    with pytest.raises(NodeLocked, match="not a harden lock"):
        take(ShellSession(), "cp1", holder_for("run-a", "apply"), lock)
    assert os.listdir(lock) == []


def test_break_lock_refuses_a_holder_that_may_be_alive(lock, journal):
    running = subprocess.Popen(["sleep", "30"])      # the holder's process, still there
    try:
        alive = Holder("run-a", "run-a", "ctl", running.pid, float(int(time.time())), "apply")
        journal.start_run("run-a", "site.yml", "apply", False)
        journal._exec("UPDATE runs SET pid = ? WHERE id = ?", (running.pid, "run-a"))
        take(ShellSession(), "cp1", alive, lock)
        with pytest.raises(NodeLocked, match="--break-lock refused: its holder cannot be"):
            take(ShellSession(), "cp1", holder_for("run-b", "apply"), lock, break_lock=True,
                 journal=journal)
        with pytest.raises(NodeLocked, match="--break-lock refused"):   # unknown here
            take(ShellSession(), "cp1", holder_for("run-b", "apply"), lock, break_lock=True)
        assert Holder.parse(os.readlink(lock)) == alive
    finally:
        running.kill()
        running.wait()


def test_a_run_recorded_as_interrupted_can_be_broken_only_on_request(lock, journal):
    dead = Holder("run-a", "run-a", "ctl", dead_pid(), time.time(), "apply")
    journal.start_run("run-a", "site.yml", "apply", False)
    journal._exec("UPDATE runs SET pid = ? WHERE id = ?", (dead.pid, "run-a"))
    take(ShellSession(), "cp1", dead, lock)
    mine = holder_for("run-b", "apply")
    with pytest.raises(NodeLocked, match="That run is dead .*interrupted.*--break-lock"):
        take(ShellSession(), "cp1", mine, lock, journal=journal)
    note = take(ShellSession(), "cp1", mine, lock, break_lock=True, journal=journal)
    assert note.startswith("took over the lock of run run-a") and "interrupted" in note
    assert Holder.parse(os.readlink(lock)) == mine


def test_a_rollback_of_the_dead_run_that_holds_the_lock_takes_it_over(lock, journal):
    dead = Holder("run-a", "run-a", "ctl", dead_pid(), time.time(), "apply")
    journal.start_run("run-a", "site.yml", "apply", False)
    journal.finish_run("run-a", 4)
    take(ShellSession(), "cp1", dead, lock)
    rollback = holder_for("run-r", "rollback", subject="run-a")
    note = take(ShellSession(), "cp1", rollback, lock, journal=journal, take_over_subject="run-a")
    assert "finished without releasing" in note
    other = holder_for("run-s", "rollback", subject="run-z")
    with pytest.raises(NodeLocked, match=r"run run-r \(rollback of run-a\)"):
        take(ShellSession(), "cp1", other, lock, journal=journal, take_over_subject="run-z")


def test_a_stale_lock_of_this_controller_is_dead_only_when_old_and_its_process_gone():
    now = time.time()
    old_gone = Holder("r", "r", "ctl", dead_pid(), now - STALE_AFTER - 5, "prune")
    assert "process that is gone" in dead_reason(old_gone, None, now, here="ctl")
    assert dead_reason(old_gone, None, now, here="other-controller") is None
    fresh = Holder("r", "r", "ctl", dead_pid(), now - 5, "prune")
    assert dead_reason(fresh, None, now, here="ctl") is None
    old_alive = Holder("r", "r", "ctl", os.getpid(), now - STALE_AFTER - 5, "prune")
    assert dead_reason(old_alive, None, now, here="ctl") is None
