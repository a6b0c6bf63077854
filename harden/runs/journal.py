"""Run records: the node-side record of what a run changed, and the controller's SQLite journal.

Two records because they answer different questions. The node keeps the truth needed to undo a
run (`/var/lib/harden/backups/<run>/index`, written by the apply script before each first touch,
and `/var/lib/harden/runs/journal/<run>.json` plus `after-index`, written when the host's part of a
play is committed, and removed again by the first write of the host's next play until that play
commits): `harden rollback` works from it even on another controller. The local SQLite
journal is the history (`harden runs`): runs, hosts, tasks, changed files and outcomes, and for
`harden check` runs each host × check status (what `check --compare` compares against). Neither
ever holds file content, a diff of a secret file, an apply script (scripts carry secrets), or
what a check found on a node (the `actual` text): only ids and statuses.

A run whose SQLite row never got `finished` was killed half-way: `harden runs` shows it as
interrupted. On a node, a backup directory without a journal file means the same.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shlex
import sqlite3
import threading
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harden.errors import InputError
from harden.node.paths import BACKUP_ROOT, JOURNAL_ROOT
from harden.node.record import HB_RECORD

STATE_DIR_ENV = "HARDEN_STATE_DIR"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")   # what may name a backup directory
# What `new_run_id` makes: only an id of this shape can be another controller's run.
RUN_ID_SHAPE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")
DB_NAME = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, started REAL NOT NULL, finished REAL, playbook TEXT, command TEXT,
  check_mode INTEGER NOT NULL DEFAULT 0, pid INTEGER, exit_code INTEGER, vars TEXT);
CREATE TABLE IF NOT EXISTS hosts (
  run_id TEXT NOT NULL, host TEXT NOT NULL, status TEXT NOT NULL, ok INTEGER DEFAULT 0,
  changed INTEGER DEFAULT 0, failed INTEGER DEFAULT 0, unreachable INTEGER DEFAULT 0,
  rolled_back INTEGER DEFAULT 0, message TEXT, PRIMARY KEY (run_id, host));
CREATE TABLE IF NOT EXISTS tasks (
  run_id TEXT NOT NULL, host TEXT NOT NULL, seq INTEGER NOT NULL, play TEXT, task TEXT,
  status TEXT NOT NULL, message TEXT);
CREATE TABLE IF NOT EXISTS files (
  run_id TEXT NOT NULL, host TEXT NOT NULL, path TEXT NOT NULL, kind TEXT, mode TEXT,
  uid TEXT, gid TEXT, sha256 TEXT, PRIMARY KEY (run_id, host, path));
CREATE TABLE IF NOT EXISTS check_results (
  run_id TEXT NOT NULL, host TEXT NOT NULL, check_id TEXT NOT NULL, status TEXT NOT NULL,
  scored INTEGER NOT NULL, PRIMARY KEY (run_id, host, check_id));
CREATE TABLE IF NOT EXISTS pruned (
  run_id TEXT NOT NULL, host TEXT NOT NULL, pruned REAL NOT NULL, bytes INTEGER,
  PRIMARY KEY (run_id, host));
"""


def state_dir() -> Path:
    """Where the local journal lives: $HARDEN_STATE_DIR, else the XDG state dir."""
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "state")
    return Path(base) / "harden"


def new_run_id() -> str:
    """Sortable by time, unique across controllers, and safe as a directory name."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass
class BackupEntry:
    """One line of a node's backup index: what a path was before the run first touched it."""

    kind: str          # file | dir | absent | proc | link (sha256 then holds its target)
    mode: str
    uid: str
    gid: str
    sha256: str
    path: str

    @classmethod
    def parse(cls, line: str) -> BackupEntry | None:
        parts = line.rstrip("\n").split("\t")
        return cls(*parts[:5], "\t".join(parts[5:])) if len(parts) >= 6 else None


def parse_index(text: str) -> list[BackupEntry]:
    """Backup index lines in order; the first entry of a path wins (the original state)."""
    seen: dict[str, BackupEntry] = {}
    for line in text.splitlines():
        entry = BackupEntry.parse(line)
        if entry is not None and entry.path not in seen:
            seen[entry.path] = entry
    return list(seen.values())


@dataclass
class HostRecord:
    """What the node keeps about one host's part of a run (JSON, no content, no scripts)."""

    run_id: str
    host: str
    playbook: str
    status: str                              # committed | rolled_back
    started: float
    finished: float
    restarts: list[dict] = field(default_factory=list)   # {"name", "verb", "daemon_reload"} (+ mount undo: path, opts, fstype, src)
    kubelet_wait: bool = False
    secret_paths: list[str] = field(default_factory=list)
    tasks: list[dict] = field(default_factory=list)      # {"task", "status"}
    pruned: float | None = None              # when `harden prune` removed the run's backups

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HostRecord:
        data = json.loads(text)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def commit_script(record: HostRecord, backup_root: str = BACKUP_ROOT,
                  journal_root: str = JOURNAL_ROOT) -> bytes:
    """The `sh -s` stdin that writes the node record and the post-run state of backed-up paths.

    The post-run state (`after-index`: kind mode uid gid sha256 path, and a copy of each file
    under `after/`) lets a later manual rollback see whether someone changed a file since, and
    show how. The record travels base64-encoded inside the script on stdin, never in argv.
    Prints the backup index so the controller can journal the changed files.

    Run as the tail of a write exec (harden.apply.node_writes), that exec sets `hb_ap0` to
    the number of after-partial lines before its first change: a path it changed already has
    its final state in after-partial (its last line there; hb_after copied the file too), so
    that line is taken over instead of copying and hashing the file again. The after-index and
    the record's temp file are made durable by one `sync`, before the rename that commits.
    """
    run = shlex.quote(record.run_id)
    payload = base64.encodebytes(record.to_json().encode()).decode()
    return f"""set -e
LC_ALL=C; export LC_ALL
umask 077
{HB_RECORD}hb_um=077
HB={shlex.quote(backup_root)}/{run}; J={shlex.quote(journal_root)}
[ -d "$J" ] || mkdir -p "$J"
chmod 0700 "$J"
if [ -f "$HB/index" ]; then
  : > "$HB/after-index"
  if [ -n "${{hb_ap0:-}}" ] && [ -f "$HB/after-partial" ]; then
    awk -F '\t' -v n="$hb_ap0" '
      {{ p = $0; for (i = 0; i < 5; i++) sub(/^[^\t]*\t/, "", p) }}
      FILENAME == ARGV[1] {{ if (FNR > n) last[p] = $0; next }}
      {{ if (p in last) print "R\t" last[p]; else print "P\t" p }}' \
      "$HB/after-partial" "$HB/index" | while IFS= read -r l; do
      case $l in R*) printf '%s\\n' "${{l#??}}" >> "$HB/after-index";;
        *) hb_record "${{l#??}}" "$HB/after-index";; esac
    done
  else
    cut -s -f6- "$HB/index" | while IFS= read -r p; do hb_record "$p" "$HB/after-index"; done
  fi
fi
t="$J/.{record.run_id}.json.harden-tmp"
base64 -d > "$t" <<'HARDEN_RECORD'
{payload}HARDEN_RECORD
if [ -f "$HB/index" ]; then sync -- "$HB/after-index" "$t"; else sync -- "$t"; fi
mv -f -- "$t" "$J/"{run}.json
if [ -f "$HB/index" ]; then cat "$HB/index"; fi
""".encode()


class Journal:
    """The controller's SQLite history. Thread-safe: hosts report from worker threads."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else state_dir() / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.RLock()      # re-entered by the writes of a transaction()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        os.chmod(self.path, 0o600)
        self._db.executescript(_SCHEMA)
        self._migrate()
        self._seq = 0

    def _migrate(self) -> None:
        """Columns added since a journal may have been created."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(runs)")}
        if "resolved" not in columns:
            self._db.execute("ALTER TABLE runs ADD COLUMN resolved REAL")
        if "vars" not in columns:        # a journal written before runs recorded their phase
            self._db.execute("ALTER TABLE runs ADD COLUMN vars TEXT")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self):
        """The writes inside as one SQLite transaction: the connection autocommits, and each
        commit waits for the disk (a check of 50 nodes writes thousands of rows: seconds of
        fsyncs on a busy disk), so a batch commits once; all or nothing."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _exec(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def start_run(self, run_id: str, playbook: str, command: str, check_mode: bool,
                  labels: dict | None = None) -> None:
        """`labels`: what tells runs of one playbook apart (the -e values of its enumerated
        variables, such as a rotation phase); never a secret, so never any other variable."""
        self._exec("INSERT INTO runs (id, started, playbook, command, check_mode, pid, vars) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (run_id, time.time(), playbook, command, int(check_mode), os.getpid(),
                    json.dumps(labels, sort_keys=True, default=str) if labels else None))

    def finish_run(self, run_id: str, exit_code: int) -> None:
        self._exec("UPDATE runs SET finished = ?, exit_code = ? WHERE id = ?",
                   (time.time(), exit_code, run_id))

    def host(self, run_id: str, host: str, status: str, counts: dict | None = None,
             message: str | None = None) -> None:
        """Insert or update a host's row (called when a host starts and when it ends)."""
        counts = counts or {}
        self._exec("INSERT INTO hosts (run_id, host, status, ok, changed, failed, unreachable, "
                   "rolled_back, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (run_id, host) DO UPDATE SET status = excluded.status, "
                   "ok = excluded.ok, changed = excluded.changed, failed = excluded.failed, "
                   "unreachable = excluded.unreachable, rolled_back = excluded.rolled_back, "
                   "message = excluded.message",
                   (run_id, host, status, *(int(counts.get(k, 0)) for k in
                                             ("ok", "changed", "failed", "unreachable",
                                              "rolled_back")), message))

    def task(self, run_id: str, host: str, play: str, task: str, status: str,
             message: str | None = None) -> None:
        with self._lock:
            self._seq += 1
            self._db.execute("INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (run_id, host, self._seq, play, task, status, message))

    def files(self, run_id: str, host: str, entries: list[BackupEntry]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, host, e.path, e.kind, e.mode, e.uid, e.gid, e.sha256)
                 for e in entries])

    def mark_rolled_back(self, run_id: str, host: str) -> None:
        """A manual rollback undid this host's part of the run."""
        self._exec("INSERT INTO hosts (run_id, host, status, rolled_back) "
                   "VALUES (?, ?, 'rolled_back', 1) ON CONFLICT (run_id, host) DO UPDATE SET "
                   "status = 'rolled_back', rolled_back = 1", (run_id, host))

    def mark_pruned(self, run_id: str, host: str, when: float, freed_bytes: int) -> None:
        """`harden prune` removed this host's backups of the run: it can no longer be undone."""
        self._exec("INSERT OR REPLACE INTO pruned VALUES (?, ?, ?, ?)",
                   (run_id, host, when, freed_bytes))

    def hosts_of(self, run_id: str) -> list[str]:
        return [row[0] for row in self._exec("SELECT host FROM hosts WHERE run_id = ? "
                                             "ORDER BY rowid", (run_id,))]

    def run_state(self, run_id: str) -> dict | None:
        """Whether a run finished, was resolved, or was interrupted (never finished and its
        process is gone); None when this journal does not know it."""
        rows = self._exec("SELECT finished, pid, resolved, command FROM runs WHERE id = ?",
                          (run_id,))
        if not rows:
            return None
        finished, pid, resolved, command = rows[0]
        return {"finished": finished, "resolved": resolved, "command": command,
                "interrupted": finished is None and resolved is None and not _alive(pid)}

    def resolve(self, run_id: str) -> None:
        """Close an interrupted run without touching any node: the operator accepts the nodes
        as they are. Its node-side backups stay (prune may drop them now) and so does a node
        lock it left (taken over with --break-lock)."""
        state = self.run_state(run_id)
        if state is None:
            raise InputError(f"no run {run_id} in the journal {self.path} (see `harden runs`)")
        if state["resolved"] is not None:
            raise InputError(f"run {run_id} is already resolved")
        if not state["interrupted"]:
            what = "finished" if state["finished"] is not None else "still running"
            raise InputError(f"run {run_id} is {what}: only an interrupted run can be resolved")
        self._exec("UPDATE runs SET resolved = ? WHERE id = ?", (time.time(), run_id))

    def resolved_runs(self) -> set[str]:
        return {row[0] for row in self._exec("SELECT id FROM runs WHERE resolved IS NOT NULL")}

    def has_run(self, run_id: str) -> bool:
        return bool(self._exec("SELECT 1 FROM runs WHERE id = ?", (run_id,)))

    def closest_runs(self, run_id: str, count: int = 3) -> list[str]:
        """Known run ids that look most like `run_id` (a typo, a character missing), else the
        newest ones: what an error about an unknown run id should offer instead."""
        import difflib

        known = [row[0] for row in self._exec("SELECT id FROM runs WHERE command = 'apply' "
                                               "ORDER BY started DESC")]   # what rolls back
        return difflib.get_close_matches(run_id, known, count, 0.6) or known[:count]

    def runs(self, limit: int = 50) -> list[dict]:
        """Newest first, with per-run totals; `interrupted` = never finished, its process is
        gone and nobody resolved it (`resolved`: when `harden runs --resolve` closed it);
        `pruned` = hosts whose backups of the run `harden prune` removed."""
        rows = self._exec(
            "SELECT r.id, r.started, r.finished, r.playbook, r.command, r.check_mode, r.pid, "
            "r.exit_code, r.vars, r.resolved, COUNT(h.host), COALESCE(SUM(h.changed), 0), "
            "COALESCE(SUM(h.failed + h.unreachable > 0), 0), COALESCE(SUM(h.rolled_back > 0), 0), "
            "(SELECT COUNT(*) FROM pruned p WHERE p.run_id = r.id) "
            "FROM runs r LEFT JOIN hosts h ON h.run_id = r.id GROUP BY r.id "
            "ORDER BY r.started DESC LIMIT ?", (limit,))
        out = []
        for (run_id, started, finished, playbook, command, check, pid, code, labels, resolved,
             hosts, changed, failed, rolled, pruned) in rows:
            running = finished is None and resolved is None and _alive(pid)
            out.append({"id": run_id, "started": started, "finished": finished,
                        "playbook": playbook, "command": command, "check": bool(check),
                        "exit_code": code, "vars": json.loads(labels) if labels else {},
                        "hosts": hosts, "changed": changed,
                        "failed": failed, "rolled_back": rolled, "pruned": pruned,
                        "interrupted": finished is None and not running and resolved is None,
                        "resolved": resolved, "running": running})
        return out


CHECK_COMMAND = "check"


def record_check(journal: Journal, run, exit_code: int) -> None:
    """Keep a finished `harden check` run: per host its counts, per host × check its status.
    `run` is a CheckRun; the command column is "check <benchmark>" so runs of different
    catalogues are never compared by `--compare last`. One transaction: one commit."""
    per_host: dict[str, dict[str, int]] = {}
    for r in run.results:
        counts = per_host.setdefault(r.host, {"ok": 0, "failed": 0})
        counts["ok" if r.status == "PASS" else "failed"] += r.status in ("PASS", "FAIL")
    with journal.transaction():
        journal.start_run(run.run_id, None, f"{CHECK_COMMAND} {run.benchmark}", False)
        for host, counts in per_host.items():
            journal.host(run.run_id, host, "checked", counts)
        for host, reason in run.unreachable.items():
            journal.host(run.run_id, host, "unreachable", {"unreachable": 1}, reason)
        journal._db.executemany(
            "INSERT OR REPLACE INTO check_results VALUES (?, ?, ?, ?, ?)",
            [(run.run_id, r.host, r.id, r.status, int(r.scored)) for r in run.results])
        journal.finish_run(run.run_id, exit_code)


def load_check(journal: Journal, run_id: str) -> dict | None:
    """A recorded check run as {run_id, command, started, results: [{host, id, status, scored}],
    unreachable: {host: reason}}, or None when the journal has no check run of that id."""
    rows = journal._exec("SELECT command, started FROM runs WHERE id = ?", (run_id,))
    if not rows or not (rows[0][0] or "").startswith(CHECK_COMMAND + " "):
        return None
    command, started = rows[0]
    results = [{"host": h, "id": c, "status": s, "scored": bool(sc)} for h, c, s, sc in
               journal._exec("SELECT host, check_id, status, scored FROM check_results "
                             "WHERE run_id = ?", (run_id,))]
    unreachable = dict(journal._exec("SELECT host, COALESCE(message, '') FROM hosts "
                                     "WHERE run_id = ? AND status = 'unreachable'", (run_id,)))
    return {"run_id": run_id, "benchmark": command.split(" ", 1)[1], "started": started,
            "results": results, "unreachable": unreachable}


def latest_check(journal: Journal, benchmark: str, before: str | None = None) -> str | None:
    """The newest finished check run of `benchmark` (other than `before`), for `--compare last`."""
    rows = journal._exec("SELECT id FROM runs WHERE command = ? AND finished IS NOT NULL "
                         "AND id != ? ORDER BY started DESC LIMIT 1",
                         (f"{CHECK_COMMAND} {benchmark}", before or ""))
    return rows[0][0] if rows else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()
