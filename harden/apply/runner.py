"""Running a playbook: plays over hosts in serial batches, each host's part of a play as one
pipeline, health-gated, rolled back on failure.

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
the play. With `serial`, a failed batch stops the rollout before the next host is touched
(unless `max_fail_percentage` allows it); `any_errors_fatal` stops every host at once.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from harden.ssh.settings import RunOptions, connection_specs
from harden.errors import HardenError, InputError
from harden.apply.facts import FactNotGathered, Facts, build_script, merge_requests, parse_output
from harden.apply.events import NO_LOG_MESSAGE, HostSummary, Output, RunResult, TaskResult
from harden.apply import loops
from harden.apply.health import wait_healthy
from harden.runs.journal import HostRecord, Journal, commit_script, new_run_id, \
    parse_index
from harden.apply.modules import get_module
from harden.apply.modules.base import Change, PlanContext, TaskFailed, apply_script
from harden.ssh.parallel import for_each_host
from harden.apply.playbook import Play, Playbook, Task, check_vars_spec, serial_batches, \
    task_selected
from harden.apply.rollback import Restart, is_manifest, read_node_run, restarts_for, restore_host
from harden.node import markers
from harden.node.paths import BACKUP_ROOT, JOURNAL_ROOT, MANIFEST_DIR
from harden.apply.templating import Untemplated, evaluate, layered_vars, render_value

WAIT_MODULES = ("wait_for_static_pod", "wait_for_kubelet")
COMMAND_MODULES = ("command", "shell")      # their own exec: rc and output are registered
_LOOP_ITEM = "_harden_loop_item"            # where a loop's current item registers its result
MAX_FACT_ROUNDS = 5
_PS_MARK = markers.PS
_WRITE_PS_END = markers.PS_END
_SERVICE_VERBS = {"restarted": "restart", "reloaded": "reload"}


@dataclass
class ApplyOptions:
    check: bool = False
    diff: bool = False
    forks: int = 20
    tags: list[str] | None = None
    skip_tags: list[str] | None = None
    limit: str | None = None
    extra_vars: dict = field(default_factory=dict)
    run_options: RunOptions = field(default_factory=RunOptions)
    backup_root: str = BACKUP_ROOT
    journal_root: str = JOURNAL_ROOT


@dataclass
class HostRunState:
    """What one host's plays share: whether this run wrote there (so a failure in a later
    play still restores the files of an earlier one) and what its node record lists."""

    started: float = field(default_factory=time.time)
    wrote: bool = False
    become: bool | None = None               # identity of the writes (see wrote_as)
    restarts: list[Restart] = field(default_factory=list)
    secret_paths: set[str] = field(default_factory=set)
    kubelet_waited: bool = False
    record_on_node: bool = False             # an earlier play committed a node record

    def wrote_as(self, become: bool | None) -> None:
        """Remember who wrote: reading the backups back, restoring and committing must run as
        the same identity (the backups are 0700), and with tasks of different `become` the
        most privileged one wins (True: sudo; None: the host's ansible_become; False)."""
        rank = {False: 0, None: 1, True: 2}
        if not self.wrote or rank[become] > rank[self.become]:
            self.become = become
        self.wrote = True


class HostFailed(Exception):
    """This host cannot continue the play; what is written so far is rolled back."""


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
        self.result = RunResult(self.run_id, options.check)
        self._connect = connect
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._gone: set[str] = set()          # failed / unreachable: out of later plays
        self._host_states: dict[str, HostRunState] = {}
        self.play_hosts_all: list[str] = []   # the current play's hosts within --limit
        self._registered: dict[str, dict] = {}  # host -> its registered results, all plays

    def run(self, command: str = "apply") -> RunResult:
        plays = [(play, self._play_hosts(play)) for play in self.playbook.plays]
        for play, hosts in plays:
            check_vars_spec(play, hosts, self.options.extra_vars)
        specs = self._connection_specs({h.name: h for _, hosts in plays for h in hosts})
        extra = self.options.extra_vars
        labels = {spec.name: extra[spec.name] for play, _ in plays for spec in play.vars_spec
                  if spec.name in extra}
        self.journal.start_run(self.run_id, self.playbook.path, command, self.options.check,
                               labels)
        try:
            for play, hosts in plays:
                if not self._play(play, hosts, specs):
                    break
        except KeyboardInterrupt:
            # Left unfinished on purpose: `harden runs` shows it interrupted, and the nodes'
            # backups let `harden rollback RUN_ID` undo whatever was written.
            self.out.stopped(f"interrupted; undo with `harden rollback {self.run_id}`")
            raise
        finally:
            for session in list(self._sessions.values()):
                session.close()
        self.journal.finish_run(self.run_id, self.result.exit_code)
        self.out.finish(self.result)
        return self.result

    # --- selection and connections ---------------------------------------------------------

    def _play_hosts(self, play: Play) -> list:
        """Hosts of a play within --limit (InputError before any host is contacted); a
        `hosts:` pattern matching nothing is reported at the play's file and line."""
        try:
            self.inventory.select(play.hosts)
        except InputError as exc:
            raise InputError(f"play '{play.name}' hosts: {exc.message}", play.path,
                             play.line) from None
        return self.inventory.select(play.hosts, limit=self.options.limit)

    def _connection_specs(self, hosts: dict) -> dict:
        return connection_specs(hosts.values(), self.options.run_options, self.inventory)

    def session(self, name: str, spec):
        with self._lock:
            session = self._sessions.get(name)
        if session is None:
            if self._connect is None:
                from harden.ssh.transport import connect
                self._connect = connect
            session = self._connect(spec)
            with self._lock:
                self._sessions[name] = session
        return session

    # --- plays and batches -----------------------------------------------------------------

    def _play(self, play: Play, hosts: list, specs: dict) -> bool:
        """Run one play; False when the run must stop (a failed serial rollout)."""
        self.play_hosts_all = [h.name for h in hosts]
        hosts = [h for h in hosts if h.name not in self._gone]
        self.out.play_start(play, [h.name for h in hosts])
        abort = threading.Event()
        start = 0
        batches = list(serial_batches(play.serial, len(hosts)))
        for number, size in enumerate(batches, 1):
            batch = hosts[start:start + size]
            start += size
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
            reason = self._stop_reason(play, failed, len(batch), abort, start < len(hosts))
            if reason:
                self.result.stopped = reason
                self.out.stopped(reason)
                return False
        return True

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
        if not failed:
            return ""
        if play.any_errors_fatal or abort.is_set():
            return f"play '{play.name}': stopped, any_errors_fatal and {', '.join(failed)} failed"
        if play.max_fail_percentage is not None:
            percent = 100.0 * len(failed) / batch_size
            if percent > play.max_fail_percentage:
                return (f"play '{play.name}': stopped, {percent:.0f}% of the batch failed "
                        f"(max_fail_percentage {play.max_fail_percentage:g})")
            return ""
        if play.serial and more:
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

    def hostvars(self, host: str) -> dict:
        """Another host's variables as a task may read them: inventory vars, then its
        registered results (a snapshot: that host may be running the current play)."""
        with self._lock:
            registered = dict(self._registered.get(host, {}))
        return {**self.inventory.hosts[host].vars, **registered, "inventory_hostname": host}

    def host_state(self, host: str) -> HostRunState:
        with self._lock:
            return self._host_states.setdefault(host, HostRunState())

    def summary(self, host: str) -> HostSummary:
        with self._lock:
            return self.result.hosts.setdefault(host, HostSummary())

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


@dataclass
class _Pending:
    """A task planned and waiting in the current write batch."""

    result: TaskResult
    changes: list[Change]
    become: bool | None = None
    restart: Restart | None = None    # recorded for rollback only once the exec reached it


class HostVars(Mapping):
    """`hostvars[host]`: built on access, so a task pays only for the hosts it reads."""

    def __init__(self, runner: Runner):
        self._runner = runner

    def __getitem__(self, host: str) -> dict:
        if host not in self._runner.inventory.hosts:
            raise KeyError(host)
        return self._runner.hostvars(host)

    def __iter__(self):
        return iter(self._runner.inventory.hosts)

    def __len__(self) -> int:
        return len(self._runner.inventory.hosts)


class HostPlay:
    """One host's part of one play (runs in a worker thread)."""

    def __init__(self, runner: Runner, play: Play, host, spec, batch: list, abort):
        self.runner = runner
        self.play = play
        self.host = host
        self.name = host.name
        self.spec = spec
        self.batch = [h.name for h in batch]
        self.abort = abort
        self.check = runner.options.check
        self.registered = runner.registered_for(self.name)
        self.notified: list[str] = []
        self.pending: list[_Pending] = []
        self.state = runner.host_state(self.name)
        self.unverified: set[str] = set()        # manifests changed and not waited for
        self.changed_paths: set[str] = set()
        self.facts = Facts()
        self.pre_run_ps: list[str] = []
        self.ps_before_write: dict[str, list[str]] = {}   # path -> processes before its write
        self.session = None
        self.current: Task | None = None          # the task running, for no_log on errors
        self.failed_line = False                  # a task line of this host said "failed"

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
        self.runner.out.host_step(self.name, text)

    def _quiet(self, message: str) -> str:
        """An error raised inside a no_log task may quote what the task hides (a rendered
        argument, a command's output), so only the task's name leaves the host."""
        if self.current is not None and self.current.no_log:
            return f"task '{self.current.name}': {NO_LOG_MESSAGE}"
        return message

    def _task_failed(self, task: Task, detail: object) -> HostFailed:
        return HostFailed(f"task '{task.name}': {NO_LOG_MESSAGE if task.no_log else detail}")

    def fail(self, message: str) -> tuple[str, str]:
        """Record the failure, stop other hosts if fatal, roll back what was written.

        Whatever goes wrong while rolling back, the original failure stays in the message and
        the user is told where the backups are: a host must never end up "running" in the
        journal with its cause lost."""
        if self.play.any_errors_fatal:
            self.abort.set()
        if not self.failed_line:          # failed outside a task line: still a failed host
            self.runner.summary(self.name).failed += 1
        self.runner.out.warning(self.name, f"host failed: {message}")  # also non-task reasons
        if self.check or not self.state.wrote or self.session is None:
            return "failed", message
        self._step("rolling back")
        options = self.runner.options
        become = self.state.become
        try:
            node_run = read_node_run(self.session, self.runner.run_id, become,
                                     options.backup_root, options.journal_root)
            if node_run is None:
                return "failed", message
            restarts = restarts_for([e.path for e in node_run.entries],
                                    [r.__dict__ for r in self.state.restarts])
            outcome = restore_host(self.session, self.runner.run_id, node_run.entries,
                                   become=become, restarts=restarts,
                                   wait_kubelet=self.state.kubelet_waited,
                                   backup_root=options.backup_root)
        except Exception as exc:          # noqa: BLE001 - see the docstring
            self.runner.out.warning(self.name, f"ROLLBACK FAILED: {exc}; backups are in "
                                               f"{options.backup_root}/{self.runner.run_id}")
            return "failed", f"{message}; rollback failed: {exc}"
        for warning in outcome.warnings:
            self.runner.out.warning(self.name, warning)
        if not outcome.healthy:
            self.runner.out.warning(self.name, f"restored, but not healthy: {outcome.detail}")
            return "failed", f"{message}; restored but unhealthy: {outcome.detail}"
        self.runner.summary(self.name).rolled_back += 1
        self.runner.out.warning(self.name, f"rolled back {len(outcome.restored)} path(s), "
                                           f"removed {len(outcome.removed)} created path(s)")
        try:
            self.commit("rolled_back")
        except Exception as exc:          # noqa: BLE001 - see the docstring
            self.runner.out.warning(self.name, f"could not write the run record: {exc}")
        return "rolled_back", message

    # --- facts -------------------------------------------------------------------------------

    def base_vars(self, just_registered: dict | None = None, task: Task | None = None) -> dict:
        """The task's variables, rendered (variables may refer to variables). Built per task
        because a variable may refer to a result registered since; `just_registered` adds a
        result not registered yet (what `changed_when` judges). The built-in variables and
        registered results are data and are never templated: a node's output must not be
        able to run a template on the controller."""
        magic = {"inventory_hostname": self.name,
                 "group_names": sorted(g for g in self.host.groups if g != "all"),
                 "ansible_check_mode": self.check, "play_hosts": self.batch,
                 "ansible_play_hosts_all": list(self.runner.play_hosts_all),
                 "groups": {g: list(h) for g, h in self.runner.inventory.groups.items()},
                 "hostvars": HostVars(self.runner),
                 "harden_run_id": self.runner.run_id}
        return layered_vars(self.play.defaults, self.host.vars, Untemplated(magic),
                            self.play.vars, task.vars if task else None,
                            Untemplated(task.loop_vars) if task else None,
                            Untemplated({**self.registered, **(just_registered or {})}),
                            extra_vars=self.runner.options.extra_vars)

    def gather(self) -> None:
        """One exec: every fact the play's tasks and handlers name, plus the process list
        (to tell a restarted pod from the old one) and runs left unfinished on this node."""
        requests = []
        variables = self.base_vars()
        for task in self.tasks() + self.play.handlers:
            for scope in self._fact_scopes(task, variables):
                try:
                    args = self.args(task, scope)
                except HardenError:
                    continue    # depends on a registered result: gathered when it plans
                requests += get_module(task.module).facts_needed(args)
        requests = merge_requests(requests)
        backups, journals = self.runner.options.backup_root, self.runner.options.journal_root
        script = build_script(requests) + (
            f"printf '%s\\n' {_PS_MARK}\nps -ww -eo pid=,args= 2>/dev/null || true\n"
            f"printf '%s\\n' {_PS_MARK}-unfinished\n"
            f"for d in {shlex.quote(backups)}/*/; do [ -f \"$d/index\" ] || continue; "
            f"r=$(basename \"$d\"); [ -f {shlex.quote(journals)}/\"$r\".json ] || "
            "echo \"$r\"; done; :\n")
        result = self.session.run("sh -s", become=self.play.become, stdin=script.encode())
        stdout = result.stdout.decode(errors="replace")
        facts_part, _, rest = stdout.partition(_PS_MARK + "\n")
        ps_part, _, unfinished = rest.partition(_PS_MARK + "-unfinished\n")
        try:
            self.facts = parse_output(requests, facts_part)
        except ValueError as exc:
            raise HostFailed(f"gathering facts: {exc}") from None
        self.pre_run_ps = [" ".join(line.split()) for line in ps_part.splitlines()]
        for run_id in unfinished.split():
            if run_id != self.runner.run_id:
                self.runner.out.warning(self.name, f"run {run_id} did not finish on this host "
                                                   f"(interrupted?); undo it with "
                                                   f"`harden rollback {run_id}`")

    def _fact_scopes(self, task: Task, variables: dict) -> list[dict]:
        """The variables a task's arguments are rendered with: one set per loop item."""
        scope = self.base_vars(task=task) if task.vars else variables
        if task.loop is None:
            return [scope]
        try:
            found = loops.items(*task.loop, scope, task.where)
        except (HardenError, TaskFailed):
            return []           # the items come from a result registered later
        return [self.base_vars(task=replace(task, loop_vars=loops.item_vars(
            task.loop_control, item, index))) for index, item in enumerate(found)]

    def gather_more(self, request) -> None:
        result = self.session.run("sh -s", become=self.play.become,
                                  stdin=build_script([request]).encode())
        try:
            self.facts.merge(parse_output([request], result.stdout.decode(errors="replace")))
        except ValueError as exc:
            raise HostFailed(f"gathering facts: {exc}") from None

    # --- tasks -------------------------------------------------------------------------------

    def tasks(self) -> list[Task]:
        return [t for t in self.play.tasks
                if task_selected(t, self.play, self.runner.options.tags,
                                 self.runner.options.skip_tags)]

    @staticmethod
    def args(task: Task, variables: dict) -> dict:
        return get_module(task.module).validate(render_value(task.args, variables, task.where),
                                                *task.where)

    def run_tasks(self) -> None:
        for task in self.tasks():
            if self.abort.is_set():
                raise HostFailed("stopped: another host failed and the play has "
                                 "any_errors_fatal")
            self.run_task(task)
        self.flush()

    def run_task(self, task: Task, handler: bool = False) -> None:
        """Run one task; `current` stays set when it raises, for run() to see its no_log."""
        self.current = task
        if task.loop is not None:
            self.run_loop(task, handler)
        else:
            self._run_task(task, handler)
        self.current = None

    def run_loop(self, task: Task, handler: bool) -> None:
        """One run of the task per item (each its own line); `register` gets the items'
        results together, as Ansible registers a loop. Items are data: never templated."""
        variables = self.base_vars(task=task)
        try:
            found = loops.items(*task.loop, variables, task.where)
        except (TaskFailed, InputError) as exc:
            self.flush()
            self.done(TaskResult(self.name, self.play.name, task.name, "failed", handler=handler,
                                 no_log=task.no_log), "failed", str(exc))
            raise self._task_failed(task, exc) from None
        results = []
        for index, item in enumerate(found):
            extra = loops.item_vars(task.loop_control, item, index)
            shown = loops.label(task.loop_control, item, {**variables, **extra}, task.where)
            one = replace(task, name=f"{task.name} (item={shown})", loop=None, loop_vars=extra,
                          register=_LOOP_ITEM if task.register else None)
            self.runner.register(self.name, _LOOP_ITEM, {"changed": False, "skipped": True})
            self._run_task(one, handler)
            results.append({**self.registered.get(_LOOP_ITEM, {}), "item": item})
        self.registered.pop(_LOOP_ITEM, None)
        if task.register:
            self.runner.register(self.name, task.register, loops.aggregate(results))

    def _run_task(self, task: Task, handler: bool) -> None:
        result = TaskResult(self.name, self.play.name, task.name, "ok", handler=handler,
                            no_log=task.no_log)
        variables = self.base_vars(task=task)
        if task.run_once and self.name != self.batch[0]:
            return self.done(result, "skipped", "run_once: runs on " + self.batch[0])
        self._step(task.name)
        module = get_module(task.module)
        try:
            if not all(evaluate(cond, variables, task.where) for cond in task.when):
                return self.done(result, "skipped")
            args = self.args(task, variables)
            changes = self.plan(module, args, variables, task.search_dirs)
            found = self.with_facts(module.name,
                                    lambda: module.result(args, self.facts, changes))
            result.message = module.report(args, variables)
        except (TaskFailed, InputError) as exc:
            self.flush()
            self.done(result, "failed", str(exc))
            raise self._task_failed(task, exc) from None
        if self.check or self.writes(task, module):     # check_mode: true leaves the node as is
            for change in changes:
                change.record_in(self.facts)
        if task.no_log or any(c.secret for c in changes):
            self.state.secret_paths.update(c.path for c in changes if c.path)
        if self.runner.options.diff and not task.no_log:
            result.diff = "".join(c.diff for c in changes)
        if task.module in COMMAND_MODULES:
            return self.run_command(task, args, changes, result)
        changed = self.changed(task, bool(changes), variables, found)
        self.register(task, changed, changes, **found)
        for name, value in module.variables_set(args).items():      # set_fact
            self.runner.register(self.name, name, value)
        if changed:
            self.notify(task)
        if task.module in WAIT_MODULES:
            self.flush()
            self.wait(task, module, args, result, variables)
            return self.done(result, "ok")
        return self.queue(task, module, args, changes, self._with(result, "changed" if changed
                                                                  else "ok"))

    def queue(self, task: Task, module, args: dict, changes: list[Change],
              result: TaskResult) -> None:
        """Add the task to the current write batch (or report it at once when nothing is
        queued and it writes nothing)."""
        writes = bool(changes) and self.writes(task, module)
        restart = Restart(args["name"] or "", _SERVICE_VERBS.get(args["state"], "restart"),
                          bool(args["daemon_reload"])) \
            if task.module == "service" and writes else None
        if writes and self.pending and self.pending[0].become != self._become(task):
            self.flush()                 # one exec runs under one identity
        if not writes and not self.pending:
            return self.done(result, result.status, result.message)
        self.pending.append(_Pending(result, changes if writes else [], self._become(task),
                                     restart))
        if task.module == "service":
            self.flush()                 # a restart is a point everything after depends on
        return None

    def plan(self, module, args: dict, variables: dict, search_dirs=()) -> list[Change]:
        ctx = PlanContext(variables, [*search_dirs, *self.play.template_dirs], self.check)
        return self.with_facts(module.name, lambda: module.plan(args, self.facts, ctx))

    def with_facts(self, what: str, step):
        """Run a step that reads facts; a fact nobody asked for up front (a registered variable
        in an argument, a manifest only chmod-ed so far) is fetched and the step retried."""
        for _ in range(MAX_FACT_ROUNDS):
            try:
                return step()
            except FactNotGathered as missing:
                self.flush()
                self.gather_more(missing.request)
        raise HostFailed(f"{what}: facts still missing after {MAX_FACT_ROUNDS} rounds")

    def writes(self, task: Task, module) -> bool:
        """Whether this task's changes are carried out now (check mode: only commands the
        playbook marks check_mode: false; check_mode: true never writes)."""
        if task.check_mode is True:
            return False
        if not self.check:
            return True
        return not module.check_mode_safe and task.check_mode is False

    def changed(self, task: Task, planned: bool, variables: dict, result: dict) -> bool:
        if task.changed_when is None:
            return planned
        scope = self.base_vars({task.register: result}, task) if task.register else variables
        return all(evaluate(cond, scope, task.where) for cond in task.changed_when)

    def register(self, task: Task, changed: bool, changes: list[Change], **extra) -> dict:
        value = {"changed": changed, "failed": False, "skipped": False,
                 "changes": [c.summary for c in changes], **extra}
        if task.register:
            self.runner.register(self.name, task.register, value)
        return value

    def notify(self, task: Task) -> None:
        for name in task.notify:
            if name not in self.notified:
                self.notified.append(name)

    def run_command(self, task: Task, args: dict, changes: list[Change],
                    result: TaskResult) -> None:
        """A command needs its own exec: its exit code and output may be registered."""
        self.flush()
        module = get_module(task.module)
        if not changes:
            self.register(task, False, changes, rc=0, stdout="", stderr="")
            return self.done(result, "ok", "skipped: creates exists")
        if not self.writes(task, module):
            self.register(task, True, changes, rc=0, stdout="", stderr="", skipped=True)
            return self.done(result, "changed", "not run in check mode")
        out = self.session.run("sh -s", become=self._become(task),
                               stdin=apply_script(changes, self.runner.run_id,
                                                  self.runner.options.backup_root).encode())
        stdout = out.stdout.decode(errors="replace")
        stderr = out.stderr.decode(errors="replace")
        value = {"rc": out.rc, "stdout": stdout.rstrip("\n"), "stderr": stderr.rstrip("\n"),
                 "stdout_lines": stdout.splitlines()}
        if out.rc != 0:
            hint = self._denied_hint(stderr, self._become(task))
            self.done(result, "failed", f"exit {out.rc}: {hint}{stderr.strip()[-300:]}")
            raise HostFailed(f"task '{task.name}': command exited {out.rc}")
        try:
            changed = self.changed(task, True, self.base_vars(task=task),
                                   {"changed": True, **value})
        except InputError as exc:
            self.done(result, "failed", str(exc))
            raise self._task_failed(task, exc) from None
        self.register(task, changed, changes, **value)
        if changed:
            self.notify(task)
        return self.done(result, "changed" if changed else "ok")

    def _denied_hint(self, stderr: str, become: bool | None) -> str:
        """A write or command refused by the node's permissions, run without become, says
        as whom it ran and what fixes it (the raw "mkdir: ... Permission denied" does not)."""
        spec = getattr(self.session, "spec", None)
        if "Permission denied" not in stderr or spec is None:
            return ""
        if spec.become if become is None else become:
            return ""
        return (f"permission denied as user {spec.target.user}; add `become: true` to the "
                "play or task: ")

    def _become(self, task: Task):
        return task.become if task.become is not None else self.play.become

    @staticmethod
    def _with(result: TaskResult, status: str) -> TaskResult:
        result.status = status
        return result

    def done(self, result: TaskResult, status: str, message: str = "") -> None:
        self.failed_line = self.failed_line or status == "failed"
        result.status = status
        result.message = message
        self.runner.report(result)

    # --- writing -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every pending task's changes in ONE exec; markers tell which task failed."""
        if not self.pending:
            return
        pending, self.pending = self.pending, []
        if not any(item.changes for item in pending):
            for item in pending:
                self.done(item.result, item.result.status, item.result.message)
            return
        out = self._write(pending)
        stdout = out.stdout.decode(errors="replace")
        processes = _between(stdout, _PS_MARK, _WRITE_PS_END)
        reached = [int(line.split()[1]) for line in stdout.splitlines()
                   if line.startswith(markers.TASK)]
        if out.rc == 0:
            reached = list(range(len(pending)))
        for index, item in enumerate(pending):
            if index in reached and item.restart is not None:
                self.state.restarts.append(item.restart)
        if out.rc == 0:
            for item in pending:
                self._applied(item.changes, processes)
                self.done(item.result, item.result.status, item.result.message)
            return
        failed_at = reached[-1] if reached else 0
        for item in pending[:failed_at]:
            self._applied(item.changes, processes)
            self.done(item.result, item.result.status, item.result.message)
        bad = pending[failed_at]
        self._applied(bad.changes, processes)   # partly written: rollback must consider them
        error = out.stderr.decode(errors="replace").strip()[-300:]
        self.done(bad.result, "failed", f"writing failed (exit {out.rc}): "
                                        f"{self._denied_hint(error, pending[0].become)}{error}")
        raise HostFailed(f"task '{bad.result.task}': writing failed")

    def _write(self, pending: list[_Pending]):
        """The exec itself. Before writing it lists the node's processes: a pod running then
        belongs to an earlier version of a manifest this exec writes, even one started after
        the play began (a second change to the same manifest in one play). And the first write
        of a play after an earlier play committed takes the node record back, so a run killed
        now reads as unfinished on the node (next run's warning, `harden rollback`)."""
        changes: list[Change] = []
        if self.state.record_on_node:
            options = self.runner.options
            run = shlex.quote(self.runner.run_id)
            changes.append(Change(summary="", script=(
                f"rm -f -- {shlex.quote(options.journal_root)}/{run}.json "
                f"{shlex.quote(options.backup_root)}/{run}/after-index")))
        if any(change.path for item in pending for change in item.changes):
            changes.append(Change(summary="", script=(
                f"printf '%s\\n' {_PS_MARK}; ps -ww -eo pid=,args= 2>/dev/null || true; "
                f"printf '%s\\n' {_WRITE_PS_END}")))
        for index, item in enumerate(pending):
            changes.append(Change(summary="", script=f"echo '{markers.TASK}{index}'"))
            changes += item.changes
        self.state.wrote_as(pending[0].become)
        self._step("writing")
        out = self.session.run("sh -s", become=pending[0].become,
                               stdin=apply_script(changes, self.runner.run_id,
                                                  self.runner.options.backup_root).encode())
        self.state.record_on_node = False
        return out

    def _applied(self, changes: list[Change], processes: list[str]) -> None:
        for change in changes:
            if change.path:
                self.changed_paths.add(change.path)
                self.ps_before_write[change.path] = processes
                if is_manifest(change.path) and change.rewrites:
                    self.unverified.add(change.path)   # a chmod restarts nothing: no wait

    # --- handlers, waits, verification -------------------------------------------------------

    def run_handlers(self) -> None:
        for handler in self.play.handlers:
            if handler.name in self.notified:
                if self.abort.is_set():
                    raise HostFailed("stopped: another host failed (any_errors_fatal)")
                self.run_task(handler, handler=True)
        self.flush()

    def wait(self, task: Task, module, args: dict, result: TaskResult,
             variables: dict) -> None:
        try:
            spec = self.with_facts(module.name,
                                   lambda: module.wait_spec(args, self.facts, variables))
        except TaskFailed as exc:
            self.done(result, "failed", str(exc))
            raise self._task_failed(task, exc) from None
        manifest = None
        if task.module == "wait_for_static_pod":
            manifest = args["manifest"] or f"{MANIFEST_DIR}/{args['name']}.yaml"
        else:
            self.state.kubelet_waited = True
        if self.check:
            result.message = "not waited for in check mode"
            return
        self._step(f"waiting for {spec.what}")
        previous = self.previous_pids(spec, manifest) if manifest in self.changed_paths \
            else set()
        health = wait_healthy(self.session, spec, previous, become=self._become(task))
        if not health.healthy:
            self.done(result, "failed", f"not healthy after {spec.timeout}s: {health.detail}")
            raise HostFailed(f"{spec.what} did not become healthy: {health.detail}")
        self.unverified.discard(manifest)

    def previous_pids(self, spec, manifest: str) -> set[int]:
        """Processes running the manifest's argv before its LAST write in this play (and
        before the play): none of them can be the pod that write makes the kubelet start."""
        if spec.argv is None:
            return set()
        wanted = " ".join(" ".join(spec.argv).split())
        pids = set()
        for line in self.pre_run_ps + self.ps_before_write.get(manifest, []):
            pid, _, args = line.partition(" ")
            if args == wanted and pid.isdigit():
                pids.add(int(pid))
        return pids

    def verify(self) -> None:
        """Wait for every changed manifest no task waited for (module defaults)."""
        if self.check:
            return
        module = get_module("wait_for_static_pod")
        for path in sorted(self.unverified):
            name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            task = Task(name=f"verify {name}", module=module.name,
                        args={"name": name, "manifest": path}, path=self.play.path,
                        line=self.play.line)
            result = TaskResult(self.name, self.play.name, task.name, "ok")
            self.wait(task, module, module.validate(task.args), result, self.base_vars())
            self.done(result, "ok")

    # --- commit ------------------------------------------------------------------------------

    def commit(self, status: str) -> None:
        """Write the node record (only where this run wrote files: commands leave no backup,
        so there is nothing to undo for them) and journal the changed files."""
        state = self.state
        if self.check or not state.wrote:
            return
        tasks = [{"play": t.play, "task": t.task, "status": t.status}
                 for t in list(self.runner.result.tasks) if t.host == self.name]
        record = HostRecord(self.runner.run_id, self.name, self.runner.playbook.path, status,
                            state.started, time.time(), [r.__dict__ for r in state.restarts],
                            state.kubelet_waited, sorted(state.secret_paths), tasks)
        self._step("committing")
        out = self.session.run("sh -s", become=state.become,
                               stdin=commit_script(record, self.runner.options.backup_root,
                                                   self.runner.options.journal_root))
        if out.rc != 0:
            raise HostFailed(f"writing the run record failed: "
                             f"{out.stderr.decode(errors='replace').strip()[-300:]}")
        state.record_on_node = True
        entries = parse_index(out.stdout.decode(errors="replace"))
        self.runner.journal.files(self.runner.run_id, self.name, entries)


def _between(text: str, start: str, end: str) -> list[str]:
    """The lines between two marker lines, whitespace-normalised (a `ps` listing)."""
    lines = text.splitlines()
    if start not in lines or end not in lines:
        return []
    section = lines[lines.index(start) + 1:lines.index(end)]
    return [" ".join(line.split()) for line in section if line.strip()]


# --- `harden apply` ------------------------------------------------------------------------

def run_apply(inventories, playbook_path: str, options: ApplyOptions, output: Output,
              journal: Journal | None = None) -> int:
    """Load everything (bad input → InputError, exit 1, no host contacted), run, return the
    exit code. The caller picks the printer, so the runner never imports one."""
    from harden.inventory.loader import load_inventory
    from harden.apply.playbook import load_playbook

    inventory = load_inventory(inventories)
    playbook = load_playbook(playbook_path)
    own_journal = journal is None
    journal = journal or Journal()
    try:
        return Runner(inventory, playbook, options, output, journal).run().exit_code
    finally:
        if own_journal:
            journal.close()
