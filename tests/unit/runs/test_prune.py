"""`harden prune`: the decision rules, and the node scripts run with the local shell against a
temporary backup root and journal root."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time

import pytest
from click.testing import CliRunner
from rich.console import Console

from harden.apply.output import print_runs
from harden.cli import cli
from harden.errors import HostError, InputError
from harden.runs.journal import Journal
from harden.runs.prune import KEPT, PRUNED, HeldRun, Policy, decide, human_bytes, parse_listing, \
    print_prune, prune_host
from harden.apply.rollback_command import rollback_host

from support.local_node import ShellSession

NOW = 1_800_000_000.0
DAY = 86400


@pytest.fixture
def node(tmp_path):
    """Backup and journal roots holding: two committed runs, an interrupted one, a rolled-back
    one, and a symlink (posing as a run) to a directory outside the backup root."""
    backups, journal = tmp_path / "backups", tmp_path / "journal"
    backups.mkdir(mode=0o700)
    journal.mkdir(mode=0o700)
    for run_id, status, age_days in (("r-old", "committed", 10), ("r-new", "committed", 1),
                                     ("r-killed", None, 20), ("r-undone", "rolled_back", 0.5)):
        run = backups / run_id
        (run / "files" / "etc").mkdir(parents=True)
        (run / "files" / "etc" / "key.conf").write_text("secret key material\n" * 100)
        (run / "index").write_text("file\t600\t0\t0\tabc\t/etc/key.conf\n")
        if status:
            (journal / f"{run_id}.json").write_text(json.dumps(
                {"run_id": run_id, "host": "h1", "playbook": "p.yml", "status": status,
                 "started": NOW - age_days * DAY - 5, "finished": NOW - age_days * DAY,
                 "future_field": "kept as is"}))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("not harden's\n")
    (backups / "r-link").symlink_to(outside)
    return tmp_path


def roots(node):
    return {"backup_root": str(node / "backups"), "journal_root": str(node / "journal")}


def tree(path) -> dict[str, bytes]:
    out = {}
    for base, dirs, files in os.walk(path):
        for name in files + dirs:
            full = os.path.join(base, name)
            out[os.path.relpath(full, path)] = b"" if os.path.isdir(full) else \
                open(full, "rb").read()
    return out


def held(run_id, status="committed", age_days=1.0, **extra) -> HeldRun:
    record = None if status is None else {"status": status, "finished": NOW - age_days * DAY,
                                          **extra}
    return HeldRun(run_id, backup_dir=True, mtime=NOW - age_days * DAY, kbytes=4,
                   record=record)


def actions(decisions) -> dict[str, str]:
    return {d.run.run_id: d.action for d in decisions}


# --- the rules -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"), ({"keep": 2, "older_than": 3.0}, "exactly one"),
    ({"keep": 0}, "at least 1"), ({"older_than": 0.0}, "positive"),
    ({"older_than": float("nan")}, "positive")])
def test_policy_needs_exactly_one_sensible_limit(kwargs, message):
    with pytest.raises(InputError, match=message):
        Policy(**kwargs)


def test_keep_counts_only_committed_runs_and_never_prunes_an_interrupted_one():
    runs = {r.run_id: r for r in (held("a", age_days=5), held("b", age_days=3),
                                  held("c", age_days=2), held("killed", None, age_days=9),
                                  held("undone", "rolled_back", age_days=0.1))}
    decisions, _ = decide(runs, Policy(keep=2), NOW)
    assert actions(decisions) == {"undone": PRUNED, "c": KEPT, "b": KEPT, "a": PRUNED,
                                  "killed": KEPT}
    assert [d.run.run_id for d in decisions] == ["undone", "c", "b", "a", "killed"]
    reason = {d.run.run_id: d.reason for d in decisions}
    assert "harden rollback killed" in reason["killed"]


def test_older_than_prunes_committed_and_rolled_back_runs_past_the_age():
    runs = {r.run_id: r for r in (held("old", age_days=8), held("young", age_days=6),
                                  held("undone-old", "rolled_back", age_days=30),
                                  held("undone-young", "rolled_back", age_days=1),
                                  held("killed", None, age_days=99))}
    decisions, _ = decide(runs, Policy(older_than=7), NOW)
    assert actions(decisions) == {"old": PRUNED, "young": KEPT, "undone-old": PRUNED,
                                  "undone-young": KEPT, "killed": KEPT}


def test_an_earlier_prune_cut_short_is_finished_and_gone_ones_are_counted():
    half = held("half", pruned=NOW - 10, age_days=30)
    gone = HeldRun("gone", record={"status": "committed", "pruned": NOW - 99})
    newest = held("newest", age_days=40)
    decisions, earlier = decide({r.run_id: r for r in (half, gone, newest)}, Policy(keep=1),
                                NOW)
    assert actions(decisions) == {"half": PRUNED, "newest": KEPT}
    assert earlier == 1


def test_unknown_or_unreadable_records_are_kept():
    listing = "record\tweird\tbm90IGpzb24=\ndir\tweird\t1700000000\t8\n" \
              "dir\t../evil\t1\t1\nrecord\tother\t" + \
              base64.b64encode(json.dumps({"status": "paused"}).encode()).decode() + "\n"
    runs = parse_listing(listing)
    assert set(runs) == {"weird", "other"}            # ../evil is no run id
    decisions, _ = decide(runs, Policy(keep=1), NOW)
    assert actions(decisions) == {"weird": KEPT}
    assert "unreadable" in decisions[0].reason


def test_human_bytes():
    assert [human_bytes(n) for n in (0, 1023, 4096, 5 * 1024 ** 3)] == \
        ["0 B", "1023 B", "4.0 KiB", "5.0 GiB"]


# --- on a node (local shell) -----------------------------------------------------------------

def test_prune_removes_backups_marks_records_and_keeps_what_it_must(node):
    session = ShellSession()
    (node / "backups" / "not a run").mkdir()                # odd names are never touched
    outcome = prune_host(session, "h1", Policy(keep=1), dry_run=False, now=NOW, **roots(node))
    assert session.exec_count == 2
    assert sorted(os.listdir(node / "backups")) == ["not a run", "r-killed", "r-link", "r-new"]
    assert sorted(outcome.done) == ["r-old", "r-undone"]
    assert outcome.freed > 4096 and not outcome.error
    assert (node / "outside" / "precious").read_text() == "not harden's\n"
    for run_id in ("r-old", "r-undone"):
        record = json.loads((node / "journal" / f"{run_id}.json").read_text())
        assert record["pruned"] == NOW and record["future_field"] == "kept as is"
    assert "pruned" not in json.loads((node / "journal" / "r-new.json").read_text())
    assert not [n for n in os.listdir(node / "journal") if n.startswith(".")]
    reasons = {d.run.run_id: (d.action, d.reason) for d in outcome.decisions}
    assert reasons["r-link"][0] == KEPT and "symlink" in reasons["r-link"][1]
    assert reasons["r-killed"][0] == KEPT

    again = prune_host(ShellSession(), "h1", Policy(keep=1), dry_run=False, now=NOW + 1,
                       **roots(node))
    assert again.done == [] and again.pruned_earlier == 2


def test_dry_run_lists_and_changes_nothing(node):
    before = tree(node)
    session = ShellSession()
    outcome = prune_host(session, "h1", Policy(older_than=5), dry_run=True, now=NOW,
                         **roots(node))
    assert session.exec_count == 1 and tree(node) == before
    assert actions(outcome.decisions) == {"r-old": PRUNED, "r-new": KEPT, "r-killed": KEPT,
                                          "r-undone": KEPT, "r-link": KEPT}
    console = Console(record=True, width=200)
    print_prune(console, [outcome], Policy(older_than=5), dry_run=True)
    text = console.export_text()
    assert "would prune (older than 5 days)" in text and "nothing changed" in text
    assert "h1: 4 kept, 1 would be pruned" in text


def test_rollback_of_a_pruned_run_is_refused_with_the_reason(node):
    prune_host(ShellSession(), "h1", Policy(keep=1), dry_run=False, now=NOW, **roots(node))
    refused = rollback_host(ShellSession(), "h1", "r-old", force=True, **roots(node))
    assert refused.status == "refused"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(NOW))
    assert f"backups of r-old were pruned on h1 at {stamp}" in refused.message
    never = rollback_host(ShellSession(), "h1", "r-unknown", force=False, **roots(node))
    assert never.status == "nothing"


def test_an_unreadable_backup_root_fails_the_host_instead_of_reading_empty():
    class Nobody(ShellSession):
        def run(self, command, **kwargs):
            return super().run("setpriv --reuid=65534 --regid=65534 --clear-groups " + command,
                               **kwargs)

    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    base = tempfile.mkdtemp(prefix="harden-prune-")
    try:
        os.chmod(base, 0o755)
        os.makedirs(os.path.join(base, "backups", "r1"))
        os.chmod(os.path.join(base, "backups"), 0o700)
        with pytest.raises(HostError, match="cannot read .*backups as user nobody"):
            prune_host(Nobody(), "h1", Policy(keep=1), dry_run=False, now=NOW,
                       backup_root=f"{base}/backups", journal_root=f"{base}/journal")
    finally:
        shutil.rmtree(base)


# --- local journal and command line ----------------------------------------------------------

def test_runs_shows_how_many_hosts_were_pruned(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.start_run("r1", "p.yml", "apply", False)
    journal.host("r1", "h1", "ok", {"changed": 1})
    journal.finish_run("r1", 0)
    journal.mark_pruned("r1", "h1", NOW, 4096)
    journal.mark_pruned("r1", "h1", NOW + 1, 4096)           # a repeat counts once
    [row] = journal.runs()
    assert row["pruned"] == 1
    console = Console(record=True, width=200)
    print_runs(console, [row])
    assert "exit 0 pruned 1" in console.export_text()


@pytest.mark.parametrize("args", [[], ["--keep", "1", "--older-than", "3"], ["--keep", "0"],
                                  ["--older-than", "-1"]])
def test_bad_limits_exit_1_before_any_host_is_contacted(tmp_path, args):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("h1 ansible_host=127.73.0.250\n")
    result = CliRunner().invoke(cli, ["prune", "-i", str(inventory), *args])
    assert result.exit_code == 1, result.output
