"""Running a playbook: plays over hosts in serial batches, each host's part of a play as one
pipeline, health-gated, rolled back on failure.

Before any of it, the run's own variables are checked (harden.apply.run_vars) and every host of
every play is connected and its node lock taken (harden.apply.preflight): one host that fails
there and nothing is written anywhere. The locks are given back at the end of the run.

Per host and play (docs/architecture.md, "Apply: the per-host pipeline"):

  gather facts (ONE exec for every task of the play)
  → plan each task from facts (planned results are fed back, so later tasks see them)
  → write: consecutive tasks' changes go to the node in one `sh -s` exec; a command or a wait
    ends a batch because it needs the node's answer. Each such exec first lists the node's
    processes, so a later wait knows which pods predate the write; a service restart counts
    for rollback only once the exec got to it
  → handlers notified by changed tasks, once, at the end of the play
  → verify: every wait, plus an implicit wait for any static-pod manifest changed and not
    waited for, since a manifest nobody verified is exactly how a control plane goes down
  → commit the run record on the node and in the local journal (the first write of a later
    play takes the node record back until that play commits: a run cut off half-way must
    read as unfinished on the node).

A failure at any step restores the host from its backups (harden.apply.rollback) and the host leaves
the play. The run stops, as ansible-playbook's does, when every host of a batch failed (later
batches and plays are not run), when `any_errors_fatal` fails a host, when a batch exceeds
`max_fail_percentage`, and, after a playbook file in which any host failed, before the next file.
harden adds one stricter rule: with `serial`, a failed batch stops the rollout before the next
host is touched (unless `max_fail_percentage` allows it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harden.apply.events import NO_LOG_MESSAGE, HostSummary, Output, RunResult, TaskResult
from harden.apply.facts import Facts
from harden.apply.host_outcome import HostOutcome
from harden.apply.host_state import HostFailed, HostRunState, PendingTask
from harden.apply.modules.base import TaskFailed
from harden.apply.node_writes import NodeWriter
from harden.apply.play_facts import PlayFacts
from harden.apply.playbook import (Play, Playbook, Task, check_vars_spec, serial_batches,
                                   tasks_before)
from harden.apply.preflight import preflight, release_locks
from harden.apply.run_vars import validate_run_vars
from harden.apply.tasks import TaskPlanner
from harden.apply.verification import HealthVerification
from harden.errors import HardenError
from harden.node.paths import BACKUP_ROOT, JOURNAL_ROOT, lock_path
from harden.runs.journal import Journal, new_run_id
from harden.runs.lock import holder_for, release_script, released
from harden.ssh.parallel import for_each_host
from harden.ssh.settings import RunOptions, connection_specs


@dataclass
class ApplyOptions:
    check: bool = False
    # how --check plans: "predict" (each task on the node as the earlier tasks leave it, so it
    # reports what the real run will) or "ansible" (each task on the node as found, as
    # ansible-playbook --check judges it)
    check_mode: str = "predict"
    diff: bool = False
    forks: int = 20
    tags: list[str] | None = None
    skip_tags: list[str] | None = None
    limit: str | None = None
    extra_vars: dict = field(default_factory=dict)
    run_options: RunOptions = field(default_factory=RunOptions)
    backup_root: str = BACKUP_ROOT
    journal_root: str = JOURNAL_ROOT
    break_lock: bool = False          # take over node locks of provably dead runs
    host_defaults: dict = field(default_factory=dict)   # ansible.cfg / -u -b ...: below inventory
    start_at_task: str | None = None  # --start-at-task: tasks before the first match are left out
    roles_path: list[str] = field(default_factory=list)  # ansible.cfg roles_path


class Runner:
    """One `harden apply`: owns the run id, the sessions (one per host) and the journal."""

    def __init__(self, inventory, playbook: Playbook, options: ApplyOptions, output: Output,
                 journal: Journal, connect=None, run_id: str | None = None):
        self.inventory = inventory
        self.playbook = playbook
        self.options = options
        self.out = output
        self.journal = journal
        self.run_id = run_id or new_run_id()
        self.result = RunResult(self.run_id, options.check,
                                check_mode=options.check_mode if options.check else None)
        self._connect = connect
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._gone: set[str] = set()          # failed / unreachable: out of later plays
        self._host_states: dict[str, HostRunState] = {}
        self.play_hosts_all: list[str] = []   # the current play's hosts within --limit
        self._registered: dict[str, dict] = {}  # host -> its registered results, all plays
        self._steps: dict[str, str] = {}          # host -> what it is doing (labels its execs)
        self._host_facts: dict[str, dict] = {}  # host -> ansible_* facts, from its last gather
        self.holder = holder_for(self.run_id, "apply")
        self.resolved_runs = journal.resolved_runs()   # closed by an operator: no warning
        self.locked: dict[str, bool | None] = {}  # host -> identity its node lock was taken as
        self._final_play: dict[str, Play] = {}     # host -> the last play it is in
        self._first_batch: tuple[Play | None, list] = (None, [])  # the run's first hosts
        self._prefetched: dict[str, tuple[Play, list, str]] = {}  # facts gathered with the lock
        self.left_out = tasks_before(playbook, options.start_at_task, options.tags,
                                     options.skip_tags)

    def run(self, command: str = "apply") -> RunResult:
        started = time.monotonic()
        plays = [(play, self._play_hosts(play)) for play in self.playbook.plays]
        every_host = {h.name: h for _, hosts in plays for h in hosts}
        self._final_play = {h.name: play for play, hosts in plays for h in hosts}
        if plays and plays[0][1]:
            play, hosts = plays[0]
            size = next(iter(serial_batches(play.serial, len(hosts))))
            self._first_batch = (play, hosts[:size])
            self.play_hosts_all = [h.name for h in hosts]     # what its facts show (first_gather)
        validate_run_vars(self.options.extra_vars, self.playbook.plays, every_host.values())
        for play, hosts in plays:
            check_vars_spec(play, hosts, self.options.extra_vars)
        specs = self._connection_specs(every_host)
        extra = self.options.extra_vars
        labels = {spec.name: extra[spec.name] for play, _ in plays for spec in play.vars_spec
                  if spec.name in extra}
        self.journal.start_run(self.run_id, self.playbook.path, command, self.options.check,
                               labels)
        try:
            if self.options.check or preflight(self, plays, specs):
                self._run_plays(plays, specs)
            release_locks(self)
        except KeyboardInterrupt:
            # Left unfinished on purpose, nodes still locked: `harden runs` shows it
            # interrupted, and the nodes' backups let `harden rollback RUN_ID` undo whatever
            # was written.
            self.out.stopped(f"interrupted; its nodes stay locked by this run: undo with "
                             f"`harden rollback {self.run_id}`")
            raise
        finally:
            for session in list(self._sessions.values()):
                session.close()
        self.result.seconds = round(time.monotonic() - started, 3)
        self.journal.finish_run(self.run_id, self.result.exit_code)
        self.out.finish(self.result)
        return self.result

    # --- selection and connections ---------------------------------------------------------

    def _play_hosts(self, play: Play) -> list:
        """Hosts of a play within --limit (InputError before any host is contacted)."""
        return play.select_hosts(self.inventory, self.options.limit)

    def _connection_specs(self, hosts: dict) -> dict:
        return connection_specs(hosts.values(), self.options.run_options, self.inventory)

    def session(self, name: str, spec):
        with self._lock:
            session = self._sessions.get(name)
        if session is None:
            if self._connect is None:
                from harden.ssh.transport import connect
                self._connect = connect
            session = TimedSession(self._connect(spec), name, self)
            with self._lock:
                self._sessions[name] = session
        return session

    def step(self, host: str, text: str) -> None:
        """What the host is doing now: shown live, and the label of its next execs (-vvv)."""
        with self._lock:
            self._steps[host] = text
        self.out.host_step(host, text)

    def record_exec(self, host: str, seconds: float, rc: int) -> None:
        with self._lock:
            step = self._steps.get(host, "lock")
            self.result.execs.setdefault(host, []).append((step, round(seconds, 4), rc))

    # --- facts gathered with the node lock ----------------------------------------------------

    def first_gather(self, host: str, spec, become) -> tuple[Play, list, str] | None:
        """For a host of the run's first batch: the first play's fact requests and script, to
        run in the preflight's lock exec (harden.apply.preflight), when the play reads as the
        identity the lock is taken with. None otherwise: the play gathers itself."""
        play, batch = self._first_batch
        if play is None or host not in [h.name for h in batch] or play.become != become:
            return None
        host_play = HostPlay(self, play, self.inventory.hosts[host], spec, batch,
                             threading.Event())
        try:
            requests, script = host_play.gather_script()
        except Exception:      # noqa: BLE001 - the play's own gather reports it, as before
            return None
        return play, requests, script

    def keep_prefetched(self, host: str, play: Play, requests: list, stdout: str) -> None:
        with self._lock:
            self._prefetched[host] = (play, requests, stdout)

    def prefetched(self, host: str, play: Play) -> tuple[list, str] | None:
        """The facts the preflight gathered for this host's part of `play` (once: a regather
        after a failed write reads the node again)."""
        with self._lock:
            found = self._prefetched.get(host)
            if found is None or found[0] is not play:
                return None
            del self._prefetched[host]
        return found[1], found[2]

    # --- node locks ---------------------------------------------------------------------------

    def release_script(self, host: str, play: Play, become) -> str:
        """The lock's release, to run after the host's commit in the same exec, when `play` is
        the host's last one and the commit runs as the identity the lock was taken with; ""
        otherwise (release_locks gives it back at the end of the run)."""
        with self._lock:
            if self._final_play.get(host) is not play or host not in self.locked \
                    or self.locked[host] != become:
                return ""
        return release_script(self.holder, lock_path(self.options.backup_root))

    def lock_released(self, host: str, output: str) -> None:
        """After a commit that carried the release: the host's lock is no longer this run's
        to give back (when the node said so)."""
        if released(output):
            with self._lock:
                self.locked.pop(host, None)

    # --- plays and batches -----------------------------------------------------------------

    def _run_plays(self, plays: list, specs: dict) -> None:
        """Play after play until one says stop. A later playbook file (ansible-playbook a.yml
        b.yml) runs only when no host has failed so far: ansible-playbook ends its loop over
        the files when the last play's result was not ok, which any failed or unreachable host
        of the run makes it."""
        previous = None
        for play, hosts in plays:
            if previous is not None and play.playbook != previous and self._gone:
                self._stop(f"playbook {previous}: {', '.join(sorted(self._gone))} failed, "
                           f"the playbooks after it are not run")
                return
            previous = play.playbook
            if not self._play(play, hosts, specs):
                return

    def _stop(self, reason: str) -> None:
        self.result.stopped = reason
        self.out.stopped(reason)

    def _play(self, play: Play, hosts: list, specs: dict) -> bool:
        """Run one play; False when the run must stop (_stop_reason). Batches are cut from
        every host of the play, failed ones included, as ansible-playbook cuts them: a host
        that failed in an earlier play fills its place in a batch without running, so a
        batch whose live hosts all fail beside it is not a batch that failed entirely."""
        self.play_hosts_all = [h.name for h in hosts]
        matched = bool(hosts)
        live = [h for h in hosts if h.name not in self._gone]
        self.out.play_start(play, [h.name for h in live], matched)
        abort = threading.Event()
        batches = self._batches(play, hosts)
        for number, (size, batch) in enumerate(batches, 1):
            if not batch:
                continue
            self.out.batch_start(number, len(batches), [h.name for h in batch])
            outcomes = for_each_host(batch, lambda h: self._host_play(play, h, specs, batch, abort),
                                     self.options.forks)
            failed = [name for name, o in outcomes.items()
                      if not o.ok or o.value in ("failed", "unreachable", "rolled_back")]
            for name, outcome in outcomes.items():
                if not outcome.ok:        # a bug below HostPlay.run: still count the host
                    self.summary(name).failed += 1
                    self.out.warning(name, outcome.message)
            self._gone.update(failed)
            more = any(later for _, later in batches[number:])
            reason = self._stop_reason(play, failed, size, abort, more)
            if reason:
                self._stop(reason)
                return False
        return True

    def _batches(self, play: Play, hosts: list) -> list[tuple[int, list]]:
        """(Ansible's batch size, the batch's hosts still in the run) per serial batch."""
        out, start = [], 0
        for size in serial_batches(play.serial, len(hosts)):
            out.append((size, [h for h in hosts[start:start + size] if h.name not in self._gone]))
            start += size
        return out

    def _host_play(self, play: Play, host, specs: dict, batch: list, abort) -> str:
        """One host's part of the play; tells the output when it is over (progress)."""
        status = "failed"
        try:
            status = HostPlay(self, play, host, specs[host.name], batch, abort).run()
            return status
        finally:
            self.out.host_done(host.name, status)

    @staticmethod
    def _stop_reason(play: Play, failed: list[str], batch_size: int, abort: threading.Event,
                     more: bool) -> str:
        """Why the run stops after a batch, or "". Ansible's rules (PlaybookExecutor.run:
        any_errors_fatal and max_fail_percentage break the play, and so does a batch whose
        every host failed or was unreachable, even with max_fail_percentage: 100), then
        harden's stricter one: a failed serial batch stops the rollout before the next."""
        if not failed:
            return ""
        if play.any_errors_fatal or abort.is_set():
            return f"play '{play.name}': stopped, any_errors_fatal and {', '.join(failed)} failed"
        percent = 100.0 * len(failed) / batch_size
        if play.max_fail_percentage is not None and percent > play.max_fail_percentage:
            return (f"play '{play.name}': stopped, {percent:.0f}% of the batch failed "
                    f"(max_fail_percentage {play.max_fail_percentage:g})")
        if len(failed) == batch_size:
            return (f"play '{play.name}': stopped, every host of the batch failed "
                    f"({', '.join(failed)})")
        if play.max_fail_percentage is None and play.serial and more:
            return (f"play '{play.name}': stopped before the next batch, "
                    f"{', '.join(failed)} failed")
        return ""

    # --- results -----------------------------------------------------------------------------

    def registered_for(self, host: str) -> dict:
        """A host's registered results live for the whole run, as in Ansible, so a later play
        (or another host, through `hostvars`) can use what an earlier play found."""
        with self._lock:
            return self._registered.setdefault(host, {})

    def register(self, host: str, name: str, value: dict) -> None:
        with self._lock:
            self._registered.setdefault(host, {})[name] = value

    def host_facts(self, host: str) -> dict:
        """The `ansible_*` variables gathered on a host; they last for the run, as Ansible's
        fact cache does, so a later `gather_facts: false` play still sees them."""
        with self._lock:
            return self._host_facts.get(host, {})

    def set_host_facts(self, host: str, facts: dict) -> None:
        with self._lock:
            self._host_facts[host] = facts

    def hostvars(self, host: str) -> dict:
        """Another host's variables as a task may read them: inventory vars, its gathered
        facts, then its registered results (a snapshot: that host may be running the current
        play)."""
        with self._lock:
            registered = dict(self._registered.get(host, {}))
            facts = dict(self._host_facts.get(host, {}))
        return {**self.inventory.hosts[host].vars, **facts, **registered,
                "inventory_hostname": host}

    def host_state(self, host: str) -> HostRunState:
        with self._lock:
            return self._host_states.setdefault(host, HostRunState())

    def summary(self, host: str) -> HostSummary:
        with self._lock:
            return self.result.hosts.setdefault(host, HostSummary())

    def rescued(self, host: str, failed_counted: bool) -> None:
        """A failure a rescue caught counts in `rescued`, not `failed` (as Ansible's recap)."""
        with self._lock:
            summary = self.result.hosts.setdefault(host, HostSummary())
            summary.failed -= 1 if failed_counted else 0
            summary.rescued += 1

    def report(self, result: TaskResult) -> None:
        if result.no_log:
            result.diff = ""
            result.message = NO_LOG_MESSAGE if result.message else ""
        with self._lock:
            self.result.tasks.append(result)
            self.result.hosts.setdefault(result.host, HostSummary()).add(result)
        self.journal.task(self.run_id, result.host, result.play, result.task, result.status,
                          result.message or None)
        self.out.task(result)


class HostPlay(PlayFacts, TaskPlanner, NodeWriter, HealthVerification, HostOutcome):
    """One host's part of one play (runs in a worker thread): the pipeline of the module
    docstring. Its steps live with their jobs: facts (play_facts), planning and queueing
    tasks (tasks), writing batches (node_writes), health verification (verification),
    committing or failing the host (host_outcome); this class holds their shared state."""

    def __init__(self, runner: Runner, play: Play, host, spec, batch: list, abort):
        self.runner = runner
        self.play = play
        self.host = host
        self.name = host.name
        self.spec = spec
        self.batch = [h.name for h in batch]
        self.abort = abort
        self.check = runner.options.check
        # --check-mode ansible: planned changes are not fed back into the facts
        self.as_found = self.check and runner.options.check_mode == "ansible"
        self.registered = runner.registered_for(self.name)
        self.notified: list[str] = []
        self.pending: list[PendingTask] = []
        self.state = runner.host_state(self.name)
        self.unverified: set[str] = set()        # manifests changed and not waited for
        self.changed_paths: set[str] = set()
        self.facts = Facts()
        self.pre_run_ps: list[str] = []
        self.ps_before_write: dict[str, list[str]] = {}   # path -> processes before its write
        self.session = None
        self.current: Task | None = None          # the task running, for no_log on errors
        self.failed_line = False                  # a task line of this host said "failed"
        self.write_failed = False                 # a write stopped half-way (facts stale)

    # --- pipeline ----------------------------------------------------------------------------

    def run(self) -> str:
        """'ok', 'failed', 'unreachable' or 'rolled_back'."""
        journal, run_id = self.runner.journal, self.runner.run_id
        summary = self.runner.summary(self.name)
        journal.host(run_id, self.name, "running", summary.as_dict())
        status, message = "ok", ""
        try:
            self.session = self.runner.session(self.name, self.spec)
            self._step("gathering facts")
            self.gather()
            self.run_tasks()
            if not self.pending:            # else the last batch rides with the commit
                self.run_handlers()
                self.verify()
            self.commit("committed")
        except HostFailed as exc:
            status, message = self.fail(str(exc))
        except TaskFailed as exc:
            status, message = self.fail(self._quiet(str(exc)))
        except HardenError as exc:
            if getattr(exc, "kind", "") in ("unreachable", "auth failed", "host key mismatch",
                                            "host key unknown"):
                summary.unreachable += 1
                status, message = "unreachable", str(exc)
                self.runner.out.warning(self.name, str(exc))
                if self.state.wrote:
                    self.runner.out.warning(self.name, "the connection was lost after changes "
                                            "were written; undo them with `harden rollback "
                                            f"{self.runner.run_id}`")
            else:
                status, message = self.fail(self._quiet(str(exc)))
        except Exception as exc:          # noqa: BLE001 - a bug must still roll the host back
            status, message = self.fail(self._quiet(f"internal error: {type(exc).__name__}: "
                                                    f"{exc}"))
        journal.host(run_id, self.name, status, summary.as_dict(), message or None)
        return status

    def _step(self, text: str) -> None:
        self.runner.step(self.name, text)

    def _quiet(self, message: str) -> str:
        """An error raised inside a no_log task may quote what the task hides (a rendered
        argument, a command's output), so only the task's name leaves the host."""
        if self.current is not None and self.current.no_log:
            return f"task '{self.current.name}': {NO_LOG_MESSAGE}"
        return message

    def _task_failed(self, task: Task, detail: object) -> HostFailed:
        return HostFailed(f"task '{task.name}': {NO_LOG_MESSAGE if task.no_log else detail}")


class TimedSession:
    """A host's session whose execs are timed and labelled with what the host was doing
    (-v output: execs per host, where the time went). Everything else is the session's."""

    def __init__(self, inner, host: str, runner: Runner):
        self._inner = inner
        self._host = host
        self._runner = runner

    def run(self, command, **kwargs):
        start = time.monotonic()
        result = self._inner.run(command, **kwargs)
        self._runner.record_exec(self._host, time.monotonic() - start, result.rc)
        return result

    def __getattr__(self, name):
        return getattr(self._inner, name)


# --- `harden apply` ------------------------------------------------------------------------

def run_apply(inventories, playbook_path, options: ApplyOptions, output: Output,
              journal: Journal | None = None) -> int:
    """Load everything (bad input → InputError, exit 1, no host contacted), run, return the
    exit code. The caller picks the printer, so the runner never imports one. Several
    playbooks (ansible-playbook a.yml b.yml) are one run: one lock, one run id, one rollback."""
    from harden.inventory.loader import load_inventory
    from harden.apply.playbook import load_playbooks

    inventory = load_inventory(inventories).with_defaults(options.host_defaults)
    paths = [playbook_path] if isinstance(playbook_path, str) else list(playbook_path)
    playbook = load_playbooks(paths, options.roles_path)
    own_journal = journal is None
    journal = journal or Journal()
    try:
        return Runner(inventory, playbook, options, output, journal).run().exit_code
    finally:
        if own_journal:
            journal.close()
