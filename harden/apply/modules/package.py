"""`package` and `apt`: Debian packages present, absent or at the candidate version, judged
from dpkg's status and apt's candidate (read in the play's one fact exec).

`--check` reports what would change from dpkg, as Ansible's apt does in check mode. A real run
runs `apt-get install` / `apt-get remove` (noninteractive); like `command`, that is not backed
up and not rolled back: a rollback cannot uninstall. Only nodes with dpkg are supported (the
task fails naming the host's missing dpkg otherwise). `apt` takes `purge`: with state absent,
the removal also deletes the packages' configuration files, and a package only its
configuration files are left of (dpkg's "config-files") is purged too, as Ansible's apt
does. `update_cache`, `cache_valid_time`, `deb`, `autoremove`, `install_recommends`,
`default_release`, `force`, `upgrade`, `use` and `allow_*` are refused at load.
"""

from __future__ import annotations

import shlex

from harden.apply.facts import PACKAGE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed

STATES = {"present": "present", "installed": "present", "absent": "absent",
          "removed": "absent", "latest": "latest"}


class PackageModule(Module):
    name = "package"
    args = (
        Arg("name", "any", required=True),
        Arg("state", choices=tuple(STATES), default="present"),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict) and "pkg" in args and "name" not in args:
            args = {"name" if k == "pkg" else k: v for k, v in args.items()}   # apt's alias
        return super().validate(args, path, line, rendered)

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(PACKAGE, n) for n in _names(args["name"])]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        state = STATES[args["state"]]
        install, remove = [], []
        for name in _names(args["name"]):
            found = facts.package(name)
            if not found.get("dpkg"):
                raise TaskFailed(f"{self.name}: this host has no dpkg (only Debian-family "
                                 "nodes are supported)")
            if state == "absent":
                if found["installed"] or (args.get("purge") and found.get("config_files")):
                    remove.append(name)
            elif not found["installed"]:
                if found["candidate"] is None:
                    raise TaskFailed(f"No package matching '{name}' is available")
                install.append(name)
            elif state == "latest" and found["candidate"] not in (None, found["version"]):
                install.append(name)
        changes = []
        if install:
            changes.append(_apt("install", install, facts))
        if remove:
            changes.append(_apt("remove", remove, facts, purge=bool(args.get("purge"))))
        return changes


class AptModule(PackageModule):
    name = "apt"
    args = PackageModule.args + (Arg("purge", "bool", default=False),)


def _names(value) -> list[str]:
    if isinstance(value, str):
        return [n.strip() for n in value.split(",") if n.strip()]
    if isinstance(value, list):
        return [str(n) for n in value]
    raise TaskFailed(f"package: name must be a name or a list of names, got {value!r}")


def _apt(verb: str, names: list[str], facts: Facts, purge: bool = False) -> Change:
    words = " ".join(shlex.quote(n) for n in names)
    if purge:
        verb = "remove --purge"
    shown = ", ".join(f"{n} {facts.package(n)['candidate'] or ''}".strip()
                      if verb == "install" else n for n in names)
    return Change(summary=f"{verb} {shown}",
                  script=("DEBIAN_FRONTEND=noninteractive apt-get -q -y "
                          f"-o Dpkg::Options::=--force-confold {verb} -- {words}"),
                  diff=f"{verb}: {shown}\n")


MODULE = PackageModule()
APT = AptModule()
