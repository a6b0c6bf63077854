"""Interrupted runs have an end: `harden runs --resolve` closes one without touching a node, a
rollback cut off half-way can be finished without --force, and prune may drop a resolved run."""

from __future__ import annotations

import subprocess
import time

import pytest

from harden.apply.rollback import parse_probe
from harden.errors import InputError
from harden.runs.journal import Journal
from harden.runs.lock import Holder, dead_reason
from harden.runs.prune import KEPT, PRUNED, HeldRun, Policy, decide

from support.local_node import Env, write_play

DEAD = "20260101T000000Z-dead00"


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def interrupted(journal: Journal, run_id: str = DEAD) -> None:
    journal.start_run(run_id, "site.yml", "apply", False)
    journal._exec("UPDATE runs SET pid = ? WHERE id = ?", (dead_pid(), run_id))


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def test_resolve_closes_only_an_interrupted_run(journal):
    with pytest.raises(InputError, match="no run nope"):
        journal.resolve("nope")
    journal.start_run("done", "site.yml", "apply", False)
    journal.finish_run("done", 0)
    with pytest.raises(InputError, match="run done is finished"):
        journal.resolve("done")
    interrupted(journal)
    assert journal.runs()[0]["interrupted"] is True
    journal.resolve(DEAD)
    row = next(r for r in journal.runs() if r["id"] == DEAD)
    assert row["interrupted"] is False and row["resolved"] and not row["running"]
    assert journal.resolved_runs() == {DEAD}
    with pytest.raises(InputError, match="already resolved"):
        journal.resolve(DEAD)
    holder = Holder(DEAD, DEAD, "elsewhere", 1, time.time(), "apply")
    assert "resolved" in dead_reason(holder, journal)


def test_a_resolved_run_no_longer_warns_and_the_node_is_left_as_it_is(tmp_path):
    env = Env(tmp_path)
    killed = env.node_dir("h1", 0) / DEAD
    killed.mkdir(parents=True)
    (killed / "index").write_text("")
    _, out = env.apply(write_play(), limit="h1", extra={"fail_on": []})
    [warning] = [m for _, m in out.warnings if DEAD in m]
    assert f"`harden runs --resolve {DEAD}`" in warning
    interrupted(env.journal)
    env.journal.resolve(DEAD)
    _, out = env.apply(write_play(), limit="h1", extra={"fail_on": []})
    assert not any(DEAD in m for _, m in out.warnings)
    assert (killed / "index").exists()                      # nothing on the node touched


def rollback_probe(manifest_now: str) -> str:
    """A run that changed a manifest and /b and created /created; its rollback was cut off
    after the manifest came back (when `manifest_now` is its backup's sha)."""
    return "\n".join([
        "@@harden-rb index", "file\t600\t0\t0\torig\t/manifest", "file\t600\t0\t0\torig\t/b",
        "absent\t-\t-\t-\t-\t/created",
        "@@harden-rb after", "file\t600\t0\t0\tnew\t/manifest", "file\t600\t0\t0\tnew\t/b",
        "file\t644\t0\t0\tnew\t/created",
        "@@harden-rb record",
        "@@harden-rb current", f"file\t600\t0\t0\t{manifest_now}\t/manifest",
        "file\t600\t0\t0\tnew\t/b", "file\t644\t0\t0\tnew\t/created"])


def test_a_path_a_cut_off_rollback_already_restored_is_not_changed_since():
    assert parse_probe("r1", rollback_probe("orig")).changed_since() == []
    assert parse_probe("r1", rollback_probe("edited")).changed_since() == ["/manifest"]


def test_prune_drops_a_resolved_run_and_keeps_an_unresolved_one():
    now = time.time()
    runs = {r: HeldRun(r, backup_dir=True, mtime=now - 3600) for r in ("a", "b")}
    decisions, _ = decide(runs, Policy(keep=1), now, resolved={"a"})
    actions = {d.run.run_id: (d.action, d.reason) for d in decisions}
    assert actions["a"][0] == PRUNED and "resolved" in actions["a"][1]
    assert actions["b"][0] == KEPT and "interrupted" in actions["b"][1]
    decisions, _ = decide(runs, Policy(older_than=1), now, resolved={"a"})
    assert {d.run.run_id: d.action for d in decisions} == {"a": KEPT, "b": KEPT}
