"""`harden runs` tells a rotation's stage run from its promote run: the journal keeps the -e
values of the playbook's enumerated variables (never any other variable, so never a key), and
the list shows them after the playbook. Unknown run ids are offered their closest known ids."""

from __future__ import annotations

import io
import sqlite3

from rich.console import Console

from harden.apply.output import print_runs
from harden.runs.journal import Journal


def _printed(rows) -> str:
    buffer = io.StringIO()
    print_runs(Console(file=buffer, width=200, color_system=None), rows)
    return buffer.getvalue()


def test_runs_of_one_playbook_show_their_phases(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    for run_id, phase in (("r1", "stage"), ("r2", "promote")):
        journal.start_run(run_id, "playbooks/rotate-encryption-key.yml", "apply", False,
                          {"rotation_phase": phase})
        journal.finish_run(run_id, 0)
    journal.start_run("r3", "playbooks/site.yml", "apply", False)
    rows = journal.runs()
    assert [r["vars"] for r in rows] == [{}, {"rotation_phase": "promote"},
                                         {"rotation_phase": "stage"}]
    lines = _printed(rows).splitlines()
    assert lines[2].rstrip().endswith("playbooks/rotate-encryption-key.yml rotation_phase=promote")
    assert lines[3].rstrip().endswith("playbooks/rotate-encryption-key.yml rotation_phase=stage")
    assert lines[1].rstrip().endswith("playbooks/site.yml")


def test_a_journal_from_before_labels_gains_the_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, started REAL NOT NULL, finished REAL, "
                   "playbook TEXT, command TEXT, check_mode INTEGER NOT NULL DEFAULT 0, "
                   "pid INTEGER, exit_code INTEGER)")
        db.execute("INSERT INTO runs (id, started, playbook) VALUES ('old', 1, 'site.yml')")
    journal = Journal(path)
    assert journal.runs()[0]["vars"] == {}
    journal.start_run("new", "x.yml", "apply", False, {"encryption_phase": "enable"})
    assert journal.runs()[0]["vars"] == {"encryption_phase": "enable"}


def test_closest_runs_offers_the_id_a_typo_was_meant_to_be(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    for run_id in ("20261205T172629Z-8aaad8", "20261205T180001Z-11aa22", "20261206T090000Z-ffee00"):
        journal.start_run(run_id, "site.yml", "apply", False)
    assert journal.closest_runs("20261205T172629Z-8aaad")[0] == "20261205T172629Z-8aaad8"
    # nothing alike: the newest ids, newest first
    assert journal.closest_runs("foo") == ["20261206T090000Z-ffee00", "20261205T180001Z-11aa22",
                                           "20261205T172629Z-8aaad8"]
