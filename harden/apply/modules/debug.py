"""`debug`: show a message or a variable in the task's line (never on the node)."""

from __future__ import annotations

import json

from harden.apply.facts import Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext
from harden.apply.templating import evaluate
from harden.errors import InputError


class DebugModule(Module):
    name = "debug"
    args = (
        Arg("msg", "any"),
        Arg("var"),
        Arg("verbosity", "int", default=0),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        out = super().validate(args, path, line, rendered)
        if out["msg"] is not None and out["var"] is not None:
            raise InputError("debug: give msg or var, not both", path, line)
        return out

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        return []

    def report(self, args: dict, variables: dict) -> str:
        if args["var"] is not None:
            value = evaluate(args["var"], variables)
            return f"{args['var']}: {json.dumps(value, default=str)}"
        return str(args["msg"] if args["msg"] is not None else "Hello world!")


MODULE = DebugModule()
