"""Planning and queueing one host's tasks: conditions, arguments, plans fed back into the facts,
registered results, notifications, commands, handlers. A mixin of harden.apply.runner.HostPlay;
the queued changes go to the node through harden.apply.node_writes."""

from __future__ import annotations

from dataclasses import replace

from harden.apply import loops
from harden.apply.events import TaskResult
from harden.apply.host_state import HostFailed, PendingTask, denied_hint
from harden.apply.modules import get_module
from harden.apply.modules.base import Change, PlanContext, TaskFailed, apply_script
from harden.apply.playbook import Task, task_selected
from harden.apply.rollback import Restart
from harden.apply.templating import evaluate, render_value
from harden.errors import InputError

WAIT_MODULES = ("wait_for_static_pod", "wait_for_kubelet")
# their own exec: rc and output are registered
COMMAND_MODULES = ("command", "shell", "etcd_snapshot")
_LOOP_ITEM = "_harden_loop_item"            # where a loop's current item registers its result
_SERVICE_VERBS = {"restarted": "restart", "reloaded": "reload"}


class TaskPlanner:
    """Each task of the play, from its conditions to its queued changes."""

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
            result.message = module.report(args, variables) or str(found.get("msg") or "")
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
        self.pending.append(PendingTask(result, changes if writes else [], self._become(task),
                                     restart))
        if task.module == "service":
            self.flush()                 # a restart is a point everything after depends on
        return None

    def plan(self, module, args: dict, variables: dict, search_dirs=()) -> list[Change]:
        ctx = PlanContext(variables, [*search_dirs, *self.play.template_dirs], self.check)
        return self.with_facts(module.name, lambda: module.plan(args, self.facts, ctx))

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
            hint = denied_hint(self.session, stderr, self._become(task))
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
        shown = value["stdout"] if args.get("show_output") and not task.no_log else ""
        return self.done(result, "changed" if changed else "ok", shown)

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

    def run_handlers(self) -> None:
        for handler in self.play.handlers:
            if handler.name in self.notified:
                if self.abort.is_set():
                    raise HostFailed("stopped: another host failed (any_errors_fatal)")
                self.run_task(handler, handler=True)
        self.flush()
