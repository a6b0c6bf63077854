"""Planning and queueing one host's tasks: conditions, arguments, plans fed back into the facts,
registered results, notifications, commands, handlers. A mixin of harden.apply.runner.HostPlay;
the queued changes go to the node through harden.apply.node_writes."""

from __future__ import annotations

import itertools
import shlex
import subprocess
import time
from dataclasses import replace

from harden.apply import home_paths, host_facts, loops
from harden.apply.block_flow import BlockFlow
from harden.apply.events import TaskResult
from harden.apply.host_state import HostFailed, PendingTask, denied_hint
from harden.apply.modules import get_module
from harden.apply.facts import FILE, FactRequest
from harden.apply.modules.accounts import account_facts
from harden.apply.modules.command import known_writes
from harden.apply.modules.base import Change, PlanContext, TaskFailed, apply_script
from harden.apply.playbook import Task, task_selected
from harden.apply.rollback import Restart, is_manifest
from harden.apply.templating import evaluate, render_string, render_value
from harden.errors import InputError

WAIT_MODULES = ("wait_for_static_pod", "wait_for_kubelet")
ACCOUNT_MODULES = ("user", "group")
# their own exec: rc and output are registered
COMMAND_MODULES = ("command", "shell", "etcd_snapshot")
_LOOP_RUNS = itertools.count(1)            # tells two runs of one looped task apart
_LOOP_ITEM = "_harden_loop_item"            # where a loop's current item registers its result
SERVICE_MODULES = ("service", "systemd", "systemd_service")


class TaskPlanner:
    """Each task of the play, from its conditions to its queued changes."""

    def tasks(self) -> list[Task]:
        return [t for t in self.play.tasks
                if task_selected(t, self.play, self.runner.options.tags,
                                 self.runner.options.skip_tags)
                and id(t) not in self.runner.left_out]

    @staticmethod
    def args(task: Task, variables: dict) -> dict:
        return get_module(task.module).validate(render_value(task.args, variables, task.where),
                                                *task.where)

    def run_tasks(self) -> None:
        """The play's tasks in order. A failure inside a block with rescue/always, or of an
        ignore_errors task, is handled here (harden.apply.block_flow); any other failure ends
        the host. Such tasks are written in their own batch, so a write failure belongs to
        the task (or block section) that caused it."""
        flow, last = BlockFlow(), None
        for task in self.tasks():
            if self.abort.is_set():
                raise HostFailed("stopped: another host failed and the play has "
                                 "any_errors_fatal")
            if not flow.runs(task):
                continue
            if last is not None and _own_batch(last, task):
                self._attempt(flow, last, self.flush)
                if not flow.runs(task):
                    continue
            self._attempt(flow, task, lambda: self._run_alone(task))
            last = task
        if last is not None and not self._rides_with_commit(flow, last):
            self._attempt(flow, last, self.flush)
            self.flush()
        if flow.uncaught is not None:
            raise flow.uncaught

    def _rides_with_commit(self, flow: BlockFlow, last: Task) -> bool:
        """Whether the play's last write batch can wait for the commit and go to the node in
        its exec (HostOutcome.commit): one exec fewer per host and play. Only when nothing
        has to happen between the two: no handler notified, no manifest to wait for, and a
        failure of the batch that fails the host (no block, ignore_errors or
        any_errors_fatal of its own to honour)."""
        if self.check or flow.uncaught is not None or self.notified or self.unverified \
                or last.blocks or last.ignore_errors or last.any_errors_fatal:
            return False
        changes = [c for item in self.pending for c in item.changes]
        return bool(changes) and not any(
            c.path and is_manifest(c.path) and c.rewrites for c in changes)

    def _run_alone(self, task: Task) -> None:
        if task.module == "meta":
            self.run_meta(task)
            return
        self.run_task(task)
        if task.ignore_errors:
            self.flush()

    def ignoring(self, task: Task) -> bool:
        """ignore_errors, a template judged with the task's variables (an error in it counts
        as not ignoring: the failure stands)."""
        value = task.ignore_errors
        if not isinstance(value, str):
            return bool(value)
        try:
            judged = evaluate(value, self.base_vars(task=task), task.where)
        except InputError:
            return False
        if isinstance(judged, str):
            return judged.strip().lower() in ("true", "yes", "on", "1", "y")
        return bool(judged)

    def _attempt(self, flow: BlockFlow, task: Task, step) -> None:
        """Run a step of `task`; a failure is ignored (ignore_errors), rescued, left to the
        `always` tasks still to run, or raised: the host fails and is rolled back."""
        try:
            step()
        except HostFailed as exc:
            self.pending = []
            if task.any_errors_fatal:
                self.abort.set()
            if self.ignoring(task):
                self._after_caught_failure()
                return
            if flow.fail(task, exc):
                self.runner.rescued(self.name, failed_counted=self.failed_line)
                self.runner.register(self.name, "ansible_failed_task", {"name": task.name})
                self.runner.register(self.name, "ansible_failed_result",
                                     {"failed": True, "msg": str(exc)})
                self._after_caught_failure()
                return
            if not flow.has_always(task):
                raise
            self._after_caught_failure(keep_line=True)

    def _after_caught_failure(self, keep_line: bool = False) -> None:
        """The host goes on after a failure: a write that failed half-way leaves the node
        unlike the facts planned on, so they are gathered again (what was written stays
        backed up for a later rollback)."""
        self.failed_line = self.failed_line and keep_line
        if self.write_failed:
            self.write_failed = False
            self.regather()

    def run_meta(self, task: Task) -> None:
        """`meta: flush_handlers`: the handlers notified so far run now, and only a later
        notification runs them again; like Ansible, a meta task has no line of its own."""
        action = self.args(task, self.base_vars(task=task))["free_form"]
        if action == "flush_handlers":
            self.run_handlers()
            self.notified.clear()

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
            found = loops.items(*task.loop, variables, task.where, task.module)
        except (TaskFailed, InputError) as exc:
            self.flush()
            self.done(TaskResult(self.name, self.play.name, task.name, "failed", handler=handler,
                                 no_log=task.no_log, ignore_errors=self.ignoring(task)),
                      "failed", str(exc))
            raise self._task_failed(task, exc) from None
        if not found:                     # as Ansible: the task shows as skipped
            self.done(TaskResult(self.name, self.play.name, task.name, "skipped",
                                 handler=handler, no_log=task.no_log), "skipped", "no items")
            if task.register:
                self.runner.register(self.name, task.register, {
                    "results": [], "changed": False, "failed": False, "skipped": True,
                    "skipped_reason": "No items in the list"})
            return
        results, key = [], f"{id(task)}#{next(_LOOP_RUNS)}"
        first_failure: HostFailed | None = None
        for index, item in enumerate(found):
            extra = loops.item_vars(task.loop_control, item, index)
            shown = loops.label(task.loop_control, item, {**variables, **extra}, task.where)
            one = replace(task, name=f"{task.name} (item={shown})", loop=None, loop_vars=extra,
                          register=_LOOP_ITEM if task.register else None, loop_key=key)
            self.runner.register(self.name, _LOOP_ITEM, {"changed": False, "skipped": True})
            try:
                self._run_task(one, handler)
            except HostFailed as exc:
                if self.write_failed:        # the node is unlike the facts: stop here
                    raise
                first_failure = first_failure or exc
            results.append({**self.registered.get(_LOOP_ITEM, {}), "item": item})
        self.registered.pop(_LOOP_ITEM, None)
        if task.register:
            self.runner.register(self.name, task.register, loops.aggregate(results))
        if first_failure is not None:        # as Ansible: every item ran, then the task fails
            raise first_failure

    def _run_task(self, task: Task, handler: bool) -> None:
        result = TaskResult(self.name, self.play.name, task.name, "ok", handler=handler,
                            no_log=task.no_log, ignore_errors=self.ignoring(task),
                            loop=task.loop_key)
        result.started = time.monotonic()
        variables = self.base_vars(task=task)
        result.task = shown_name(task.name, variables)
        if task.run_once and self.name != self.batch[0]:
            return self.done(result, "skipped", "run_once: runs on " + self.batch[0])
        self._step(task.name)
        module = get_module(task.module)
        try:
            if not all(evaluate(cond, variables, task.where) for cond in task.when):
                if task.register:         # as Ansible: a skipped result, not nothing
                    self.runner.register(self.name, task.register, {
                        "changed": False, "failed": False, "skipped": True,
                        "skip_reason": "Conditional result was False"})
                return self.done(result, "skipped")
            args = self.home_paths(task, module, self.args(task, variables), variables)
            if task.module == "include_vars":
                return self._include_vars(task, module, args, variables, result)
            changes, found = self._plan_judged(task, module, args, variables)
            result.message = module.report(args, variables) or str(found.get("msg") or "")
        except (TaskFailed, InputError) as exc:
            self.flush()
            self._register_failure(task, {"msg": str(exc)})
            self.done(result, "failed", str(exc))
            raise self._task_failed(task, exc) from None
        if self.leaves(task, module):
            for change in changes:
                change.record_in(self.facts)
            if not self.writes(task, module):
                self.state.unwritten.extend(changes)
        if task.no_log or any(c.secret for c in changes):
            self.state.secret_paths.update(c.path for c in changes if c.path)
        if self.runner.options.diff and not task.no_log:
            result.diff = "".join(c.diff for c in changes)
        if task.module in COMMAND_MODULES:
            return self.run_command(task, args, changes, result)
        changed = self.changed(task, counted(changes), variables, found)
        self.register(task, changed, changes, **found)
        if isinstance(found.get("ansible_facts"), dict):      # setup, package_facts, getent
            self.set_module_facts(found["ansible_facts"])
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

    def home_paths(self, task: Task, module, args: dict, variables: dict) -> dict:
        """`~user/...` node paths made absolute from the node's passwd (harden.apply.home_paths)."""
        if not home_paths.wanted(args, module.node_paths):
            return args
        passwd = self.with_facts("~", lambda: self.facts.file(home_paths.PASSWD, content=True))
        text = (passwd.content or b"").decode(errors="replace") if passwd else ""
        return home_paths.expand(args, module.node_paths, text,
                                 home_paths.runs_as(variables, self._become(task)))

    def _include_vars(self, task: Task, module, args: dict, variables: dict,
                      result: TaskResult) -> None:
        """include_vars: the files read on the controller, their variables this host's for
        the rest of the run; registered as Ansible registers it (ansible_facts, the files)."""
        loaded, files = module.loaded(args, variables)
        self.register(task, False, [], ansible_facts=loaded, ansible_included_var_files=files)
        for name, value in loaded.items():
            self.runner.register(self.name, name, value)
        return self.done(result, "ok")

    def _plan_judged(self, task: Task, module, args: dict, variables: dict):
        """The module's plan and result, judged by `failed_when` (a command is judged once it
        ran). A module error that `failed_when` clears leaves nothing to write; a plan that
        `failed_when` fails is not written either."""
        try:
            changes = self.plan(module, args, variables, task.search_dirs,
                                task.check_mode is True)
            found = self.with_facts(module.name,
                                    lambda: module.result(args, self.facts, changes))
            error = None
        except TaskFailed as exc:
            if task.failed_when is None:
                raise
            changes, found, error = [], {"msg": str(exc)}, exc
        if task.failed_when is None or task.module in COMMAND_MODULES:
            return changes, found
        outcome = {"changed": counted(changes), "failed": error is not None, **found}
        if self.failed_by(task, variables, outcome):
            raise error or TaskFailed("failed_when: the condition is true")
        return changes, found

    def set_module_facts(self, new: dict) -> None:
        """Facts a module returned join the host's `ansible_facts` for the rest of the run, as
        Ansible's do (their `ansible_` prefix dropped inside ansible_facts). A fact returned
        without that prefix is also a variable under its own name, as Ansible injects it
        (`getent_passwd`, `packages`), and stays one when a later module returns facts."""
        current = self.runner.host_facts(self.name)
        known = dict(current.get("ansible_facts", {}))
        known.update({k[len("ansible_"):] if k.startswith("ansible_") else k: v
                      for k, v in new.items()})
        plain = {k: v for k, v in {**current, **new}.items()
                 if k != "ansible_facts" and not k.startswith("ansible_")}
        self.runner.set_host_facts(self.name, {**host_facts.as_variables(known), **plain})

    def failed_by(self, task: Task, variables: dict, result: dict) -> bool:
        """`failed_when`, seeing the task's result under its `register` name."""
        scope = self.base_vars({task.register: result}, task) if task.register else variables
        return all(evaluate(cond, scope, task.where) for cond in task.failed_when)

    def _register_failure(self, task: Task, value: dict) -> None:
        """A failed task registers its result too: `when: x is failed` after ignore_errors,
        or in a rescue, reads it."""
        if task.register:
            self.runner.register(self.name, task.register,
                                 {"changed": False, "skipped": False, **value, "failed": True})

    def queue(self, task: Task, module, args: dict, changes: list[Change],
              result: TaskResult) -> None:
        """Add the task to the current write batch (or report it at once when nothing is
        queued and it writes nothing)."""
        writes = bool(changes) and self.writes(task, module)
        undo = [Restart(*c.undo) for c in changes if c.undo is not None] if writes else []
        if writes and task.module in SERVICE_MODULES and not undo:
            undo = [Restart("", "restart", True)]            # daemon-reload alone: repeated
        if writes and self.pending and self.pending[0].become != self._become(task):
            self.flush()                 # one exec runs under one identity
        if not writes and not self.pending:
            return self.done(result, result.status, result.message)
        self.pending.append(PendingTask(result, changes if writes else [], self._become(task),
                                        undo))
        if task.module in SERVICE_MODULES or task.module == "mount":
            self.flush()                 # a restart (a mount) is a point everything after depends on
        if writes and task.module in ACCOUNT_MODULES:
            self.flush()                 # useradd & co. pick ids: read what they wrote
            self.reread(account_facts())
        return None

    def plan(self, module, args: dict, variables: dict, search_dirs=(),
             task_check: bool = False) -> list[Change]:
        ctx = PlanContext(variables, [*search_dirs, *self.play.template_dirs],
                          self.check or task_check, self.as_found,
                          self.check and not self.as_found)
        return self.with_facts(module.name, lambda: module.plan(args, self.facts, ctx))

    def leaves(self, task: Task, module) -> bool:
        """Whether later tasks plan on what this task's changes leave (fed into the facts).
        A real run: when they are written. `check_mode: true` never leaves anything, as the
        real run never writes it. Predictive --check: every other task, so it reports what the
        real run will. --check-mode ansible: only what would really happen under
        ansible-playbook --check (a command that runs, a `check_mode: false` task), so every
        other task is judged against the node as found, as Ansible's check mode judges it."""
        if self.writes(task, module):
            return True
        if task.check_mode is True:
            return False
        return self.check and (not self.as_found or task.check_mode is False)

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
        """A command needs its own exec: its exit code and output may be registered. It is
        repeated per `until`/`retries`, judged by `failed_when` (else its exit code)."""
        self.flush()
        module = get_module(task.module)
        if not changes:
            self.register(task, False, changes, rc=0, stdout="", stderr="")
            return self.done(result, "ok", "skipped: creates exists")
        if not self.writes(task, module):
            # As Ansible's command: with creates/removes it reports the change it would make,
            # without them it cannot tell and is skipped. etcd_snapshot judges its own `path`.
            judged = task.module not in ("command", "shell") or \
                bool(args.get("creates") or args.get("removes"))
            self.register(task, judged, changes, rc=0, stdout="", stderr="",
                          skipped=not judged)
            return self.done(result, "changed" if judged else "skipped",
                             "not run in check mode")
        try:
            value, failed, why = self._command_attempts(task, changes)
            self._reread_known_writes(task, args)
            changed = not failed and self.changed(task, True, self.base_vars(task=task),
                                                  {"changed": True, **value})
        except InputError as exc:
            self.done(result, "failed", str(exc))
            raise self._task_failed(task, exc) from None
        if failed:
            self._register_failure(task, value)
            result.failed_changed = self._changed_quietly(task, value)
            self.done(result, "failed", why)
            raise HostFailed(f"task '{task.name}': {why.split(':')[0]}")
        self.register(task, changed, changes, **value)
        if changed:
            self.notify(task)
        shown = value["stdout"] if args.get("show_output") and not task.no_log else ""
        return self.done(result, "changed" if changed else "ok", shown)

    def _reread_known_writes(self, task: Task, args: dict) -> None:
        """Files the command's program is known to rewrite (pam-auth-update's common-*) are
        read again, so a later task (a lineinfile on common-account) plans on what the command
        wrote, as Ansible's modules read the node when they run."""
        paths = [] if task.delegate_to else known_writes(args)
        if paths:
            self.reread([FactRequest(FILE, path, content=True) for path in paths])

    def _changed_quietly(self, task: Task, value: dict) -> bool:
        """Whether a failed command counts as changed too (its changed_when, else yes), as
        ansible-core counts an ignored failure; a broken changed_when counts as not."""
        try:
            return self.changed(task, True, self.base_vars(task=task), {"changed": True, **value})
        except InputError:
            return False

    def _command_attempts(self, task: Task, changes: list[Change]) -> tuple[dict, bool, str]:
        """Run the command (again while `until` does not hold); the last attempt's result,
        whether it failed and why."""
        attempts = 1 + task.retries if (task.until or task.retries) else 1
        for attempt in range(1, attempts + 1):
            value = self._execute(task, changes)
            if attempts > 1:
                value["attempts"] = attempt
            variables = self.base_vars(task=task)
            failed = self.failed_by(task, variables, {"changed": True, **value}) \
                if task.failed_when is not None else value["rc"] != 0
            judged = {"changed": True, **value, "failed": failed}
            done = attempts == 1 or (self.failed_by(replace(task, failed_when=task.until),
                                                    variables, judged)
                                     if task.until else not failed)
            if done:
                break
            if attempt < attempts:
                self._step(f"{task.name}: retry {attempt}/{attempts - 1}")
                time.sleep(task.delay)
        else:
            return value, True, f"retries exhausted after {attempts} attempts"
        if not failed:
            return value, False, ""
        if task.failed_when is not None:
            return value, True, "failed_when: the condition is true"
        hint = "" if task.delegate_to else denied_hint(self.session, value["stderr"],
                                                         self._become(task))
        return value, True, f"exit {value['rc']}: {hint}{value['stderr'].strip()[-300:]}"

    def _execute(self, task: Task, changes: list[Change]) -> dict:
        """One run of a command: on the node, or on the controller for `delegate_to:
        localhost` (as the controller's user, in its current directory: nothing there is
        backed up, as for any command)."""
        script = self._exports(task) + apply_script(changes, self.runner.run_id,
                                                    self.runner.options.backup_root)
        if not task.delegate_to and any(c.script.startswith("hb_backup ") for c in changes):
            self.state.wrote_as(self._become(task))    # files it rewrites were backed up
        if task.delegate_to:
            done = subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True,
                                  timeout=3600, check=False)
            rc, out, err = done.returncode, done.stdout, done.stderr
        else:
            ran = self.session.run("sh -s", become=self._become(task), stdin=script.encode())
            rc, out, err = ran.rc, ran.stdout, ran.stderr
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        return {"rc": rc, "stdout": stdout.rstrip("\n"), "stderr": stderr.rstrip("\n"),
                "stdout_lines": stdout.splitlines(), "stderr_lines": stderr.splitlines()}

    def _exports(self, task: Task) -> str:
        """`environment:` as sh exports ahead of the command's script. The script goes to the
        node on stdin, so the values (secrets, perhaps) are in no argv and in no log."""
        if not task.environment:
            return ""
        rendered = render_value(task.environment, self.base_vars(task=task), task.where)
        return "".join(f"export {name}={shlex.quote(_env_text(value))}\n"
                       for name, value in rendered.items())

    def _become(self, task: Task):
        return task.become if task.become is not None else self.play.become

    @staticmethod
    def _with(result: TaskResult, status: str) -> TaskResult:
        result.status = status
        return result

    def done(self, result: TaskResult, status: str, message: str = "") -> None:
        self.failed_line = self.failed_line or (status == "failed" and not result.ignore_errors)
        if result.started is not None:
            result.seconds = round(time.monotonic() - result.started, 4)
        result.status = status
        result.message = message
        self.runner.report(result)

    def run_handlers(self) -> None:
        for handler in self.play.handlers:
            if handler.name in self.notified:
                if self.abort.is_set():
                    raise HostFailed("stopped: another host failed (any_errors_fatal)")
                self.run_task(handler, handler=True)
        self.flush()


def shown_name(name: str, variables: dict) -> str:
    """The task's name as Ansible shows it: templated with the host's variables (an include's
    loop_var in `Harden {{ mount.path }}`), left as written when that fails."""
    if "{{" not in name:
        return name
    try:
        return str(render_string(name, variables))
    except InputError:
        return name


def counted(changes: list[Change]) -> bool:
    """Whether the planned changes make the task `changed`: an action Ansible runs without
    counting it (systemd's daemon-reload) runs here too, uncounted."""
    return any(change.counted for change in changes)


def _env_text(value) -> str:
    """An environment value as Ansible exports it: the text of its Python value."""
    return "" if value is None else str(value)


def _own_batch(last: Task, task: Task) -> bool:
    """Whether what is queued must be written before `task`: at a block section's edge and
    around an ignore_errors task, so a write failure is that task's or that section's."""
    return last.blocks != task.blocks or last.ignore_errors or task.ignore_errors
