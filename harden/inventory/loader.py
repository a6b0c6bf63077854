"""Ansible inventories (INI, YAML, directories of them, `a,b,` host lists) resolved exactly as
ansible-core resolves them, so an inventory that works with Ansible means the same hosts and
the same variables here.

Users trust their inventories because Ansible already reads them; any drift in precedence
(which `ansible_user` wins, which `ansible_port`) would connect to the wrong place. The rules
below are ansible-core's and are checked against its recorded output
(tests/fixtures/inventories/). Where ansible-core only warns about broken input (an unknown
section key, an unparsable file in a directory), harden stops with the file and line instead,
because a half-read inventory is a wrong inventory. Inventory scripts and plugin configs are
not run or read: harden never executes local code from an inventory directory.

Variable precedence per host, later wins, hash_behaviour=replace:
  inline vars of `all` < inline vars of the host's other groups ordered by
  (depth, ansible_group_priority, name) < group_vars/all files < group_vars/<group> files
  (per inventory source, then per group in the same order) < inline host vars <
  host_vars/<host> files.
"""

from __future__ import annotations

import ast
import copy
import datetime
import os
import re
import shlex
import string
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from harden.inventory import patterns as hostpatterns
from harden.errors import InputError

MASK = "********"
_SECRET_VARS = frozenset({"ansible_password", "ansible_become_password", "ansible_become_pass",
                          "ansible_ssh_pass"})
_SECRET_WORDS = ("password", "secret", "token")
_YAML_EXTENSIONS = (".yml", ".yaml", ".json")
_VARS_FILE_EXTENSIONS = ("", ".yml", ".yaml", ".json")  # ansible-core's lookup order
# Entries of an inventory directory that ansible-core skips (INVENTORY_IGNORE_EXTS default).
_MAX_RANGE_HOSTS = 100_000   # a typo like [1:1000000000] must not eat the controller's memory
_IGNORED_NAMES = frozenset({"host_vars", "group_vars", "vars_plugins"})
_IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst",
                     ".orig", ".cfg", ".retry")


@dataclass
class Host:
    """One inventory host. `vars` are exactly what ansible-inventory --list shows for it:
    Ansible's magic variables (inventory_hostname, group_names, groups) are not in it."""

    name: str                                      # inventory_hostname
    vars: dict = field(default_factory=dict, repr=False)   # Ansible precedence; holds passwords
    groups: list[str] = field(default_factory=list)  # 'all' first, then by precedence order


def is_secret_var(name: str) -> bool:
    """Whether a variable's value must never be shown (connection passwords, tokens, keys)."""
    lowered = str(name).lower()
    return lowered in _SECRET_VARS or any(word in lowered for word in _SECRET_WORDS)


def redact_secrets(value: Any) -> Any:
    """A copy of `value` with the value of every secret-named key, at any depth, masked."""
    if isinstance(value, Mapping):
        return {k: MASK if is_secret_var(k) else redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------
# The group/host graph while sources are read (mirrors ansible-core's InventoryData).

@dataclass
class _Group:
    name: str
    vars: dict = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)       # direct members, in order added
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    priority: int = 1


@dataclass
class _HostEntry:
    name: str
    vars: dict = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)      # direct memberships


class _Graph:
    def __init__(self) -> None:
        self.groups: dict[str, _Group] = {}
        self.hosts: dict[str, _HostEntry] = {}
        self.add_group("all")
        self.add_group("ungrouped")
        self.add_child("all", "ungrouped")

    def add_group(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"invalid group name {name!r}")
        self.groups.setdefault(name, _Group(name))

    def add_host(self, name: str, group: str | None = None, port: int | None = None) -> None:
        """A port counts only where the host is first defined, as in ansible-core."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"invalid host name {name!r}")
        if name not in self.hosts:
            self.hosts[name] = _HostEntry(name, {"ansible_port": port} if port else {})
        if group and name not in self.groups[group].hosts:
            self.groups[group].hosts.append(name)
            self.hosts[name].groups.append(group)

    def add_child(self, parent: str, child: str) -> None:
        if child == "all":
            raise ValueError(f"group 'all' cannot be a child of '{parent}': it holds every group")
        if parent == child or parent in self.descendants(child):
            raise ValueError(f"adding group '{child}' as a child of '{parent}' creates a "
                             "dependency loop")
        if child not in self.groups[parent].children:
            self.groups[parent].children.append(child)
            self.groups[child].parents.append(parent)

    def set_group_var(self, group: str, key: str, value: Any) -> None:
        if key == "ansible_group_priority":
            try:
                self.groups[group].priority = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"ansible_group_priority must be an integer, not {value!r}") \
                    from None
        else:
            self.groups[group].vars[key] = value

    def set_host_var(self, host: str, key: str, value: Any) -> None:
        self.hosts[host].vars[key] = value

    def descendants(self, group: str) -> list[str]:
        """The group and everything below it, breadth first (the order hosts are listed in)."""
        return self._walk(group, "children")

    def ancestors(self, group: str) -> list[str]:
        return self._walk(group, "parents")

    def _walk(self, group: str, relation: str) -> list[str]:
        order, frontier, seen = [group], [group], {group}
        while frontier:
            level = []
            for child in (c for g in frontier for c in getattr(self.groups[g], relation)):
                if child not in seen:
                    seen.add(child)
                    level.append(child)
            order.extend(level)
            frontier = level
        return order

    def members(self, group: str) -> list[str]:
        return list(dict.fromkeys(h for g in self.descendants(group) for h in self.groups[g].hosts))

    def reconcile(self) -> None:
        """Hang parentless groups under 'all'; 'ungrouped' holds exactly the hosts in no group."""
        for group in list(self.groups.values()):
            if group.name != "all" and not group.parents:
                self.add_child("all", group.name)
        ungrouped = self.groups["ungrouped"]
        for host in self.hosts.values():
            others = set(host.groups) - {"all", "ungrouped"}
            if "ungrouped" in host.groups and others:
                ungrouped.hosts.remove(host.name)
                host.groups.remove("ungrouped")
            elif not others and "ungrouped" not in host.groups:
                self.add_host(host.name, "ungrouped")

    def depths(self) -> dict[str, int]:
        """Longest distance from 'all', which is what ansible-core sorts group vars by."""
        depth: dict[str, int] = {}

        def longest(name: str) -> int:
            if name not in depth:
                parents = self.groups[name].parents
                depth[name] = max((longest(p) + 1 for p in parents), default=0)
            return depth[name]

        for name in self.groups:
            longest(name)
        return depth


# ---------------------------------------------------------------------------------------------
# Host ranges: node[01:20], node[a:f], node[1:10:2], several per name.

def expand_host_range(name: str) -> list[str]:
    """All host names a ranged name stands for (ValueError on a malformed range)."""
    if "[" not in name:
        return [name]
    head, _, rest = name.partition("[")
    if "]" not in rest:
        raise ValueError(f"host range in '{name}' has no closing ']'")
    inner, _, tail = rest.partition("]")
    bounds = inner.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range [{inner}] must be begin:end or begin:end:step")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError(f"host range [{inner}] must specify an end value")
    if not step_text.isdigit() or int(step_text) < 1:
        raise ValueError(f"host range [{inner}] step must be a positive number")
    values = _range_values(begin, end, int(step_text), inner)
    return [expanded for value in values for expanded in expand_host_range(head + value + tail)]


def _range_values(begin: str, end: str, step: int, inner: str) -> list[str]:
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        first, last = letters.index(begin), letters.index(end)
        if first > last:
            raise ValueError(f"host range [{inner}] must have begin <= end")
        return list(letters[first:last + 1:step])
    if not (begin.isdigit() and end.isdigit()):
        raise ValueError(f"host range [{inner}] bounds must be numbers or single letters")
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and width != len(end):
        raise ValueError(f"host range [{inner}] must use equal-length begin and end "
                         "when zero-padded")
    numbers = range(int(begin), int(end) + 1, step)
    if not numbers:
        raise ValueError(f"host range [{inner}] is empty (begin is after end)")
    if len(numbers) > _MAX_RANGE_HOSTS:
        raise ValueError(f"host range [{inner}] stands for {len(numbers)} hosts, more than "
                         f"the {_MAX_RANGE_HOSTS} harden accepts from one range")
    return [str(n).zfill(width) for n in numbers]


def _expand_host_pattern(text: str) -> tuple[list[str], int | None]:
    parsed = hostpatterns.parse_address(text)
    name, port = parsed if parsed else (text, None)
    return expand_host_range(name), port


# ---------------------------------------------------------------------------------------------
# INI

def _ini_value(text: str) -> Any:
    """Python-literal typing as ansible-core's INI plugin does it: `2222` is an int, `True` a
    bool, `[1, 2]` a list, anything that is not a literal stays the string it was."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = text
    return _plain_literal(value)


def _plain_literal(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_plain_literal(item) for item in value]
    if isinstance(value, dict):
        return {k: _plain_literal(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if value is Ellipsis:
        return "..."
    if isinstance(value, complex):
        return str(value)
    return value


_YAML_KEY_LINE = re.compile(r"^[^\s\[=:]+:(\s|$)")
_INI_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_INI_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")


class NotAnInventory(InputError):
    """A file whose first entry is neither INI nor YAML of an inventory (a key, notes, a
    certificate): its content is never quoted, it may be a secret."""

    def __init__(self, path: str, line: int):
        super().__init__(f"not an inventory file: line {line} is neither an INI section, a "
                         "host line nor YAML of an inventory (content not shown)", path, line)


class _IniReader:
    """One pass over an INI file, ansible-core's state machine: hosts before any section are
    'ungrouped'; `[g:children]` may name groups declared further down."""

    def __init__(self, graph: _Graph, path: str):
        self.graph, self.path = graph, path
        self.line = 0
        self.pending: dict[str, dict] = {}
        self.recognised = False      # a section or a host line was read: this is an inventory

    def fail(self, message: str, line: int | None = None) -> InputError:
        return InputError(message, self.path, line or self.line)

    def read(self, lines: Sequence[str]) -> None:
        group, state = "ungrouped", "hosts"
        for self.line, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            try:
                section = _ini_section(line)
                if section:
                    group, state = section
                    self.enter_section(group, state)
                elif line.startswith("[") and (line.endswith("]") or "]" not in line):
                    raise ValueError(f"invalid section header '{line}': a group name has no "
                                     "spaces and a section is [group], [group:vars] or "
                                     "[group:children]")
                else:
                    self.read_entry(line, group, state)
                self.recognised = True
            except ValueError as exc:
                if not self.recognised and not line.startswith(("[", "---")):
                    raise NotAnInventory(self.path, self.line) from None
                raise self.fail(str(exc)) from None
        self.check_pending()

    def enter_section(self, group: str, state: str) -> None:
        if group not in self.graph.groups:
            if state == "vars" and group not in self.pending:
                self.pending[group] = {"line": self.line, "state": state}
            self.graph.add_group(group)
        if group in self.pending and state != "vars":
            if self.pending[group]["state"] == "children":
                self.add_pending_children(group)
            else:
                del self.pending[group]

    def add_pending_children(self, group: str) -> None:
        for parent in self.pending[group]["parents"]:
            self.graph.add_child(parent, group)
            if parent in self.pending and self.pending[parent]["state"] == "children":
                self.add_pending_children(parent)
        del self.pending[group]

    def read_entry(self, line: str, group: str, state: str) -> None:
        if state == "hosts":
            self.read_hosts(line, group)
        elif state == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"expected key=value in [{group}:vars], got: {line}")
            self.graph.set_group_var(group, key.strip(), _ini_value(value.strip()))
        else:
            child = _ini_group_name(line)
            if child in self.graph.groups:
                self.graph.add_child(group, child)
            elif child in self.pending:
                self.pending[child].setdefault("parents", []).append(group)
            else:
                self.pending[child] = {"line": self.line, "state": "children",
                                       "parents": [group]}

    def read_hosts(self, line: str, group: str) -> None:
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError as exc:
            raise ValueError(f"cannot parse host definition '{line}': {exc}") from None
        if not tokens:
            return
        pattern = tokens[0]
        names, port = _expand_host_pattern(pattern)
        if pattern.endswith(":") and port is None:
            raise ValueError(f"invalid host '{pattern}': a trailing ':' must be followed "
                             "by a port")
        if "---" in (n.strip() for n in names):
            raise ValueError("'---' is not a host; is this a YAML file with an INI name?")
        assignments = {}
        for token in tokens[1:]:
            key, sep, value = token.partition("=")
            if not sep:
                raise ValueError(f"expected key=value host variable assignment, got: {token}")
            assignments[key] = _ini_value(value)
        for name in names:
            self.graph.add_host(name, group, port)
            for key, value in assignments.items():
                self.graph.set_host_var(name, key, value)

    def check_pending(self) -> None:
        for name, declaration in self.pending.items():
            if declaration["state"] == "vars":
                raise self.fail(f"section [{name}:vars] is for group '{name}', which is not "
                                "defined", declaration["line"])
            raise self.fail(f"section [{declaration['parents'][-1]}:children] includes group "
                            f"'{name}', which is not defined", declaration["line"])


def _ini_section(line: str) -> tuple[str, str] | None:
    """`[name]`, `[name:children]`, `[name:vars]` (+ optional # comment) or None."""
    found = _INI_SECTION.match(line)
    if not found:
        return None
    name, kind = found.group(1), found.group(2) or "hosts"
    if kind not in ("hosts", "children", "vars"):
        raise ValueError(f"section [{name}:{kind}] has unknown type '{kind}' "
                         "(use [group], [group:vars] or [group:children])")
    return name, kind


def _ini_group_name(line: str) -> str:
    found = _INI_GROUP_NAME.match(line)
    if not found:
        raise ValueError(f"expected a group name, got: {line}")
    return found.group(1)


# ---------------------------------------------------------------------------------------------
# YAML (also JSON): files are parsed with line numbers kept for error messages.

class _Mapping(dict):
    """A YAML mapping that remembers the line of each key."""

    key_lines: dict


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping()
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            mapping[key] = loader.construct_object(value_node, deep=True)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, f"unhashable key {key!r}", key_node.start_mark) from None
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_unsafe(loader: _Loader, node: yaml.Node) -> Any:
    """`!unsafe` only tells Ansible not to template the value; the value itself is plain."""
    if isinstance(node, yaml.MappingNode):
        return _construct_mapping(loader, node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


def _construct_vault(loader: _Loader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None, None, "vault-encrypted values (!vault) are not supported; pass the secret "
        "through the environment or an unencrypted file with mode 0600", node.start_mark)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor("!unsafe", _construct_unsafe)
_Loader.add_constructor("!vault", _construct_vault)


def _load_yaml(path: str, text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        raise InputError(f"invalid YAML: {problem}", path, mark.line + 1 if mark else None) \
            from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", path) from None


def _plain(value: Any) -> Any:
    """Drop the line bookkeeping before a value becomes a variable."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _line_of(mapping: Any, key: Any) -> int | None:
    return getattr(mapping, "key_lines", {}).get(key)


class _YamlReader:
    """ansible-core's YAML inventory: top-level keys are groups; each group has optional
    `hosts`, `children` and `vars` mappings; children are groups of the same shape."""

    _SECTIONS = ("vars", "children", "hosts")

    def __init__(self, graph: _Graph, path: str):
        self.graph, self.path = graph, path

    def read(self, data: dict) -> None:
        if "plugin" in data:
            raise InputError("inventory plugin configuration files are not supported",
                             self.path, _line_of(data, "plugin"))
        for name, body in data.items():
            self.read_group(name, body, _line_of(data, name))

    def read_group(self, name: Any, body: Any, line: int | None) -> str:
        if not isinstance(name, str) or not name:
            raise InputError(f"group name {name!r} must be a non-empty string", self.path, line)
        if body is not None and not isinstance(body, dict):
            raise InputError(f"group '{name}' must be a mapping (with hosts, children and/or "
                             f"vars), not a {type(body).__name__}", self.path, line)
        self.graph.add_group(name)
        for key, value in (body or {}).items():
            key_line = _line_of(body, key)
            if key not in self._SECTIONS:
                raise InputError(f"unexpected key '{key}' in group '{name}' (only hosts, "
                                 "children and vars are allowed)", self.path, key_line)
            if isinstance(value, str):
                value = {value: None}
            if value is not None and not isinstance(value, dict):
                raise InputError(f"'{key}' of group '{name}' must be a mapping, not a "
                                 f"{type(value).__name__}", self.path, key_line)
            self.read_section(name, key, value or {}, key_line)
        return name

    def read_section(self, group: str, key: str, entries: dict, line: int | None) -> None:
        for entry, value in entries.items():
            entry_line = _line_of(entries, entry) or line
            try:
                if key == "vars":
                    self.graph.set_group_var(group, str(entry), _plain(value))
                elif key == "children":
                    self.graph.add_child(group, self.read_group(entry, value, entry_line))
                else:
                    self.read_host(group, entry, value, entry_line)
            except ValueError as exc:
                raise InputError(str(exc), self.path, entry_line) from None

    def read_host(self, group: str, pattern: Any, host_vars: Any, line: int | None) -> None:
        if not isinstance(pattern, str):
            raise ValueError(f"host {pattern!r} must be a string; quote numbers")
        host_vars = host_vars or {}
        if not isinstance(host_vars, dict):
            raise ValueError(f"variables of host '{pattern}' must be a mapping, not a "
                             f"{type(host_vars).__name__}")
        names, port = _expand_host_pattern(pattern)
        for name in names:
            self.graph.add_host(name, group, port)
            for key, value in host_vars.items():
                self.graph.set_host_var(name, str(key), _plain(value))


# ---------------------------------------------------------------------------------------------
# Sources: files, directories, host lists.

def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start})", path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None


def _read_file(graph: _Graph, path: str) -> None:
    """Pick the format as ansible-core's plugin chain does: a file named .yml/.yaml/.json or
    without extension is YAML when it parses to a mapping, otherwise INI is tried; any other
    name is INI. When both fail, the error of the format the file was meant to be is shown."""
    extension = os.path.splitext(path)[1]
    if extension == ".toml":
        raise InputError("TOML inventories are not supported; use INI or YAML", path)
    text = _read_text(path)
    if extension and extension not in _YAML_EXTENSIONS:
        _IniReader(graph, path).read(text.splitlines())
        return
    try:
        data = _load_yaml(path, text)
    except InputError as exc:
        yaml_problem = exc
    else:
        if data is None:
            return
        if isinstance(data, dict):
            _YamlReader(graph, path).read(data)
            return
        yaml_problem = InputError("a YAML inventory must be a mapping of group names, not a "
                                  f"{type(data).__name__}", path, 1)
    try:
        _IniReader(graph, path).read(text.splitlines())
    except InputError as ini_problem:
        raise (yaml_problem if extension or _looks_like_yaml(text) else ini_problem) from None


def _looks_like_yaml(text: str) -> bool:
    """Whether the first meaningful line reads as YAML (`---` or `key:`), not INI."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            return line.startswith("---") or bool(_YAML_KEY_LINE.match(line))
    return False


def _is_ignored(entry: str) -> bool:
    return entry.startswith(".") or entry in _IGNORED_NAMES or entry.endswith(_IGNORED_SUFFIXES)


def _read_source(graph: _Graph, path: str) -> int:
    """Read one -i source; returns how many files it held."""
    if os.path.isdir(path):
        count = 0
        for entry in sorted(os.listdir(path)):
            entry_path = os.path.join(path, entry)
            # sockets, fifos and dangling links are not inventories (and a fifo would block)
            if not _is_ignored(entry) and (os.path.isdir(entry_path)
                                           or os.path.isfile(entry_path)):
                count += _read_source(graph, entry_path)
        return count
    _read_file(graph, path)
    return 1


def _in_directory(exc: NotAnInventory, source: str) -> InputError:
    """A directory given with -i is read whole, as Ansible does; a file in it that is no
    inventory usually means the directory was not meant (a lab dir holds keys beside its
    inventories). Name the files of it that do read as inventories on their own."""
    candidates = []
    for entry in sorted(os.listdir(source)):
        entry_path = os.path.join(source, entry)
        if _is_ignored(entry) or not os.path.isfile(entry_path):
            continue
        graph = _Graph()
        try:
            _read_file(graph, entry_path)
        except InputError:
            continue
        if set(graph.groups) - {"all", "ungrouped"}:   # a bare word reads as a host too
            candidates.append(entry_path)
    hint = (f"; give one of its inventory files instead: -i {' or -i '.join(candidates)}"
            if candidates else "; it holds no file that reads as an inventory")
    return InputError(f"{exc.message}; -i {source} is a directory, and every file below it is "
                      f"read as inventory{hint}", exc.path, exc.line)


def _read_host_list(graph: _Graph, source: str) -> None:
    """`-i 'cp1,cp2:2222,'`: hosts without groups, as ansible-core's host_list plugin."""
    for item in (part.strip() for part in source.split(",")):
        if item and item not in graph.hosts:
            parsed = hostpatterns.parse_address(item)
            if parsed and "[" in parsed[0]:
                parsed = None   # host lists take no ranges
            name, port = parsed if parsed else (item, None)
            graph.add_host(name, "ungrouped", port)


# ---------------------------------------------------------------------------------------------
# group_vars / host_vars files beside each source.

class _VarsFiles:
    """Looks up group_vars/<name> and host_vars/<name> beside every inventory source."""

    def __init__(self, source_dirs: Sequence[str]):
        self.source_dirs = source_dirs
        self.cache: dict[str, dict] = {}
        self.found: dict[tuple[str, str], list[str]] = {}

    def for_entity(self, kind: str, names: Sequence[str]) -> dict:
        """Per source, then per name: a later source's file beats an earlier one's."""
        merged: dict = {}
        for base in self.source_dirs:
            for name in names:
                if name.startswith(os.sep):
                    continue
                for path in self.files(os.path.join(base, kind), name):
                    merged.update(self.load(path))
        return merged

    def files(self, directory: str, name: str) -> list[str]:
        key = (directory, name)
        if key not in self.found:
            self.found[key] = _vars_files(directory, name) if os.path.isdir(directory) else []
        return self.found[key]

    def load(self, path: str) -> dict:
        if path not in self.cache:
            data = _load_yaml(path, _read_text(path))
            if data is not None and not isinstance(data, dict):
                raise InputError("a variables file must be a mapping of names to values, not "
                                 f"a {type(data).__name__}", path, 1)
            self.cache[path] = _plain(data or {})
        return self.cache[path]


def _vars_files(directory: str, name: str) -> list[str]:
    """The first of <name>, <name>.yml, <name>.yaml, <name>.json that exists; a directory
    contributes every vars file below it, in sorted order."""
    for extension in _VARS_FILE_EXTENSIONS:
        candidate = os.path.join(directory, name + extension)
        if os.path.isdir(candidate):
            return list(_dir_vars_files(candidate))
        if os.path.exists(candidate):
            return [candidate]
    return []


def _dir_vars_files(directory: str) -> Iterator[str]:
    for entry in sorted(os.listdir(directory)):
        if entry.startswith(".") or entry.endswith("~"):
            continue
        path = os.path.join(directory, entry)
        extension = os.path.splitext(entry)[1]
        if os.path.isdir(path):
            if not extension:
                yield from _dir_vars_files(path)
        elif os.path.isfile(path) and extension in _VARS_FILE_EXTENSIONS:
            yield path


# ---------------------------------------------------------------------------------------------
# The resolved inventory.

class Inventory:
    """Hosts with their final variables, the group tree, and pattern selection."""

    def __init__(self, graph: _Graph, vars_files: _VarsFiles):
        self._graph = graph
        depth = graph.depths()
        self._sort_key = lambda g: (depth[g], graph.groups[g].priority, g)
        self._ancestors = {name: graph.ancestors(name) for name in graph.groups}
        # Like Ansible's `groups` variable: every group -> its hosts, descendants included.
        self.groups: dict[str, list[str]] = {name: graph.members(name) for name in graph.groups}
        self._space = hostpatterns.PatternSpace(hosts=list(graph.hosts), groups=self.groups)
        self.hosts: dict[str, Host] = {
            name: self._resolve(graph.hosts[name], vars_files) for name in self.groups["all"]}

    def _resolve(self, entry: _HostEntry, vars_files: _VarsFiles) -> Host:
        """One host's variables in ansible-core's order (see the module docstring). Copied
        deeply so that changing one host's list or dict never changes another host's."""
        every = {g for direct in entry.groups for g in self._ancestors[direct]} - {"all"}
        groups = sorted(every, key=self._sort_key)
        merged = dict(self._graph.groups["all"].vars)
        for group in groups:
            merged.update(self._graph.groups[group].vars)
        merged.update(vars_files.for_entity("group_vars", ["all"]))
        merged.update(vars_files.for_entity("group_vars", groups))
        merged.update(entry.vars)
        merged.update(vars_files.for_entity("host_vars", [entry.name]))
        return Host(entry.name, copy.deepcopy(merged), ["all", *groups])

    def with_defaults(self, defaults: dict) -> Inventory:
        """Give every host these variables unless it sets them itself (ansible.cfg and the
        command line's connection options: a host's inventory wins, as in Ansible)."""
        for host in self.hosts.values():
            host.vars = {**copy.deepcopy(defaults), **host.vars}
        return self

    def select(self, pattern: str | None, limit: str | None = None) -> list[Host]:
        """Hosts matching an Ansible pattern (None = all), restricted to `limit` if given."""
        names = hostpatterns.match_hosts(pattern or "all", self._space)
        if limit:
            try:
                allowed = set(hostpatterns.match_hosts(limit, self._space))
            except InputError as exc:
                raise InputError(f"--limit: {exc.message}") from None
            names = [name for name in names if name in allowed]
            if not names:
                raise InputError(f"no hosts left: pattern '{pattern or 'all'}' and limit "
                                 f"'{limit}' have no host in common")
        return [self.hosts[name] for name in names]

    def _available(self, limit: str | None) -> set[str]:
        return {host.name for host in self.select(None, limit)} if limit else set(self.hosts)

    def to_ansible_list(self, limit: str | None = None, mask_secrets: bool = True) -> dict:
        """The structure `ansible-inventory --list` prints (ansible-core 2.19)."""
        available = self._available(limit)
        result: dict[str, Any] = {}
        self._list_group("all", available, result, set())
        hostvars = {name: _json_ready(host.vars) for name, host in self.hosts.items()
                    if name in available and host.vars}
        if mask_secrets:
            hostvars = {name: redact_secrets(values) for name, values in hostvars.items()}
        result["_meta"] = {"hostvars": hostvars, "profile": "inventory_legacy"}
        return result

    def _list_group(self, name: str, available: set[str], result: dict, seen: set[str]) -> None:
        group = self._graph.groups[name]
        entry: dict[str, list[str]] = {}
        if name != "all":
            entry["hosts"] = [h for h in group.hosts if h in available]
        entry["children"] = list(group.children)
        for child in group.children:
            if child not in seen:
                self._list_group(child, available, result, seen)
                seen.add(child)
        entry = {key: value for key, value in entry.items() if value}
        if entry:
            result[name] = entry

    def graph(self, limit: str | None = None) -> str:
        """The tree `ansible-inventory --graph` prints. With a limit, only the selected hosts
        and the groups that hold them are shown (ansible-inventory ignores --limit here)."""
        available = self._available(limit)
        lines: list[str] = []
        self._graph_group("all", 0, available, limit is not None, lines)
        return "\n".join(lines)

    def _graph_group(self, name: str, depth: int, available: set[str], pruned: bool,
                     lines: list[str]) -> None:
        if pruned and name != "all" and not available.intersection(self.groups[name]):
            return
        lines.append(_graph_line(f"@{name}:", depth))
        for child in self._graph.groups[name].children:
            self._graph_group(child, depth + 1, available, pruned, lines)
        if name != "all":
            lines.extend(_graph_line(host, depth + 1)
                         for host in self._graph.groups[name].hosts if host in available)


def _json_ready(value: Any) -> Any:
    """YAML dates and times become ISO strings, as ansible-inventory prints them."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(item) for item in value]
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    return value


def _graph_line(text: str, depth: int) -> str:
    return "  |" * depth + "--" + text if depth else text


def load_inventory(paths: Sequence[str] | str) -> Inventory:
    """Read every -i source in order into one inventory (InputError with file:line on bad
    input, or when a path does not exist)."""
    sources = [paths] if isinstance(paths, str) else list(paths)
    if not sources:
        raise InputError("no inventory given (use -i FILE_OR_DIR)")
    graph = _Graph()
    source_dirs = []
    for source in sources:
        if "," in source and not os.path.exists(source):
            _read_host_list(graph, source)
            continue
        if not os.path.exists(source):
            raise InputError("inventory path does not exist", source)
        path = os.path.abspath(source)
        try:
            count = _read_source(graph, path)
        except NotAnInventory as exc:
            raise _in_directory(exc, source) if os.path.isdir(path) else exc from None
        if count == 0:
            raise InputError("inventory directory holds no inventory file", source)
        source_dirs.append(os.path.realpath(path if os.path.isdir(path)
                                            else os.path.dirname(path)))
    graph.reconcile()
    return Inventory(graph, _VarsFiles(source_dirs))
