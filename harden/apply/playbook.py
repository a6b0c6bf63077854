"""Playbooks: Ansible-shaped YAML loaded into dataclasses the runner executes.

Every mistake a user can make in a playbook is caught here, before any host is contacted, and
reported with file, line and the valid choices: an unknown play or task keyword, an unknown
module, an unknown module argument, a notify naming no handler. The YAML loader records the line
of every mapping key for that purpose.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import Any

from harden.errors import InputError
from harden.apply.yaml_lines import LocatedDict, load_yaml
from harden.apply.ansible_forms import (canonical_arguments, module_arguments,
                                       short_module_name, structure_key)
from harden.apply.modules import MODULES, get_module
from harden.apply import roles
from harden.apply import lookups
from harden.apply.loops import LOOP_CONTROL_KEYS, LOOP_KEYS, known, loop_kind

PLAY_KEYS = ("name", "hosts", "serial", "max_fail_percentage", "any_errors_fatal", "become",
             "vars", "vars_files", "vars_spec", "pre_tasks", "roles", "tasks", "post_tasks",
             "handlers", "tags", "gather_facts", "restart_group", "environment")
VAR_SPEC_KEYS = ("choices",)
TASK_KEYS = ("name", "when", "register", "notify", "tags", "run_once", "check_mode", "no_log",
             "changed_when", "failed_when", "ignore_errors", "until", "retries", "delay",
             "delegate_to", "any_errors_fatal", "become", "vars", "listen", *LOOP_KEYS,
             "loop_control", "environment")
# Keywords a block, an import/include of tasks or a role passes down to every task inside it.
INHERITED_KEYS = ("name", "when", "tags", "become", "vars", "no_log", "check_mode",
                  "ignore_errors", "any_errors_fatal", "environment")
# Modules that never touch the node: with `delegate_to: localhost` they run as they always do.
CONTROLLER_MODULES = ("debug", "set_fact", "assert", "fail", "include_vars")
# `delegate_to` names that are the controller itself.
LOCALHOST_NAMES = ("localhost", "127.0.0.1", "::1")
RETRY_MODULES = ("command", "shell")       # `until` re-runs these; others plan once from facts
INCLUDE_KEYS = ("import_tasks", "include_tasks")
ROLE_INCLUDE_KEYS = ("import_role", "include_role")
SHIPPED_TEMPLATES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "templates")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BLOCK_IDS = itertools.count(1)


# --- data model ----------------------------------------------------------------------------

@dataclass
class Task:
    """One task: a module call plus Ansible's task keywords. `args` are not yet templated."""

    name: str
    module: str
    args: dict
    path: str
    line: int
    when: list = field(default_factory=list)          # expressions, AND-ed
    register: str | None = None
    notify: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    run_once: bool = False
    check_mode: bool | None = None    # False: also runs under --check; True: never writes
    no_log: bool = False
    changed_when: list | None = None   # expressions (AND-ed) or [bool]
    become: bool | None = None
    vars: dict = field(default_factory=dict)          # task (and enclosing block/role) vars
    listen: list[str] = field(default_factory=list)   # handlers: topics they also answer to
    search_dirs: list[str] = field(default_factory=list)   # a role's templates/ and files/
    loop: tuple[str, Any] | None = None               # (loop | with_items | ..., its value)
    loop_control: dict = field(default_factory=dict)
    loop_vars: dict = field(default_factory=dict)     # at run time: this item's variables
    failed_when: list | None = None    # expressions (AND-ed) or [bool]
    ignore_errors: bool | str | None = None   # a template is judged on the host; None: false
    until: list | None = None          # command/shell: re-run until true (AND-ed)
    retries: int = 0                   # further attempts (until, or retries: until not failed)
    delay: float = 5.0
    delegate_to: str | None = None     # only the controller: 'localhost'
    any_errors_fatal: bool = False
    # Exported for the task's command on the node (play, block, task; inner keys win);
    # values are templates rendered when the task runs.
    environment: dict = field(default_factory=dict)
    loop_key: str | None = None       # at run time: which run of a looped task an item is of
    # Enclosing blocks with rescue/always, outermost first: (block id, section, has rescue,
    # has always), section being block | rescue | always (harden.apply.block_flow).
    blocks: tuple = ()

    @property
    def where(self) -> tuple[str, int]:
        return (self.path, self.line)


@dataclass(frozen=True)
class VarSpec:
    """What values a playbook variable may take (`vars_spec:`), checked with -e, play vars
    and every targeted host's inventory before any host is contacted: a typo in a phase name
    must not reach a node, nor read as some other mistake there."""

    name: str
    choices: tuple
    path: str
    line: int


@dataclass
class Play:
    name: str
    hosts: str                        # an Ansible host pattern
    path: str
    line: int
    serial: list[int | str] = field(default_factory=list)    # [] = all hosts in one batch
    max_fail_percentage: float | None = None
    any_errors_fatal: bool = False
    become: bool | None = None
    vars: dict = field(default_factory=dict)          # play vars, vars_files, roles' vars
    defaults: dict = field(default_factory=dict)      # roles' defaults: below inventory vars
    tasks: list[Task] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    restart_group: str | None = None  # adjacent plays naming the same group run as one
    vars_spec: list[VarSpec] = field(default_factory=list)
    hosts_line: int = 0               # where `hosts:` is, for errors of its pattern
    gather_facts: bool = True         # ansible_* facts in the play's one fact exec
    playbook: str = ""                # the playbook file named on the command line it came
                                      # from (imports included): the run's stop rules need it

    def select_hosts(self, inventory, limit: str | None) -> list:
        """The play's hosts within --limit; a pattern error points at the playbook's
        `hosts:` line (the pattern came from there, not from the inventory)."""
        try:
            inventory.select(self.hosts)
        except InputError as exc:
            if exc.path:
                raise
            raise InputError(f"hosts '{self.hosts}': {exc.message}", self.path,
                             self.hosts_line or self.line) from None
        if limit:
            # --limit errors are the CLI's (exit 1)
            allowed = {host.name for host in inventory.select(None, limit=limit)}
            # a limit that leaves this play no host skips it, as ansible-playbook does
            # ("skipping: no hosts matched"); one matching no host at all is an error above
            return [host for host in inventory.select(self.hosts) if host.name in allowed]
        return inventory.select(self.hosts)

    @property
    def template_dirs(self) -> list[str]:
        """Where `template`/`copy src` look: templates/ next to the playbook or its parent
        (a user's override wins), then the templates harden ships."""
        here = os.path.dirname(os.path.abspath(self.path))
        dirs = [os.path.join(here, "templates"), os.path.join(here, "files"),
                os.path.join(os.path.dirname(here), "templates"), SHIPPED_TEMPLATES]
        return list(dict.fromkeys(dirs))


@dataclass
class Playbook:
    path: str
    plays: list[Play]


# --- loading -------------------------------------------------------------------------------

def load_playbook(path: str, roles_path: list[str] | None = None) -> Playbook:
    """Load and validate a playbook (following import_playbook), or raise InputError."""
    return load_playbooks([path], roles_path)


def load_playbooks(paths: list[str], roles_path: list[str] | None = None) -> Playbook:
    """Several playbooks run one after the other as one (ansible-playbook a.yml b.yml);
    `roles_path` (ansible.cfg) is searched for roles after the playbook's own directories.
    Each play remembers its file: a failed host ends the run at the end of its file, as in
    ansible-playbook (harden.apply.runner)."""
    plays: list[Play] = []
    with roles.configured(roles_path or []):
        for path in paths:
            own = _load_plays(path, ())
            for play in own:
                play.playbook = path
            plays += own
    return Playbook(" ".join(paths), merge_restart_groups(plays))


def _load_plays(path: str, seen: tuple[str, ...]) -> list[Play]:
    real = os.path.realpath(path)
    if real in seen:
        raise InputError("import_playbook loop", path)
    data = load_yaml(path)
    if not isinstance(data, list):
        raise InputError("a playbook is a list of plays", path, getattr(data, "line", 1))
    plays: list[Play] = []
    for index, item in enumerate(data):
        line = data.item_lines[index]
        if not isinstance(item, dict):
            raise InputError("each play must be a mapping", path, line)
        if "import_playbook" in item:
            plays += _imported_plays(item, path, line, seen + (real,))
        else:
            plays.append(_play(item, path))
    return plays


def _imported_plays(item: LocatedDict, path: str, line: int, seen: tuple[str, ...]) -> list[Play]:
    """`import_playbook` with Ansible's `when` and `vars`: both apply to every imported play
    (the condition to each of its tasks)."""
    extra = set(item) - {"import_playbook", "name", "when", "vars", "tags"}
    if extra:
        raise InputError(f"import_playbook takes name, when, vars and tags, not "
                         f"{', '.join(sorted(map(str, extra)))}", path, line)
    target = os.path.join(os.path.dirname(path), str(item["import_playbook"]))
    plays = _load_plays(target, seen)
    scope = Scope(os.path.dirname(path)).within(item, path)
    for play in plays:
        play.vars = {**scope.vars, **play.vars}
        play.tags = scope.tags + play.tags
        for task in play.tasks + play.handlers:
            task.when = scope.when + task.when
    return plays


@dataclass
class Scope:
    """What enclosing blocks, includes and roles pass down to the tasks inside them."""

    base_dir: str                          # where relative import_tasks paths start
    when: list = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    become: bool | None = None
    vars: dict = field(default_factory=dict)
    no_log: bool = False
    check_mode: bool | None = None
    search_dirs: list[str] = field(default_factory=list)
    depth: int = 0
    ignore_errors: bool | str | None = None
    any_errors_fatal: bool = False
    blocks: tuple = ()
    environment: dict = field(default_factory=dict)

    def within(self, data: LocatedDict, path: str, base_dir: str | None = None,
               search_dirs: list[str] | None = None) -> Scope:
        at = data.key_lines.get
        if self.depth > 20:
            raise InputError("blocks or task includes nested more than 20 deep (a loop?)",
                             path, data.line)
        become = _opt_bool(data.get("become"), "become", path, at("become"))
        check_mode = _opt_bool(data.get("check_mode"), "check_mode", path, at("check_mode"))
        return Scope(
            base_dir=base_dir or self.base_dir,
            when=self.when + _conditions(data.get("when")),
            tags=self.tags + _strings(data.get("tags"), "tags", path, at("tags")),
            become=self.become if become is None else become,
            vars={**self.vars, **_vars(data.get("vars"), path, at("vars"))},
            no_log=self.no_log or _bool(data.get("no_log", False), "no_log", path, at("no_log")),
            check_mode=self.check_mode if check_mode is None else check_mode,
            search_dirs=(search_dirs or []) + self.search_dirs, depth=self.depth + 1,
            ignore_errors=_pick(_bool_or_template(data.get("ignore_errors"), "ignore_errors",
                                                  path, at("ignore_errors")),
                                self.ignore_errors),
            any_errors_fatal=self.any_errors_fatal or _bool(
                data.get("any_errors_fatal", False), "any_errors_fatal", path,
                at("any_errors_fatal")),
            blocks=self.blocks,
            environment={**self.environment,
                         **_environment(data.get("environment"), path, at("environment"))})

    def apply_to(self, task: Task) -> Task:
        task.when = self.when + task.when
        task.tags = list(dict.fromkeys(self.tags + task.tags))
        task.become = self.become if task.become is None else task.become
        task.vars = {**self.vars, **task.vars}
        task.no_log = task.no_log or self.no_log
        task.check_mode = self.check_mode if task.check_mode is None else task.check_mode
        task.search_dirs = self.search_dirs + task.search_dirs
        task.ignore_errors = _pick(task.ignore_errors, self.ignore_errors)
        task.any_errors_fatal = task.any_errors_fatal or self.any_errors_fatal
        task.blocks = self.blocks + task.blocks
        task.environment = {**self.environment, **task.environment}
        return task


def _unknown(kind: str, key: str, valid, path: str, line: int) -> InputError:
    return InputError(f"unknown {kind} '{key}'; valid: {', '.join(sorted(valid))}", path, line)


def _play(data: LocatedDict, path: str) -> Play:
    for key in data:
        if key not in PLAY_KEYS:
            raise _unknown("play keyword", key, PLAY_KEYS, path, data.key_lines[key])
    if "hosts" not in data:
        raise InputError("play needs 'hosts'", path, data.line)
    at = data.key_lines.get
    play = Play(
        name=str(data.get("name") or data["hosts"]), hosts=_hosts(data["hosts"], path, at("hosts")),
        path=path, line=data.line, hosts_line=at("hosts") or data.line,
        serial=_serial(data.get("serial"), path, at("serial")),
        max_fail_percentage=_percentage(data.get("max_fail_percentage"), path,
                                        at("max_fail_percentage")),
        any_errors_fatal=_bool(data.get("any_errors_fatal", False), "any_errors_fatal", path,
                               at("any_errors_fatal")),
        become=_opt_bool(data.get("become"), "become", path, at("become")),
        vars=_vars(data.get("vars"), path, at("vars")),
        tags=_strings(data.get("tags"), "tags", path, at("tags")),
        restart_group=None if data.get("restart_group") is None else str(data["restart_group"]),
        vars_spec=_vars_spec(data.get("vars_spec"), path, at("vars_spec")),
    )
    play.gather_facts = _bool(data.get("gather_facts", True), "gather_facts", path,
                              at("gather_facts"))
    for name in _strings(data.get("vars_files"), "vars_files", path, at("vars_files")):
        file_path = os.path.join(os.path.dirname(path), name)
        play.vars.update(_vars(load_yaml(file_path), file_path, 1))
    scope = Scope(os.path.dirname(os.path.abspath(path)),
                  environment=_environment(data.get("environment"), path, at("environment")))
    content = roles.RoleContent()
    play.tasks = _tasks(data.get("pre_tasks"), path, at("pre_tasks"), "pre_tasks", scope,
                        content)
    play.tasks += _play_roles(data.get("roles"), path, at("roles"), scope, content)
    play.tasks += _tasks(data.get("tasks"), path, at("tasks"), "tasks", scope, content)
    play.tasks += _tasks(data.get("post_tasks"), path, at("post_tasks"), "post_tasks", scope,
                         content)
    play.handlers = content.handlers + _tasks(data.get("handlers"), path, at("handlers"),
                                              "handlers", scope, content)
    play.defaults = content.defaults
    play.vars.update(content.vars)
    _resolve_notify(play)
    return play


def _vars_spec(value, path: str, line: int | None) -> list[VarSpec]:
    """`vars_spec: {name: {choices: [...]}}`: the valid values of enumerated variables."""
    if value is None:
        return []
    if not isinstance(value, dict):
        raise InputError("vars_spec must be a mapping of variable names to {choices: [...]}",
                         path, line)
    specs = []
    for name, spec in value.items():
        at = value.key_lines[name]
        if not _IDENTIFIER.match(str(name)):
            raise InputError(f"vars_spec: {name!r} is not a variable name", path, at)
        if not isinstance(spec, dict) or "choices" not in spec:
            raise InputError(f"vars_spec: {name} needs choices: [...]", path, at)
        for key in spec:
            if key not in VAR_SPEC_KEYS:
                raise _unknown("vars_spec key", key, VAR_SPEC_KEYS, path, spec.key_lines[key])
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise InputError(f"vars_spec: choices of {name} must be a non-empty list", path, at)
        specs.append(VarSpec(str(name), tuple(choices), path, at))
    return specs


def check_vars_spec(play: Play, hosts, extra_vars: dict) -> None:
    """InputError naming the variable, where its value came from and the valid values, when
    -e, the play's vars or a targeted host's inventory gives a value outside `vars_spec`
    (later layers win, as in templating). A value that is itself a template is rendered only
    on the host, so it is left to the playbook's own checks; an unset one to its default."""
    for spec in play.vars_spec:
        for source, value in _spec_values(spec.name, play, hosts, extra_vars):
            if isinstance(value, str) and ("{{" in value or "{%" in value):
                continue
            if value not in spec.choices:
                raise InputError(f"{spec.name}={value!r} ({source}) is not one of: "
                                 f"{', '.join(map(str, spec.choices))}", spec.path, spec.line)


def _spec_values(name: str, play: Play, hosts, extra_vars: dict):
    if name in extra_vars:
        yield "from -e", extra_vars[name]
    elif name in play.vars:
        yield f"from the vars of play '{play.name}'", play.vars[name]
    else:
        for host in hosts:
            if name in host.vars:
                yield f"from the inventory of host {host.name}", host.vars[name]


def _resolve_notify(play: Play) -> None:
    """A notify names a handler or a topic handlers `listen` to: resolved here to handler
    names, so the runner only ever sees names (and a typo fails before any host is touched)."""
    names = {h.name for h in play.handlers}
    topics: dict[str, list[str]] = {}
    for handler in play.handlers:
        for topic in handler.listen:
            topics.setdefault(topic, []).append(handler.name)
    for task in play.tasks + play.handlers:
        resolved = []
        for target in task.notify:
            if target not in names and target not in topics:
                raise InputError(f"notify '{target}' names no handler of this play; handlers: "
                                 f"{', '.join(sorted(names)) or '(none)'}"
                                 + (f"; topics: {', '.join(sorted(topics))}" if topics else ""),
                                 task.path, task.line)
            resolved += ([target] if target in names else []) + topics.get(target, [])
        task.notify = list(dict.fromkeys(resolved))


def _play_roles(items, path: str, line: int | None, scope: Scope,
                content: roles.RoleContent) -> list[Task]:
    """A play's `roles:` (names, or mappings with `role:` plus vars and task keywords)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError("'roles' must be a list of role names or mappings", path, line)
    tasks = []
    for index, item in enumerate(items):
        where = items.item_lines[index]
        if isinstance(item, str):
            item = LocatedDict(role=item)
            item.line = where
        if not isinstance(item, dict) or not (item.get("role") or item.get("name")):
            raise InputError("a role entry needs a role name", path, where)
        name = str(item.get("role") or item.get("name"))
        params = {k: v for k, v in item.items() if k not in ("role", "name", *INHERITED_KEYS)}
        inner = LocatedDict({k: v for k, v in item.items() if k in INHERITED_KEYS and k != "name"})
        inner.line, inner.key_lines = where, getattr(item, "key_lines", {})
        if params:
            inner["vars"] = {**params, **(inner.get("vars") or {})}
        tasks += _role_tasks(name, "main", path, where, scope.within(inner, path), content)
    return tasks


def _role_tasks(name: str, tasks_from: str, path: str, line: int, scope: Scope,
                content: roles.RoleContent) -> list[Task]:
    """A role's tasks (after those of its dependencies), its handlers, defaults and vars."""
    tasks = []
    resolved = roles.resolve(name, path, line)
    for role in resolved:
        target = role is resolved[-1]
        first_time = role.path not in content.loaded
        content.loaded.add(role.path)
        if not target and not first_time:
            continue                    # a dependency already loaded once (Ansible's default)
        role_scope = Scope(role.tasks_dir, scope.when, scope.tags, scope.become,
                           {**scope.vars, **role.magic_vars}, scope.no_log, scope.check_mode,
                           role.search_dirs + scope.search_dirs, scope.depth + 1,
                           environment=scope.environment)
        if first_time:
            content.defaults.update(_vars(role.read("defaults"), role.file("defaults") or path,
                                          1))
            content.vars.update(_vars(role.read("vars"), role.file("vars") or path, 1))
            handlers = role.read("handlers")
            if handlers is not None:
                content.handlers += _tasks(handlers, role.file("handlers"), 1, "handlers",
                                           role_scope, content)
        entry = tasks_from if target else "main"
        found = role.read("tasks", entry)
        if found is None and target and entry != "main":
            raise InputError(f"role '{name}' has no tasks/{entry}.yml", path, line)
        if found is not None:
            tasks += _tasks(found, role.file("tasks", entry), 1, "tasks", role_scope, content)
    return tasks


def _tasks(items, path: str, line: int | None, what: str, scope: Scope,
           content: roles.RoleContent) -> list[Task]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(f"'{what}' must be a list of tasks", path, line)
    tasks: list[Task] = []
    for index, item in enumerate(items):
        where = items.item_lines[index] if hasattr(items, "item_lines") else line
        if not isinstance(item, dict):
            raise InputError("a task must be a mapping", path, where)
        tasks += _task_item(item, path, where, what, scope, content)
    return tasks


def _task_item(data: LocatedDict, path: str, line: int, what: str, scope: Scope,
               content: roles.RoleContent) -> list[Task]:
    """One entry of a task list: a task, a block, an import/include of tasks or of a role."""
    for key in list(data):
        if structure_key(key) != key:
            data = _renamed(data, key, structure_key(key))
    if "block" in data:
        return _block(data, path, line, what, scope, content)
    include = next((k for k in INCLUDE_KEYS if k in data), None)
    if include:
        looped = include == "include_tasks" and "loop" in data
        _only(data, (include, *INHERITED_KEYS, *(("loop", "loop_control") if looped else ())),
              include, path)
        target = _static_name(data[include], include, path, data.key_lines[include])
        file_path = os.path.join(scope.base_dir, target)
        if looped:
            return _looped_include(data, path, file_path, what, scope, content)
        inner = scope.within(data, path, base_dir=os.path.dirname(file_path))
        return _tasks(load_yaml(file_path), file_path, 1, what, inner, content)
    role_include = next((k for k in ROLE_INCLUDE_KEYS if k in data), None)
    if role_include:
        _only(data, (role_include, *INHERITED_KEYS), role_include, path)
        spec = data[role_include]
        at = data.key_lines[role_include]
        if not isinstance(spec, dict) or "name" not in spec:
            raise InputError(f"{role_include} needs a mapping with the role's name", path, at)
        name = _static_name(spec["name"], role_include, path, at)
        tasks_from = _static_name(spec.get("tasks_from", "main"), role_include, path, at)
        return _role_tasks(name, tasks_from, path, at, scope.within(data, path), content)
    return [scope.apply_to(_task(data, path, line))]


def _looped_include(data: LocatedDict, path: str, file_path: str, what: str, scope: Scope,
                    content: roles.RoleContent) -> list[Task]:
    """`include_tasks` with `loop` over a list written in the playbook (dev-sec's
    minimize_access.yml includes its mount tasks once per mount point): the file's tasks once
    per item, in Ansible's order (all of item 1's tasks, then item 2's), the item in the
    `loop_control.loop_var` variable (default `item`, `index_var` too). The items' values may
    use templates (rendered per host as task vars); a templated list is refused: harden loads
    every task before it contacts a host."""
    items, at = data["loop"], data.key_lines["loop"]
    if not isinstance(items, list):
        raise InputError("include_tasks: a loop over a templated list is not supported (harden "
                         "loads every task before it contacts a host); write the list in the "
                         "playbook", path, at)
    control = data.get("loop_control") or {}
    unknown = set(control) - {"loop_var", "index_var", "label"} if isinstance(control, dict) \
        else {"(not a mapping)"}
    if unknown:
        raise InputError(f"include_tasks: loop_control {', '.join(sorted(unknown))} is not "
                         "supported; valid: index_var, label, loop_var", path,
                         data.key_lines.get("loop_control", at))
    loop_var, index_var = control.get("loop_var", "item"), control.get("index_var")
    outer = LocatedDict({k: v for k, v in data.items() if k not in ("loop", "loop_control")})
    outer.line, outer.key_lines = data.line, data.key_lines
    tasks: list[Task] = []
    for index, item in enumerate(items):
        item_vars = {loop_var: item, **({index_var: index} if index_var else {})}
        inner = scope.within(outer, path, base_dir=os.path.dirname(file_path))
        inner = replace(inner, vars={**inner.vars, **item_vars})
        tasks += _tasks(load_yaml(file_path), file_path, 1, what, inner, content)
    return tasks


def _block(data: LocatedDict, path: str, line: int, what: str, scope: Scope,
           content: roles.RoleContent) -> list[Task]:
    """A block's tasks inherit its keywords. With `rescue`/`always` its tasks are marked with
    the block and the section they are in; harden.apply.block_flow decides at run time which
    of them run. A rescued failure keeps what the run wrote backed up (a later failure of the
    host, or `harden rollback`, still undoes it); an unrescued one still rolls the host back,
    after its `always` tasks ran."""
    _only(data, ("block", "rescue", "always", *INHERITED_KEYS), "block", path)
    inner = scope.within(data, path)
    if "rescue" not in data and "always" not in data:
        return _tasks(data["block"], path, data.key_lines["block"], what, inner, content)
    if what == "handlers":
        raise InputError("a handler cannot be a block with rescue or always", path, line)
    block_id = f"{path}:{line}#{next(_BLOCK_IDS)}"     # an included file may hold it twice
    marks = ("rescue" in data, "always" in data)
    tasks: list[Task] = []
    for section in ("block", "rescue", "always"):
        if section in data:
            within = replace(inner, blocks=inner.blocks + ((block_id, section, *marks),))
            tasks += _tasks(data[section], path, data.key_lines[section], what, within,
                            content)
    return tasks


def _only(data: LocatedDict, allowed, what: str, path: str) -> None:
    for key in data:
        if key not in allowed:
            raise InputError(f"'{key}' cannot be used with {what}; valid: "
                             f"{', '.join(sorted(allowed))}", path, data.key_lines[key])


def _static_name(value, what: str, path: str, line: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what} needs a file or role name", path, line)
    if "{{" in value or "{%" in value:
        raise InputError(f"{what}: a templated name ({value!r}) is not supported: harden "
                         "loads every task before it contacts a host", path, line)
    return value


def _task(data, path: str, line: int) -> Task:
    if not isinstance(data, dict):
        raise InputError("a task must be a mapping", path, line)
    for key in list(data):
        short = short_module_name(key, MODULES) if isinstance(key, str) else key
        if short != key:
            data = _renamed(data, key, short)
    modules = [k for k in data if k not in TASK_KEYS and k != "args" and loop_kind(k) is None]
    for key in modules:
        if get_module(key) is None:
            raise InputError(f"unknown module or task keyword '{key}'; modules: "
                             f"{', '.join(sorted(MODULES))}; task keywords: "
                             f"{', '.join(sorted(TASK_KEYS))}", path, data.key_lines[key])
    if len(modules) != 1:
        raise InputError("a task needs exactly one module" +
                         (f", got {', '.join(modules)}" if modules else ""), path, data.line)
    module_name = modules[0]
    module_line = data.key_lines[module_name]
    args = canonical_arguments(module_name, _with_args_keyword(
        data, module_arguments(module_name, data[module_name], path, module_line), path))
    module = get_module(module_name)
    args = module.validate(args, path, module_line, rendered=False)
    at = data.key_lines.get
    register = data.get("register")
    if register is not None and not _IDENTIFIER.match(str(register)):
        raise InputError(f"register needs a variable name, got {register!r}", path,
                         at("register"))
    changed_when = data.get("changed_when")
    return Task(
        name=str(data.get("name") or module_name), module=module_name, args=args, path=path,
        line=module_line,
        when=_conditions(data.get("when")),
        register=register,
        notify=_strings(data.get("notify"), "notify", path, at("notify")),
        tags=_strings(data.get("tags"), "tags", path, at("tags")),
        run_once=_bool(data.get("run_once", False), "run_once", path, at("run_once")),
        check_mode=_opt_bool(data.get("check_mode"), "check_mode", path, at("check_mode")),
        no_log=_bool(data.get("no_log", False), "no_log", path, at("no_log")),
        changed_when=None if changed_when is None else _conditions(changed_when),
        become=_opt_bool(data.get("become"), "become", path, at("become")),
        vars=_vars(data.get("vars"), path, at("vars")),
        listen=_strings(data.get("listen"), "listen", path, at("listen")),
        loop=_loop(data, path),
        environment=_environment(data.get("environment"), path, at("environment")),
        loop_control=_loop_control(data.get("loop_control"), path, at("loop_control")),
        failed_when=None if data.get("failed_when") is None else _conditions(
            data["failed_when"]),
        ignore_errors=_bool_or_template(data.get("ignore_errors"), "ignore_errors", path,
                                        at("ignore_errors")),
        any_errors_fatal=_bool(data.get("any_errors_fatal", False), "any_errors_fatal", path,
                               at("any_errors_fatal")),
        **_retries(data, module_name, path),
        delegate_to=_delegate_to(data, module_name, path),
    )


def _retries(data: LocatedDict, module: str, path: str) -> dict:
    """`until`/`retries`/`delay` as ansible-core counts them: the first attempt plus
    `retries` (3 when only `until` is given); `retries` alone repeats until the task does not
    fail. Only a command is re-run: other modules plan once from the facts gathered for the
    play, so repeating them would judge the same facts again."""
    at = data.key_lines.get
    keys = [k for k in ("until", "retries", "delay") if k in data]
    if not keys:
        return {}
    if module not in RETRY_MODULES:
        raise InputError(f"{keys[0]} is supported on command and shell only, not {module}: "
                         "harden plans other modules once from the facts it gathered",
                         path, at(keys[0]))
    out: dict = {"until": _conditions(data["until"]) if "until" in data else None}
    if "until" not in data and "retries" not in data:
        return {}                          # a delay alone repeats nothing, as in Ansible
    out["retries"] = 3
    for key in ("retries", "delay"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                    or (key == "retries" and not isinstance(value, int)):
                unit = "tries" if key == "retries" else "seconds"
                raise InputError(f"{key} must be a number of {unit} (0 or more), got "
                                 f"{value!r}", path, at(key))
            out[key] = value
    return out


def _delegate_to(data: LocatedDict, module: str, path: str) -> str | None:
    """Only the controller is a delegation target: a command or shell task then runs there,
    and modules that never touch a node run as always. Another inventory host would need its
    own facts, lock and rollback inside this host's transaction."""
    if "delegate_to" not in data:
        return None
    value, line = data["delegate_to"], data.key_lines["delegate_to"]
    if str(value) not in LOCALHOST_NAMES:
        raise InputError(f"delegate_to: only localhost (the controller) is supported, got "
                         f"{value!r}", path, line)
    if module not in RETRY_MODULES + CONTROLLER_MODULES:
        raise InputError(f"delegate_to: localhost runs command and shell on the controller "
                         f"(and {', '.join(CONTROLLER_MODULES)} as always); {module} "
                         "writes a node's files under harden's backups and is not delegated",
                         path, line)
    return "localhost"


def _with_args_keyword(data: LocatedDict, args, path: str):
    """Ansible's `args:` task keyword: more arguments of the module (the module's own
    mapping wins on a clash)."""
    extra = data.get("args")
    if extra is None:
        return args
    if not isinstance(extra, dict):
        raise InputError("args must be a mapping of module arguments", path,
                         data.key_lines["args"])
    merged = LocatedDict({**extra, **(args or {})}.items())
    merged.line = getattr(args, "line", data.key_lines["args"])
    merged.key_lines = {**getattr(extra, "key_lines", {}), **getattr(args, "key_lines", {})}
    return merged


def _loop(data: LocatedDict, path: str) -> tuple[str, Any] | None:
    """`loop`, `with_items`/`with_list`/`with_dict` or any `with_<lookup>` harden has."""
    kinds = [k for k in data if loop_kind(k) is not None]
    if len(kinds) > 1:
        raise InputError(f"a task takes one loop, got {', '.join(kinds)}", path,
                         data.key_lines[kinds[1]])
    if not kinds:
        return None
    kind = loop_kind(kinds[0])
    if not known(kind):
        raise InputError(f"{kinds[0]}: no lookup named {kinds[0][len('with_'):]!r}; with_<lookup> "
                         f"takes: {', '.join(sorted(lookups.LOOKUPS))}", path,
                         data.key_lines[kinds[0]])
    return (kind, data[kinds[0]])


def _environment(value, path: str, line: int | None) -> dict:
    """`environment:` a mapping of variable names to values (or a list of them, merged in
    order, as Ansible takes it); values may be templates."""
    if value is None:
        return {}
    items = value if isinstance(value, list) else [value]
    out: dict = {}
    for item in items:
        if not isinstance(item, dict):
            raise InputError("environment must be a mapping of variable names to values "
                             "(or a list of such mappings)", path, line)
        for key, val in item.items():
            if not isinstance(key, str) or not _IDENTIFIER.match(key):
                raise InputError(f"environment: {key!r} is not an environment variable name",
                                 path, getattr(item, "key_lines", {}).get(key, line))
            out[key] = val
    return out


def _loop_control(value, path: str, line: int | None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("loop_control must be a mapping", path, line)
    for key in value:
        if key not in LOOP_CONTROL_KEYS:
            raise _unknown("loop_control key", key, LOOP_CONTROL_KEYS, path,
                           getattr(value, "key_lines", {}).get(key, line))
    return dict(value)


def _renamed(data: LocatedDict, old: str, new: str) -> LocatedDict:
    """A copy of a task mapping with one key renamed (its line kept)."""
    out = LocatedDict((new if k == old else k, v) for k, v in data.items())
    out.line = data.line
    out.key_lines = {(new if k == old else k): v for k, v in data.key_lines.items()}
    return out


def _conditions(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _hosts(value, path: str, line: int | None) -> str:
    if isinstance(value, list):
        value = ":".join(map(str, value))
    if not isinstance(value, str) or not value.strip():
        raise InputError("hosts must be a pattern string or a list of patterns", path, line)
    return value


def _strings(value, what: str, path: str, line: int | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
        return [str(v) for v in value]
    raise InputError(f"{what} must be a string or a list of strings", path, line)


def _bool(value, what: str, path: str, line: int | None) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{what} must be true or false, got {value!r}", path, line)
    return value


def _bool_or_template(value, what: str, path: str, line: int | None) -> bool | str | None:
    """A bool, or (as Ansible allows for some keywords) a template judged on the host:
    `ignore_errors: "{{ ansible_check_mode }}"`."""
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return value
    return _opt_bool(value, what, path, line)


def _pick(own, inherited):
    """A task's own keyword value wins over what its block or include passes down."""
    return inherited if own is None else own


def _opt_bool(value, what: str, path: str, line: int | None) -> bool | None:
    return None if value is None else _bool(value, what, path, line)


def _vars(value, path: str, line: int | None) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError("vars must be a mapping", path, line)
    for key in value:
        if not isinstance(key, str) or not _IDENTIFIER.match(key):
            raise InputError(f"variable name {key!r} is not an identifier", path,
                             getattr(value, "key_lines", {}).get(key, line))
    return dict(value)


_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _serial(value, path: str, line: int | None) -> list[int | str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[int | str] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool) and item > 0:
            out.append(item)
        elif isinstance(item, str) and _PERCENT.match(item) and float(
                _PERCENT.match(item).group(1)) > 0:
            out.append(item.strip())
        elif isinstance(item, str) and item.isdigit() and int(item) > 0:
            out.append(int(item))
        else:
            raise InputError(f"serial: {item!r} is not a positive number or percentage "
                             "(e.g. 1, \"30%\", or a list [1, \"50%\"])", path, line)
    return out


def _percentage(value, path: str, line: int | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
        raise InputError(f"max_fail_percentage must be a number from 0 to 100, got {value!r}",
                         path, line)
    return float(value)


# --- helpers the runner uses ---------------------------------------------------------------

def serial_batches(serial: list[int | str], host_count: int) -> list[int]:
    """Batch sizes over `host_count` hosts, Ansible style: each entry in turn, the last one
    repeated; a percentage is of all hosts, rounded down, at least 1."""
    if not serial:
        return [host_count] if host_count else []
    sizes, remaining, index = [], host_count, 0
    while remaining > 0:
        item = serial[min(index, len(serial) - 1)]
        if isinstance(item, str):
            size = max(1, math.floor(host_count * float(_PERCENT.match(item).group(1)) / 100))
        else:
            size = item
        sizes.append(min(size, remaining))
        remaining -= sizes[-1]
        index += 1
    return sizes


def task_selected(task: Task, play: Play, only_tags: list[str] | None,
                  skip_tags: list[str] | None = None) -> bool:
    """Ansible's tag rules. `-t TAGS`: a task runs when it (or its play) carries one of them,
    or 'always'. `--skip-tags`: a task carrying one of those never runs ('always' included).
    A task tagged 'never' runs only when one of its tags is asked for by name."""
    tags = set(task.tags) | set(play.tags)
    if skip_tags and tags & set(skip_tags):
        return False
    if not only_tags:
        return "never" not in tags
    if "never" in tags and not (tags - {"never"}) & set(only_tags) and "never" not in only_tags:
        return False
    return "always" in tags or bool(tags & set(only_tags)) or "all" in only_tags


def tasks_before(playbook: Playbook, name: str | None, only_tags=None, skip_tags=None) -> set[int]:
    """--start-at-task: the ids of the selected tasks before the first one whose name
    matches (a glob, as Ansible's; a role's task also matches as `role : name`), which the
    run leaves out. InputError when none matches, before any host is contacted."""
    if not name:
        return set()
    before: set[int] = set()
    for play in playbook.plays:
        for task in play.tasks:
            if not task_selected(task, play, only_tags, skip_tags):
                continue
            if fnmatch.fnmatchcase(task.name, name) or task.name == name:
                return before
            before.add(id(task))
    raise InputError(f"--start-at-task: no task named {name!r} in {playbook.path} (after tag "
                     "selection)")


# --- restart groups ------------------------------------------------------------------------

# Play settings that must agree for plays to run as one.
_GROUP_SAME = ("hosts", "serial", "max_fail_percentage", "any_errors_fatal", "become")


def merge_restart_groups(plays: list[Play]) -> list[Play]:
    """Plays that follow one another and name the same `restart_group` run as ONE play: one
    fact gather, one write per host, each static pod restarted and waited for once (site.yml's
    cis-control-plane, audit and pod-security would otherwise restart kube-apiserver three
    times per control plane). Tasks keep their own names, tags and results; a failure rolls
    back the host's part of the whole group. Standalone, a play is unchanged."""
    out: list[Play] = []
    for play in plays:
        last = out[-1] if out else None
        if play.restart_group and last is not None and last.restart_group == play.restart_group:
            out[-1] = _merged(last, play)
        else:
            out.append(play)
    return out


def _merged(first: Play, second: Play) -> Play:
    for key in _GROUP_SAME:
        if getattr(first, key) != getattr(second, key):
            raise InputError(f"restart_group '{second.restart_group}': {key} differs from the "
                             f"play before it ({first.name}, {first.path}:{first.line}); plays "
                             f"run as one must agree on {', '.join(_GROUP_SAME)}",
                             second.path, second.line)
    if first.template_dirs != second.template_dirs:
        raise InputError(f"restart_group '{second.restart_group}': the play before it "
                         f"({first.path}) finds templates elsewhere", second.path, second.line)
    clash = sorted(k for k in set(first.vars) & set(second.vars)
                   if first.vars[k] != second.vars[k])
    if clash:
        raise InputError(f"restart_group '{second.restart_group}': vars {', '.join(clash)} differ "
                         f"from the play before it ({first.path}:{first.line})",
                         second.path, second.line)
    handlers = {h.name: h for h in first.handlers}
    for handler in second.handlers:
        known = handlers.get(handler.name)
        if known is not None and (known.module, known.args) != (handler.module, handler.args):
            raise InputError(f"restart_group '{second.restart_group}': handler "
                             f"'{handler.name}' differs from the one at {known.path}:{known.line}",
                             handler.path, handler.line)
        handlers.setdefault(handler.name, handler)
    return replace(
        first, name=f"{first.name} + {second.name}", vars={**first.vars, **second.vars},
        tasks=_with_play_tags(first) + _with_play_tags(second), tags=[],
        handlers=list(handlers.values()), defaults={**first.defaults, **second.defaults},
        vars_spec=first.vars_spec + second.vars_spec,
        gather_facts=first.gather_facts or second.gather_facts,
        # a group reaching into the next playbook file belongs to it: after a failed host the
        # run stops before the whole group (doing less), never inside it
        playbook=second.playbook)


def _with_play_tags(play: Play) -> list[Task]:
    """The play's tags moved onto its tasks, so -t still selects what it selected."""
    if not play.tags:
        return list(play.tasks)
    return [replace(t, tags=list(dict.fromkeys([*play.tags, *t.tags]))) for t in play.tasks]
