"""The local SQLite journal and the node-side run record (run with the local `sh`)."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess

from harden.runs.journal import HostRecord, Journal, commit_script, parse_index, state_dir


def test_state_dir_follows_override_then_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("HARDEN_STATE_DIR", str(tmp_path / "x"))
    assert state_dir() == tmp_path / "x"
    monkeypatch.delenv("HARDEN_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "harden"


def test_journal_file_is_private(tmp_path):
    Journal(tmp_path / "j" / "journal.sqlite").close()
    assert stat.S_IMODE((tmp_path / "j" / "journal.sqlite").stat().st_mode) == 0o600


def test_runs_lists_an_unfinished_run_as_interrupted(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    journal.start_run("r-done", "site.yml", "apply", False)
    journal.host("r-done", "h1", "ok", {"ok": 2, "changed": 1})
    journal.finish_run("r-done", 0)
    journal.start_run("r-killed", "site.yml", "apply", False)
    journal.host("r-killed", "h1", "running")
    journal.start_run("r-live", "site.yml", "apply", False)     # this process: still running
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        db.execute("UPDATE runs SET pid = ? WHERE id = 'r-killed'", (_dead_pid(),))
    rows = {r["id"]: r for r in journal.runs()}
    assert rows["r-killed"]["interrupted"] and not rows["r-done"]["interrupted"]
    assert rows["r-done"]["changed"] == 1 and rows["r-done"]["exit_code"] == 0
    journal.mark_rolled_back("r-done", "h1")
    assert {r["id"]: r for r in journal.runs()}["r-done"]["rolled_back"] == 1


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_index_keeps_the_first_state_of_a_path():
    entries = parse_index("file\t600\t0\t0\tabc\t/etc/a b\nabsent\t-\t-\t-\t-\t/etc/a b\n"
                          "dir\t755\t0\t0\t-\t/etc\n")
    assert [(e.kind, e.path) for e in entries] == [("file", "/etc/a b"), ("dir", "/etc")]


def test_commit_script_records_the_state_left_behind(tmp_path):
    backups, journals = tmp_path / "backups", tmp_path / "journal"
    target = tmp_path / "conf"
    target.write_text("new\n")
    run = backups / "r1"
    run.mkdir(parents=True)
    (run / "index").write_text(f"file\t644\t0\t0\tx\t{target}\n"
                               f"absent\t-\t-\t-\t-\t{tmp_path}/gone\n")
    record = HostRecord("r1", "h1", "site.yml", "committed", 1.0, 2.0,
                        secret_paths=[str(target)])
    done = subprocess.run(["sh", "-s"], input=commit_script(record, str(backups), str(journals)),
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    assert parse_index(done.stdout.decode())[0].path == str(target)
    after = parse_index((run / "after-index").read_text())
    assert [(e.kind, e.path) for e in after] == [("file", str(target)),
                                                 ("absent", f"{tmp_path}/gone")]
    assert (run / "after" / str(target).lstrip("/")).read_text() == "new\n"
    saved = json.loads((journals / "r1.json").read_text())
    assert saved["status"] == "committed" and saved["secret_paths"] == [str(target)]
    assert stat.S_IMODE((journals / "r1.json").stat().st_mode) == 0o600
