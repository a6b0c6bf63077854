"""`group`: a local group as Ansible's ansible.builtin.group leaves it on Linux: `groupadd`
(`-g`, `-r` for system) when missing, `groupmod -g` when its gid differs, `groupdel` for
`state: absent`, run on the node through harden's backups (harden.apply.modules.accounts).
Planned from the node's /etc/group, so an unchanged group runs nothing. No --diff (as Ansible).
"""

from __future__ import annotations

import shlex

from harden.apply.facts import FactRequest, Facts
from harden.apply.modules.accounts import (GROUP, AccountChange, account_facts, command_script,
                                           find)
from harden.apply.modules.base import Arg, Change, Module, PlanContext


class GroupModule(Module):
    name = "group"
    args = (
        Arg("name", required=True),
        Arg("state", choices=("present", "absent"), default="present"),
        Arg("gid", "int"),
        Arg("system", "bool", default=False),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return account_facts()

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        name = args["name"]
        row = find(facts, GROUP, name)
        if args["state"] == "absent":
            if row is None:
                return []
            return [AccountChange(summary=f"group {name}: groupdel",
                                  script=command_script([shlex.join(["groupdel",
                                                                              name])]))]
        if row is None:
            opts = (["-g", str(args["gid"])] if args["gid"] is not None else []) + \
                (["-r"] if args["system"] else [])
            return [AccountChange(summary=f"group {name}: groupadd",
                                  script=command_script(
                                      [shlex.join(["groupadd", *opts, name])]))]
        if args["gid"] is not None and row[2] != str(args["gid"]):
            return [AccountChange(summary=f"group {name}: groupmod -g {args['gid']}",
                                  script=command_script(
                                      [shlex.join(["groupmod", "-g", str(args["gid"]), name])]))]
        return []

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        row = find(facts, GROUP, args["name"])
        found = {"name": args["name"], "state": args["state"], "system": args["system"]}
        if row is not None and args["state"] == "present" and len(row) > 2:
            found["gid"] = int(row[2])
        return found


MODULE = GroupModule()
