"""The module registry: playbook task keyword → Module (one file per module).

See harden/apply/modules/base.py for the contract every module follows.

A module's file is imported when a playbook first names it (`get_module`), not with this
package: every part of apply imports `harden.apply.modules.base`, which imports this package
first, and importing all of the modules up front (some 40 files) was paid before an apply's
first connection whatever its playbook used.
tests/unit/apply/test_module_registry.py checks this table against the modules' own names.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from harden.apply.modules.base import Module

# task keyword -> (file in this package, the Module's name there)
_WHERE: dict[str, tuple[str, str]] = {
    **{name: (name, "MODULE") for name in (
        "file", "copy", "template", "encryption_key", "encryption_census", "etcd_snapshot",
        "static_pod", "kubelet_config", "sysctl", "service", "command", "shell", "debug",
        "fail", "set_fact", "stat", "lineinfile", "blockinfile", "replace",
        "wait_for_static_pod", "wait_for_kubelet", "slurp", "find", "package", "mount",
        "meta", "dnf", "selinux", "package_facts", "setup", "user", "group", "getent",
        "pam_limits", "include_vars")},
    "assert": ("assert_", "MODULE"),
    "systemd": ("service", "SYSTEMD"),
    "systemd_service": ("service", "SYSTEMD_SERVICE"),
    "apt": ("package", "APT"),
    "yum": ("dnf", "YUM"),
}


class _Registry(Mapping):
    """Every module's name at once (for validation messages); a module itself on lookup."""

    def __getitem__(self, name: str) -> Module:
        file, attribute = _WHERE[name]
        return getattr(importlib.import_module(f"{__name__}.{file}"), attribute)

    def __contains__(self, name) -> bool:
        return name in _WHERE             # a name's question imports nothing

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


MODULES: Mapping[str, Module] = _Registry()


def get_module(name: str) -> Module | None:
    return MODULES.get(name)
