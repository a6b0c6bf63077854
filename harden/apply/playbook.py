"""Playbooks: Ansible-shaped YAML loaded into dataclasses the runner executes.

Every mistake a user can make in a playbook is caught here, before any host is contacted, and
reported with file, line and the valid choices: an unknown play or task keyword, an unknown
module, an unknown module argument, a notify naming no handler. The YAML loader records the line
of every mapping key for that purpose.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from harden.errors import InputError
from harden.apply.modules import MODULES, get_module

PLAY_KEYS = ("name", "hosts", "serial", "max_fail_percentage", "any_errors_fatal", "become",
             "vars", "vars_files", "vars_spec", "tasks", "handlers", "tags")
VAR_SPEC_KEYS = ("choices",)
TASK_KEYS = ("name", "when", "register", "notify", "tags", "run_once", "check_mode", "no_log",
             "changed_when", "become")
SHIPPED_TEMPLATES = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "templates")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --- YAML with line numbers ----------------------------------------------------------------

class LocatedDict(dict):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines = {}


class LocatedList(list):
    line: int = 0
    item_lines: list


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise InputError(f"duplicate key '{key}'", loader.name, key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    out = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str) -> Any:
    """Parse a YAML file keeping line numbers (LocatedDict / LocatedList)."""
    try:
        with open(path, encoding="utf-8") as handle:
            loader = _Loader(handle)
            loader.name = path
            try:
                return loader.get_single_data()
            finally:
                loader.dispose()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", path,
                         mark.line + 1 if mark else None) from None


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
    vars: dict = field(default_factory=dict)          # play vars, then vars_files on top
    tasks: list[Task] = field(default_factory=list)
    handlers: list[Task] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    vars_spec: list[VarSpec] = field(default_factory=list)

    @property
    def template_dirs(self) -> list[str]:
        """Where `template`/`copy src` look: templates/ next to the playbook or its parent
        (a user's override wins), then the templates harden ships."""
        here = os.path.dirname(os.path.abspath(self.path))
        dirs = [os.path.join(here, "templates"),
                os.path.join(os.path.dirname(here), "templates"), SHIPPED_TEMPLATES]
        return list(dict.fromkeys(dirs))


@dataclass
class Playbook:
    path: str
    plays: list[Play]


# --- loading -------------------------------------------------------------------------------

def load_playbook(path: str) -> Playbook:
    """Load and validate a playbook (following import_playbook), or raise InputError."""
    return Playbook(path, _load_plays(path, ()))


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
            if set(item) - {"import_playbook", "name"}:
                raise InputError("import_playbook takes no other keys than name", path, line)
            target = os.path.join(os.path.dirname(path), str(item["import_playbook"]))
            plays += _load_plays(target, seen + (real,))
        else:
            plays.append(_play(item, path))
    return plays


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
        path=path, line=data.line,
        serial=_serial(data.get("serial"), path, at("serial")),
        max_fail_percentage=_percentage(data.get("max_fail_percentage"), path,
                                        at("max_fail_percentage")),
        any_errors_fatal=_bool(data.get("any_errors_fatal", False), "any_errors_fatal", path,
                               at("any_errors_fatal")),
        become=_opt_bool(data.get("become"), "become", path, at("become")),
        vars=_vars(data.get("vars"), path, at("vars")),
        tags=_strings(data.get("tags"), "tags", path, at("tags")),
        vars_spec=_vars_spec(data.get("vars_spec"), path, at("vars_spec")),
    )
    for name in _strings(data.get("vars_files"), "vars_files", path, at("vars_files")):
        file_path = os.path.join(os.path.dirname(path), name)
        play.vars.update(_vars(load_yaml(file_path), file_path, 1))
    play.handlers = _tasks(data.get("handlers"), path, at("handlers"), "handlers")
    play.tasks = _tasks(data.get("tasks"), path, at("tasks"), "tasks")
    handler_names = {h.name for h in play.handlers}
    for task in play.tasks + play.handlers:
        for target in task.notify:
            if target not in handler_names:
                raise InputError(f"notify '{target}' names no handler of this play; handlers: "
                                 f"{', '.join(sorted(handler_names)) or '(none)'}",
                                 task.path, task.line)
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


def _tasks(items, path: str, line: int | None, what: str) -> list[Task]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(f"'{what}' must be a list of tasks", path, line)
    return [_task(item, path, items.item_lines[i]) for i, item in enumerate(items)]


def _task(data, path: str, line: int) -> Task:
    if not isinstance(data, dict):
        raise InputError("a task must be a mapping", path, line)
    modules = [k for k in data if k not in TASK_KEYS]
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
    args = data[module_name]
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
    )


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


def task_selected(task: Task, play: Play, only_tags: list[str] | None) -> bool:
    """`-t TAGS`: a task runs when it (or its play) carries one of them, or 'always'."""
    if not only_tags:
        return True
    tags = set(task.tags) | set(play.tags)
    return "always" in tags or bool(tags & set(only_tags))
