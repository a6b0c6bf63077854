"""`harden prune`: removing old runs' backups from nodes, knowingly giving up their rollback.

Backups are kept forever by `apply`, and after an encryption-key rotation they still hold the
retired keys. Pruning is decided per node from what the node itself holds (its backup dirs and
node records), because the node, not the local journal, is what `harden rollback` works from.

Rules, in order of safety:

* a backup dir without a node record is an interrupted (or still running) run: it may still
  need `harden rollback`, so it is kept, unless this controller's journal says an operator
  resolved it (`harden runs --resolve`): then it is pruned as a rolled-back run is;
* a committed run is pruned when it is not among the N newest committed runs (`--keep N`), or
  is older than DAYS (`--older-than DAYS`);
* a rolled-back run has nothing left to undo (`harden rollback` answers "already"), so its
  backups are pruned whatever N is, and with `--older-than` once older than DAYS.

Pruning first marks the node record (`pruned`: a timestamp, written to a dot-temp file and
renamed, as the record itself is written) and only then removes the run's backup dir: a prune
cut off half-way leaves a run that refuses rollback and whose dir the next prune finishes,
never a half-deleted backup that a rollback would try to use. The dir is removed by a path
built from a run id checked against `RUN_ID`, and a symlink in its place is never followed.
"""

from __future__ import annotations

import base64
import json
import math
import shlex
import time
from dataclasses import dataclass, field

from harden.errors import HostError, InputError
from harden.node.paths import BACKUP_ROOT, JOURNAL_ROOT
from harden.node.paths import lock_path
from harden.runs.journal import RUN_ID, Journal, new_run_id
from harden.runs.lock import holder_for, release, take
from harden.ssh.session import Session

EXIT_OK, EXIT_HOSTS = 0, 4
DAY = 86400.0
KEPT, PRUNED = "kept", "pruned"


@dataclass(frozen=True)
class Policy:
    """What to prune: exactly one of `keep` (newest committed runs kept) or `older_than`
    (days)."""

    keep: int | None = None
    older_than: float | None = None

    def __post_init__(self):
        if (self.keep is None) == (self.older_than is None):
            raise InputError("give exactly one of --keep N or --older-than DAYS")
        if self.keep is not None and self.keep < 1:
            raise InputError(f"--keep must be at least 1 (got {self.keep}): the newest "
                             "committed run is always kept")
        if self.older_than is not None and not (math.isfinite(self.older_than)
                                                and self.older_than > 0):
            raise InputError(f"--older-than must be a positive number of days "
                             f"(got {self.older_than})")

    def describe(self) -> str:
        if self.keep is not None:
            return f"--keep {self.keep}"
        return f"--older-than {self.older_than:g}"


@dataclass
class HeldRun:
    """One run as a node holds it: its backup dir, its node record, or both."""

    run_id: str
    backup_dir: bool = False
    symlink: bool = False                 # a symlink where the backup dir should be
    mtime: float = 0.0
    kbytes: int = 0
    record: dict | None = None            # the node record's JSON, every field kept

    @property
    def status(self) -> str | None:
        return self.record.get("status") if self.record else None

    @property
    def pruned_at(self) -> float | None:
        return self.record.get("pruned") if self.record else None

    @property
    def when(self) -> float:
        """The record's commit time, else its start, else the backup dir's mtime."""
        if self.record:
            return float(self.record.get("finished") or self.record.get("started") or
                         self.mtime)
        return self.mtime

    @property
    def bytes(self) -> int:
        return self.kbytes * 1024


@dataclass
class Decision:
    run: HeldRun
    action: str                           # kept | pruned
    reason: str


@dataclass
class HostPrune:
    """One host's answer: what was (or, with --dry-run, would be) kept and pruned."""

    host: str
    decisions: list[Decision] = field(default_factory=list)
    pruned_earlier: int = 0
    done: list[str] = field(default_factory=list)       # run ids whose backups are gone now
    error: str = ""

    @property
    def freed(self) -> int:
        return sum(d.run.bytes for d in self.decisions
                   if d.action == PRUNED and d.run.run_id in self.done)

    @property
    def to_free(self) -> int:
        return sum(d.run.bytes for d in self.decisions if d.action == PRUNED)


# --- node side -----------------------------------------------------------------------------

_NAME_OK = ("ok_name() { case \"$1\" in ''|[!A-Za-z0-9]*|*[!A-Za-z0-9._-]*) return 1;; "
            "esac; }\n")


def list_script(backup_root: str = BACKUP_ROOT, journal_root: str = JOURNAL_ROOT) -> str:
    """Print every run the node holds: `dir NAME MTIME KB`, `link NAME`, `record NAME BASE64`.

    Names that could not be run ids are skipped on the node, so nothing odd (a newline in a
    name) reaches the parser. Exits 5 when a state dir exists but this login cannot read it:
    an empty answer would otherwise read as "nothing to prune"."""
    roots = f"{shlex.quote(backup_root)} {shlex.quote(journal_root)}"
    return (
        "LC_ALL=C; export LC_ALL\n"
        f"B={shlex.quote(backup_root)}; J={shlex.quote(journal_root)}\n"
        f"for d in {roots}; do\n"
        "  if [ -e \"$d\" ] && { [ ! -r \"$d\" ] || [ ! -x \"$d\" ]; }; then\n"
        "    echo \"cannot read $d as user $(id -un): prune needs root (become)\" >&2; exit 5\n"
        "  fi\n"
        "done\n"
        + _NAME_OK +
        "if [ -d \"$B\" ]; then for d in \"$B\"/*; do\n"
        "  n=${d##*/}; ok_name \"$n\" || continue\n"
        "  if [ -L \"$d\" ]; then printf 'link\\t%s\\n' \"$n\"\n"
        "  elif [ -d \"$d\" ]; then printf 'dir\\t%s\\t%s\\t%s\\n' \"$n\" "
        "\"$(stat -c %Y -- \"$d\")\" \"$(du -sk -- \"$d\" | cut -f1)\"; fi\n"
        "done; fi\n"
        "if [ -d \"$J\" ]; then for f in \"$J\"/*.json; do\n"
        "  [ -f \"$f\" ] && [ ! -L \"$f\" ] || continue\n"
        "  n=${f##*/}; n=${n%.json}; ok_name \"$n\" || continue\n"
        "  printf 'record\\t%s\\t%s\\n' \"$n\" \"$(base64 -w0 < \"$f\")\"\n"
        "done; fi\n:\n")


def parse_listing(stdout: str) -> dict[str, HeldRun]:
    """Runs by id; a line that is not well formed is ignored rather than guessed at."""
    runs: dict[str, HeldRun] = {}
    for line in stdout.splitlines():
        kind, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if not fields or not RUN_ID.match(fields[0]):
            continue
        run = runs.setdefault(fields[0], HeldRun(fields[0]))
        if kind == "dir" and len(fields) == 3:
            run.backup_dir, run.mtime, run.kbytes = True, float(fields[1]), int(fields[2])
        elif kind == "link":
            run.symlink = True
        elif kind == "record" and len(fields) == 2:
            run.record = _record(fields[1])
    return runs


def _record(encoded: str) -> dict:
    """A record that cannot be read gets a status no rule prunes: kept, and shown why."""
    try:
        record = json.loads(base64.b64decode(encoded).decode())
    except ValueError:
        return {"status": "unreadable"}
    return record if isinstance(record, dict) else {"status": "unreadable"}


def prune_script(runs: list[HeldRun], when: float, backup_root: str = BACKUP_ROOT,
                 journal_root: str = JOURNAL_ROOT) -> str:
    """Mark each run's record pruned (dot-temp + rename), then remove its backup dir; prints
    `pruned RUN` after each. A record already marked is left as it is."""
    lines = ["set -e", "LC_ALL=C; export LC_ALL",
             f"B={shlex.quote(backup_root)}; J={shlex.quote(journal_root)}"]
    for run in runs:
        if not RUN_ID.match(run.run_id):          # never reached: ids come from parse_listing
            raise ValueError(f"not a run id: {run.run_id!r}")
        lines.append(f"r={run.run_id}")
        lines.append("if [ -L \"$B/$r\" ]; then echo \"skipped $r: a symlink\" >&2; exit 3; fi")
        if run.pruned_at is None:
            record = dict(run.record or _resolved_record(run), pruned=when)
            payload = base64.encodebytes(
                json.dumps(record, indent=1, sort_keys=True).encode()).decode()
            lines.append("t=\"$J/.$r.json.harden-tmp\"")
            lines.append(f"(umask 077; base64 -d > \"$t\") <<'HARDEN_RECORD'\n"
                         f"{payload}HARDEN_RECORD")
            lines.append("sync -- \"$t\"; mv -f -- \"$t\" \"$J/$r.json\"; sync -- \"$J\"")
        lines.append("rm -rf -- \"$B/$r\"; echo \"pruned $r\"")
    lines.append("if [ -d \"$B\" ]; then sync -- \"$B\"; fi")
    return "\n".join(lines) + "\n"


def _resolved_record(run: HeldRun) -> dict:
    """The node record a resolved run never got: enough for `harden rollback` to read it and
    answer "pruned"."""
    return {"run_id": run.run_id, "host": "", "playbook": "", "status": "resolved",
            "started": run.mtime, "finished": run.mtime}


# --- the decision --------------------------------------------------------------------------

def decide(runs: dict[str, HeldRun], policy: Policy, now: float,
           resolved: frozenset[str] | set[str] = frozenset()) -> tuple[list[Decision], int]:
    """(a decision for every run that still has a backup dir, newest first; the number of runs
    pruned earlier and already gone). `resolved`: interrupted runs an operator closed with
    `harden runs --resolve` (in this controller's journal)."""
    held = sorted((r for r in runs.values() if r.backup_dir or r.symlink),
                  key=lambda r: (r.when, r.run_id), reverse=True)
    committed = [r for r in held if r.status == "committed" and r.pruned_at is None]
    newest = {r.run_id for r in committed[:policy.keep]} if policy.keep else set()
    decisions = [_decide_resolved(run, policy, now) if run.record is None and not run.symlink
                 and run.run_id in resolved else _decide_one(run, policy, now, newest)
                 for run in held]
    earlier = sum(1 for r in runs.values() if r.pruned_at is not None and not r.backup_dir)
    return decisions, earlier


def _decide_resolved(run: HeldRun, policy: Policy, now: float) -> Decision:
    """A resolved run is pruned as a rolled-back one is: nobody will undo it any more."""
    if policy.older_than is not None and now - run.when <= policy.older_than * DAY:
        return Decision(run, KEPT, f"resolved, newer than {policy.older_than:g} days")
    return Decision(run, PRUNED, "interrupted and resolved (harden runs --resolve)")


def _decide_one(run: HeldRun, policy: Policy, now: float, newest: set[str]) -> Decision:
    if run.symlink:
        return Decision(run, KEPT, "a symlink, not a backup dir: left alone")
    if run.record is None:
        return Decision(run, KEPT, "interrupted or still running, no node record: may need "
                                   f"`harden rollback {run.run_id}`")
    if run.pruned_at is not None:
        return Decision(run, PRUNED, "finishing an earlier prune")
    if run.status not in ("committed", "rolled_back"):
        return Decision(run, KEPT, f"unknown record status {run.status!r}")
    if policy.older_than is not None:
        if now - run.when <= policy.older_than * DAY:
            return Decision(run, KEPT, f"newer than {policy.older_than:g} days")
        return Decision(run, PRUNED, "rolled back" if run.status == "rolled_back"
                        else f"older than {policy.older_than:g} days")
    if run.status == "rolled_back":
        return Decision(run, PRUNED, "rolled back: nothing left to undo")
    if run.run_id in newest:
        return Decision(run, KEPT, f"one of the {policy.keep} newest committed")
    return Decision(run, PRUNED, f"not one of the {policy.keep} newest committed")


def prune_host(session: Session, host: str, policy: Policy, *, dry_run: bool, now: float,
               backup_root: str = BACKUP_ROOT, journal_root: str = JOURNAL_ROOT,
               resolved: frozenset[str] | set[str] = frozenset()) -> HostPrune:
    """One exec to list the runs, and (unless dry run or nothing to do) one to prune. Both
    as root: backups and records are root's, 0700."""
    listing = session.run("sh -s", become=True,
                          stdin=list_script(backup_root, journal_root).encode())
    if listing.rc != 0:
        raise HostError(host, "listing the runs failed: " +
                        (listing.stderr.decode(errors="replace").strip() or f"exit {listing.rc}"))
    decisions, earlier = decide(parse_listing(listing.stdout.decode(errors="replace")),
                                policy, now, resolved)
    outcome = HostPrune(host, decisions, earlier)
    doomed = [d.run for d in decisions if d.action == PRUNED]
    if dry_run or not doomed:
        return outcome
    result = session.run("sh -s", become=True,
                         stdin=prune_script(doomed, now, backup_root, journal_root).encode())
    outcome.done = [line.split(" ", 1)[1] for line in
                    result.stdout.decode(errors="replace").splitlines()
                    if line.startswith("pruned ")]
    if result.rc != 0:
        outcome.error = (f"pruning stopped (exit {result.rc}) after {len(outcome.done)} of "
                         f"{len(doomed)} run(s): "
                         f"{result.stderr.decode(errors='replace').strip()[-300:]}")
    return outcome


# --- the command ---------------------------------------------------------------------------

def run_prune(inventories, *, limit: str | None, policy: Policy, dry_run: bool, forks: int,
              console, accept_new_host_keys: bool = False, ask_become_pass: bool = False,
              connect_timeout: float | None = None, journal=None,
              transport: str | None = None, break_lock: bool = False,
              host_defaults: dict | None = None) -> int:
    """Prune the selected hosts in parallel, each under its node lock (not needed for a dry
    run, which writes nothing), print the table, record what was pruned in the local journal.
    Exit 0, or 4 when a host was unreachable, locked or failed."""
    import click

    from harden.ssh.settings import resolve_targets
    from harden.progress import HostProgress, wanted
    from harden.ssh.parallel import for_each_host
    from harden.ssh.transport import JumpPool, connect

    hosts, specs = resolve_targets(
        inventories, limit, connect_timeout=connect_timeout, transport=transport,
        accept_new_host_keys=accept_new_host_keys, ask_become_pass=ask_become_pass,
        warn=lambda line: click.echo(line, err=True), host_defaults=host_defaults)
    now = time.time()
    jumps = JumpPool()
    holder = holder_for(new_run_id(), "prune")
    lock_journal = journal or Journal()
    resolved = lock_journal.resolved_runs()

    def one(host) -> HostPrune:
        with connect(specs[host.name], jumps) as session:
            if dry_run:
                return prune_host(session, host.name, policy, dry_run=True, now=now,
                                  resolved=resolved)
            note = take(session, host.name, holder, lock_path(), break_lock=break_lock,
                        journal=lock_journal)
            try:
                outcome = prune_host(session, host.name, policy, dry_run=False, now=now,
                                     resolved=resolved)
            finally:
                release(session, holder, lock_path())
            if note:
                click.echo(f"{host.name}: {note}", err=True)
            return outcome

    title = "harden prune" + (" (dry run)" if dry_run else "")
    try:
        with HostProgress(title, len(hosts), console=console, enabled=wanted()) as progress:
            outcomes = for_each_host(hosts, progress.around(one), forks)
    finally:
        jumps.close()
        if journal is None:
            lock_journal.close()
    results = [o.value if o.ok else HostPrune(name, error=f"{o.kind}: {o.message}")
               for name, o in outcomes.items()]
    if not dry_run:
        _journal_pruned(results, now, journal)
    print_prune(console, results, policy, dry_run)
    return EXIT_HOSTS if any(r.error for r in results) else EXIT_OK


def _journal_pruned(results: list[HostPrune], now: float, journal) -> None:
    from harden.runs.journal import Journal

    own = journal is None
    journal = journal or Journal()
    try:
        for result in results:
            sizes = {d.run.run_id: d.run.bytes for d in result.decisions}
            for run_id in result.done:
                journal.mark_pruned(run_id, result.host, now, sizes.get(run_id, 0))
    finally:
        if own:
            journal.close()


def human_bytes(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    size, unit = count / 1024, "KiB"
    for bigger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def print_prune(console, results: list[HostPrune], policy: Policy, dry_run: bool) -> None:
    """One line per run held (plain columns, so it greps well), then one summary per host."""
    from rich.text import Text

    title = f"harden prune {policy.describe()}" + (" --dry-run: nothing changed" if dry_run
                                                   else "")
    console.print(title, markup=False, highlight=False)
    console.print(f"{'HOST':<12} {'RUN ID':<24} {'TIME (UTC)':<19} {'SIZE':>10}  ACTION",
                  markup=False, highlight=False)
    for result in results:
        for d in result.decisions:
            pruned = d.action == PRUNED
            action = ("would prune" if dry_run else "pruned" if d.run.run_id in result.done
                      else "NOT pruned") if pruned else "kept"
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.run.when)) \
                if d.run.when else "-"
            line = Text(f"{result.host:<12} {d.run.run_id:<24} {stamp:<19} "
                        f"{human_bytes(d.run.bytes):>10}  ")
            line.append(action, style="yellow" if pruned else "green")
            line.append(f" ({d.reason})")
            console.print(line)
    for result in results:
        console.print(Text(f"{result.host}: ", style="bold") + _summary(result, dry_run))


def _summary(result: HostPrune, dry_run: bool):
    from rich.text import Text

    if result.error and not result.decisions:
        return Text(result.error, style="bold red")
    kept = sum(1 for d in result.decisions if d.action == KEPT)
    pruned = sum(1 for d in result.decisions if d.action == PRUNED)
    if dry_run:
        text = f"{kept} kept, {pruned} would be pruned ({result.to_free} bytes, " \
               f"{human_bytes(result.to_free)})"
    else:
        text = f"{kept} kept, {len(result.done)} pruned, {result.freed} bytes freed " \
               f"({human_bytes(result.freed)})"
    if result.pruned_earlier:
        text += f"; {result.pruned_earlier} pruned earlier"
    out = Text(text)
    if result.error:
        out.append(f"; {result.error}", style="bold red")
    return out
