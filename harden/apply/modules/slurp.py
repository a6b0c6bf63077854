"""`slurp`: a file's content, registered base64-encoded as Ansible's slurp registers it
(`content`, `encoding: base64`, `source`). Reads only; the content is read in the play's one
fact exec and sized first like every file harden reads (4 MiB)."""

from __future__ import annotations

import base64

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed


class SlurpModule(Module):
    name = "slurp"
    node_paths = ("src",)
    args = (Arg("src", required=True),)

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict) and "path" in args and "src" not in args:
            args = {"src" if k == "path" else k: v for k, v in args.items()}   # its alias
        return super().validate(args, path, line, rendered)

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, args["src"], content=True)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        state = facts.file(args["src"], content=True)
        if state is None:
            raise TaskFailed(f"file not found: {args['src']}")
        if state.kind != "file":
            raise TaskFailed(f"source is a directory and must be a file: {args['src']}")
        return []

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        state = facts.file(args["src"], content=True)
        return {"content": base64.b64encode(state.content or b"").decode(),
                "encoding": "base64", "source": args["src"]}


MODULE = SlurpModule()
