"""`package_facts`: the node's installed packages as `ansible_facts.packages`, in Ansible's
structure ({name: [{name, version, arch, category, source: "apt"}]}), read from dpkg-query in
the play's one fact exec.

`manager` auto or apt (Ansible's apt manager, which lists what python-apt calls installed: a
package dpkg has unpacked or configured, not one only its configuration files are left of).
A package of a foreign architecture is named `name:arch`, as python-apt names it. Ansible's
`origin` (the archive an installed version came from) needs apt's policy and is not given.
A node without dpkg fails as Ansible's auto does when it finds no package manager.
"""

from __future__ import annotations

from harden.apply.facts import PROBE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed

# dpkg's current-state letters (2nd of db:Status-Abbrev) of a package with an installed
# version: all but not-installed (n) and config-files (c).
_INSTALLED = set("iUFHWt")


class PackageFactsModule(Module):
    name = "package_facts"
    args = (Arg("manager", "any", default=["auto"]),
            Arg("strategy", choices=("first", "all"), default="first"))

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(PROBE, "dpkg")]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        managers = _managers(args["manager"])
        unsupported = [m for m in managers if m not in ("auto", "apt")]
        if unsupported:
            raise TaskFailed("package_facts: harden reads dpkg only (manager auto or apt); "
                             f"not {', '.join(unsupported)}")
        if facts.probe("dpkg").strip() == "none":
            raise TaskFailed("Could not auto detect a usable package manager, check warnings "
                             "for details." if "auto" in managers else
                             "Unsupported package managers requested: apt")
        return []

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        return {"ansible_facts": {"packages": dpkg_packages(facts.probe("dpkg"))}}


def _managers(value) -> list[str]:
    return [str(m) for m in (value if isinstance(value, list) else str(value).split(","))]


def dpkg_packages(text: str) -> dict[str, list[dict]]:
    """The probe's dpkg-query lines as Ansible's `packages` fact."""
    native, out = "", {}
    for line in text.splitlines():
        fields = line.split("\t")
        if fields[0] == "ARCH" and len(fields) == 2:
            native = fields[1]
            continue
        if len(fields) != 5 or len(fields[3]) < 2 or fields[3][1] not in _INSTALLED:
            continue
        name, version, arch, _status, section = fields
        key = name if arch in (native, "all", "") else f"{name}:{arch}"
        out.setdefault(key, []).append({"name": key, "version": version, "arch": arch,
                                        "category": section, "source": "apt"})
    return out


MODULE = PackageFactsModule()
