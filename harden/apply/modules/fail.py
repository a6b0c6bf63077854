"""`fail`: stop this host with a message (usually under `when`); like any failure, what the
run wrote on the host is rolled back."""

from __future__ import annotations

from harden.apply.facts import Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed


class FailModule(Module):
    name = "fail"
    args = (Arg("msg", default="Failed as requested from task"),)

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        raise TaskFailed(str(args["msg"]))


MODULE = FailModule()
