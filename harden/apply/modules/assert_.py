"""`assert`: fail the host unless every expression in `that` holds (Jinja, like `when`)."""

from __future__ import annotations

from harden.apply.facts import Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.apply.templating import evaluate


class AssertModule(Module):
    name = "assert"
    args = (
        Arg("that", "any", required=True),
        Arg("fail_msg"),
        Arg("success_msg"),
    )

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        that = args["that"] if isinstance(args["that"], list) else [args["that"]]
        for expression in that:
            if not evaluate(expression, ctx.vars):
                raise TaskFailed(args["fail_msg"] or f"assertion failed: {expression}")
        return []


MODULE = AssertModule()
