"""`command`: run a shell command on the node.

Commands may write anything, so they are skipped in check mode unless the task says
`check_mode: false` (then they are read-only probes and run in both modes). `creates` makes
them idempotent: when that path exists the command is not run. Whether a run counts as
changed can be overridden with the task keyword `changed_when`. `show_output` puts the
command's stdout on the task line: a report the operator must read (what Pod Security would
reject) is not lost in a registered variable.
"""

from __future__ import annotations

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext


class CommandModule(Module):
    name = "command"
    check_mode_safe = False
    args = (
        Arg("cmd", required=True),
        Arg("creates"),
        Arg("show_output", "bool", default=False),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, args["creates"])] if args["creates"] else []

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        if args["creates"] and facts.file(args["creates"]) is not None:
            return []
        return [Change(summary=f"run: {args['cmd']}", script=f"(\n{args['cmd']}\n)")]


MODULE = CommandModule()
