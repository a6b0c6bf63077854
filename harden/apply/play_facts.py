"""Facts for one host's part of a play: the task variables, the one fact-gathering exec, facts
fetched on demand, and `hostvars`. A mixin of harden.apply.runner.HostPlay."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import replace

from harden.apply import home_paths, host_facts, loops
from harden.apply.facts import (FILE, FactNotGathered, FactRequest, build_script, merge_requests,
                                parse_output)
from harden.apply.host_state import HostFailed
from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed
from harden.apply.playbook import Task
from harden.apply.templating import Untemplated, layered_vars
from harden.errors import HardenError
from harden.node import markers

MAX_FACT_ROUNDS = 5


def search_path(task: Task, playbook: str) -> list[str]:
    """Where a task's lookups and include_vars look, as ansible-core's `ansible_search_path`:
    the enclosing roles (innermost first), the task file's directory, the playbook's."""
    roles = [os.path.dirname(d) for d in task.search_dirs]
    paths = list(dict.fromkeys([*roles, os.path.dirname(os.path.abspath(task.path))]))
    base = os.path.dirname(os.path.abspath(playbook))
    return paths if base in paths else [*paths, base]


class HostVars(Mapping):
    """`hostvars[host]`: built on access, so a task pays only for the hosts it reads."""

    def __init__(self, runner):
        self._runner = runner

    def __getitem__(self, host: str) -> dict:
        if host not in self._runner.inventory.hosts:
            raise KeyError(host)
        return self._runner.hostvars(host)

    def __iter__(self):
        return iter(self._runner.inventory.hosts)

    def __len__(self) -> int:
        return len(self._runner.inventory.hosts)


class PlayFacts:
    """Gathering and layering what a host's tasks read."""

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
                 "harden_run_id": self.runner.run_id,
                 "ansible_run_tags": list(self.runner.options.tags or ["all"]),
                 "ansible_skip_tags": list(self.runner.options.skip_tags or []),
                 "playbook_dir": os.path.dirname(os.path.abspath(self.play.path))}
        if task is not None:
            magic["ansible_search_path"] = search_path(task, self.play.path)
        return layered_vars(self.play.defaults, self.host.vars, Untemplated(magic),
                            Untemplated({"ansible_facts": {}, **self.runner.host_facts(self.name)}),
                            self.play.vars, task.vars if task else None,
                            Untemplated(task.loop_vars) if task else None,
                            Untemplated({**self.registered, **(just_registered or {})}),
                            extra_vars=self.runner.options.extra_vars)

    def gather_script(self) -> tuple[list, str]:
        """The play's fact requests and the one script answering them: every fact the play's
        tasks and handlers name, plus the process list (to tell a restarted pod from the old
        one) and runs left unfinished on this node."""
        requests = []
        variables = self.base_vars()
        for task in self.tasks() + self.play.handlers:
            for scope in self._fact_scopes(task, variables):
                try:
                    args = self.args(task, scope)
                except HardenError:
                    continue    # depends on a registered result: gathered when it plans
                module = get_module(task.module)
                if home_paths.wanted(args, module.node_paths):      # its paths need passwd first
                    requests.append(FactRequest(FILE, home_paths.PASSWD, content=True))
                    continue
                requests += module.facts_needed(args)
        requests = merge_requests(requests)
        backups, journals = self.runner.options.backup_root, self.runner.options.journal_root
        script = (host_facts.SCRIPT if self.play.gather_facts else "") + \
            build_script(requests) + (
            f"printf '%s\\n' {markers.PS}\nps -ww -eo pid=,args= 2>/dev/null || true\n"
            f"printf '%s\\n' {markers.PS}-unfinished\n"
            f"for d in {shlex.quote(backups)}/*/; do [ -f \"$d/index\" ] || continue; "
            f"r=${{d%/}}; r=${{r##*/}}; [ -f {shlex.quote(journals)}/\"$r\".json ] || "
            "echo \"$r\"; done; :\n")
        return requests, script

    def gather(self) -> None:
        """One exec for the play's facts (gather_script), or none when the preflight already
        gathered them with the node lock (harden.apply.preflight)."""
        prefetched = self.runner.prefetched(self.name, self.play)
        if prefetched is not None:
            requests, stdout = prefetched
        else:
            requests, script = self.gather_script()
            result = self.session.run("sh -s", become=self.play.become, stdin=script.encode())
            stdout = result.stdout.decode(errors="replace")
        self._gathered(requests, stdout)

    def _gathered(self, requests: list, stdout: str) -> None:
        facts_part, _, rest = stdout.partition(markers.PS + "\n")
        ps_part, _, unfinished = rest.partition(markers.PS + "-unfinished\n")
        try:
            self.facts = parse_output(requests, facts_part)
        except ValueError as exc:
            raise HostFailed(f"gathering facts: {exc}") from None
        for change in self.state.unwritten:      # planned in --check by an earlier play
            change.record_in(self.facts)
        if self.play.gather_facts:
            self.runner.set_host_facts(self.name, host_facts.as_variables(
                host_facts.parse(facts_part)))
        self.pre_run_ps = [" ".join(line.split()) for line in ps_part.splitlines()]
        for run_id in unfinished.split():
            if run_id != self.runner.run_id and run_id not in self.runner.resolved_runs \
                    and run_id not in self.state.unfinished_told:
                self.state.unfinished_told.add(run_id)
                self.runner.out.warning(self.name, f"run {run_id} did not finish on this host "
                                                   f"(interrupted?); undo it with `harden "
                                                   f"rollback {run_id}`, or accept the node as "
                                                   f"it is with `harden runs --resolve "
                                                   f"{run_id}`")

    def regather(self) -> None:
        """The play's facts again, after a write failed half-way and the host goes on
        (ignore_errors, rescue). The process list of the play's start is kept: waits judge
        pods against it."""
        before = self.pre_run_ps
        self.gather()
        self.pre_run_ps = before

    def _fact_scopes(self, task: Task, variables: dict) -> list[dict]:
        """The variables a task's arguments are rendered with: one set per loop item."""
        scope = self.base_vars(task=task) if task.vars else variables
        if task.loop is None:
            return [scope]
        try:
            found = loops.items(*task.loop, scope, task.where, task.module)
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

    def reread(self, requests) -> None:
        """Files a node-side tool just rewrote (shadow-utils for user and group), read again
        in one exec so later tasks plan on what is there now."""
        result = self.session.run("sh -s", become=self.play.become,
                                  stdin=build_script(requests).encode())
        try:
            fresh = parse_output(requests, result.stdout.decode(errors="replace"))
        except ValueError as exc:
            raise HostFailed(f"gathering facts: {exc}") from None
        for path, state in fresh.files.items():
            self.facts.set_file(path, state)

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
