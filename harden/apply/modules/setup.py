"""`setup` as a task: the same `ansible_*` facts gather_facts gives (harden.apply.host_facts),
gathered in the play's one fact exec and set for the rest of the run, as Ansible's setup task
sets them. `filter` keeps the facts whose `ansible_` name matches one of its patterns;
`gather_subset` is accepted with Ansible's subset names (harden always gathers its one set).
"""

from __future__ import annotations

import fnmatch

from harden.apply import host_facts
from harden.apply.facts import PROBE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed

SUBSETS = {"all", "min", "hardware", "network", "virtual", "ohai", "facter", "apparmor", "caps",
           "cmdline", "date_time", "distribution", "dns", "env", "fips", "local", "lsb",
           "pkg_mgr", "platform", "python", "selinux", "service_mgr", "ssh_pub_keys", "user",
           "devices", "mounts", "systemd", "loadavg", "interfaces", "system"}


class SetupModule(Module):
    name = "setup"
    args = (Arg("gather_subset", "any", default=["all"]), Arg("filter", "any", default=[]),
            Arg("gather_timeout", "int", default=10), Arg("fact_path", default="/etc/ansible/facts.d"))

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(PROBE, "host")]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        for subset in _listed(args["gather_subset"]):
            if subset.lstrip("!") not in SUBSETS:
                raise TaskFailed(f"Bad subset '{subset}' given to Ansible. gather_subset "
                                 f"options allowed: {', '.join(sorted(SUBSETS))}")
        return []

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        gathered = host_facts.parse(facts.probe("host"))
        patterns = _listed(args["filter"])
        named = {f"ansible_{k}": v for k, v in gathered.items()}
        if patterns:
            named = {k: v for k, v in named.items()
                     if any(fnmatch.fnmatchcase(k, p) for p in patterns)}
        return {"ansible_facts": named}


def _listed(value) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


MODULE = SetupModule()
