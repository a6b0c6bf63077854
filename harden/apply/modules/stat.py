"""`stat`: what is at a path, registered the way Ansible's stat registers it (`stat.exists`,
`isreg`, `isdir`, `islnk`, `mode`, `pw_name`, `gr_name`, `size`, `checksum`). Reads only."""

from __future__ import annotations

import hashlib

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, format_mode


class StatModule(Module):
    name = "stat"
    node_paths = ("path",)
    args = (
        Arg("path", required=True),
        Arg("get_checksum", "bool", default=True),
        Arg("checksum_algorithm", choices=("sha1", "sha256"), default="sha1"),
        Arg("follow", "bool", default=False),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, args["path"], content=args["get_checksum"])]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        return []

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        state = facts.file(args["path"], content=args["get_checksum"])
        if state is None:
            return {"stat": {"exists": False}}
        out = {"exists": True, "path": args["path"], "isreg": state.kind == "file",
               "isdir": state.kind == "directory", "islnk": state.kind == "link",
               "mode": format_mode(state.mode), "pw_name": state.owner,
               "gr_name": state.group}
        if state.content is not None:
            out["size"] = len(state.content)
            if args["get_checksum"] and state.kind == "file":
                out["checksum"] = hashlib.new(args["checksum_algorithm"],
                                              state.content).hexdigest()
        return {"stat": out}


MODULE = StatModule()
