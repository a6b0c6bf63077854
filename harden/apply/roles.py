"""Ansible roles, found and read the way ansible-playbook finds them.

A role is a directory: tasks/, handlers/, defaults/, vars/ (each `main.yml`, `main.yaml` or
`main`), templates/ and files/ (where its `template`/`copy` look first), meta/main.yml
(`dependencies`, loaded before the role). Search order: `roles/` beside the playbook, the
playbook's directory, then every directory of `ANSIBLE_ROLES_PATH`, then Ansible's defaults.
A name with a slash is a path.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass, field

from harden.errors import InputError
from harden.apply.yaml_lines import load_yaml

DEFAULT_ROLES_PATH = ("~/.ansible/roles", "/usr/share/ansible/roles", "/etc/ansible/roles")
MAIN_NAMES = ("{}.yml", "{}.yaml", "{}")
MAX_DEPENDENCY_DEPTH = 20


@dataclass
class RoleContent:
    """What the roles of one play add besides tasks: handlers, defaults, vars."""

    handlers: list = field(default_factory=list)
    defaults: dict = field(default_factory=dict)
    vars: dict = field(default_factory=dict)
    loaded: set[str] = field(default_factory=set)


@dataclass
class Role:
    name: str
    path: str

    @property
    def tasks_dir(self) -> str:
        return os.path.join(self.path, "tasks")

    @property
    def search_dirs(self) -> list[str]:
        return [os.path.join(self.path, "templates"), os.path.join(self.path, "files")]

    def file(self, section: str, entry: str = "main") -> str | None:
        for pattern in MAIN_NAMES:
            candidate = os.path.join(self.path, section, pattern.format(entry))
            if os.path.isfile(candidate):
                return candidate
        return None

    def read(self, section: str, entry: str = "main"):
        found = self.file(section, entry)
        return None if found is None else load_yaml(found)


_CONFIGURED: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "roles_path", default=())


@contextlib.contextmanager
def configured(paths: list[str]):
    """ansible.cfg's roles_path while a playbook loads (ANSIBLE_ROLES_PATH still wins)."""
    token = _CONFIGURED.set(tuple(paths))
    try:
        yield
    finally:
        _CONFIGURED.reset(token)


def search_path(playbook: str) -> list[str]:
    here = os.path.dirname(os.path.abspath(playbook))
    configured = [p for p in os.environ.get("ANSIBLE_ROLES_PATH", "").split(os.pathsep) if p] \
        or list(_CONFIGURED.get())
    return [os.path.join(here, "roles"), here, *configured,
            *(os.path.expanduser(p) for p in DEFAULT_ROLES_PATH)]


def find(name: str, playbook: str, line: int | None) -> Role:
    if "/" in name:
        candidates = [os.path.join(os.path.dirname(os.path.abspath(playbook)), name)]
    else:
        candidates = [os.path.join(d, name) for d in search_path(playbook)]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return Role(os.path.basename(os.path.normpath(name)), os.path.abspath(candidate))
    raise InputError(f"role '{name}' not found; looked in: "
                     f"{', '.join(os.path.dirname(c) for c in candidates)}", playbook, line)


def resolve(name: str, playbook: str, line: int | None, depth: int = 0) -> list[Role]:
    """The role and its meta dependencies, dependencies first (each listed once)."""
    if depth > MAX_DEPENDENCY_DEPTH:
        raise InputError(f"role dependencies nested more than {MAX_DEPENDENCY_DEPTH} deep at "
                         f"'{name}' (a cycle?)", playbook, line)
    role = find(name, playbook, line)
    ordered: list[Role] = []
    meta = role.read("meta")
    meta_file = role.file("meta")
    for dep in (meta or {}).get("dependencies") or [] if isinstance(meta, dict) else []:
        dep_name = dep.get("role") or dep.get("name") if isinstance(dep, dict) else dep
        if not isinstance(dep_name, str):
            raise InputError(f"a dependency of role '{name}' needs a role name", meta_file, 1)
        for found in resolve(dep_name, playbook, line, depth + 1):
            if all(found.path != r.path for r in ordered):
                ordered.append(found)
    return ordered + [role]
