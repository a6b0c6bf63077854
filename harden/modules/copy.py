"""`copy`: write inline content (or a file from the templates path, verbatim) atomically.

With `force: false` an existing dest keeps its content (only mode/owner/group are enforced):
the file is created once and from then on owned by whatever changes it on the node.
"""

from __future__ import annotations

import os

from harden.facts import FILE, FactRequest, Facts
from harden.modules.base import (Arg, Change, Module, PlanContext, TaskFailed,
                                 content_checksum, plan_keep_content, plan_write)


class CopyModule(Module):
    name = "copy"
    args = (
        Arg("dest", required=True),
        Arg("content", "any"),
        Arg("src"),
        Arg("mode", "mode"),
        Arg("owner"),
        Arg("group"),
        Arg("secret", "bool", default=False),
        Arg("force", "bool", default=True),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        # force: false never compares content, so a secret dest is not even read back
        return [FactRequest(FILE, args["dest"], content=args.get("force") is not False)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        if (args["content"] is None) == (args["src"] is None):
            raise TaskFailed("copy: give exactly one of content or src")
        if not args["force"]:
            existing = facts.file(args["dest"])
            if existing is not None:
                return plan_keep_content(existing, args["mode"], args["owner"],
                                         args["group"], args["secret"])
        data = _content(args, ctx)
        return plan_write(args["dest"], data, facts.file(args["dest"], content=True),
                          args["mode"], args["owner"], args["group"], args["secret"])

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        return {"checksum": content_checksum(args["dest"], facts, changes)}


def _content(args: dict, ctx: PlanContext) -> bytes:
    if args["content"] is not None:
        content = args["content"]
        return content if isinstance(content, bytes) else str(content).encode()
    for directory in ctx.template_dirs:
        candidate = os.path.join(directory, args["src"])
        if os.path.isfile(candidate):
            with open(candidate, "rb") as handle:
                return handle.read()
    raise TaskFailed(f"copy: {args['src']} not found in {', '.join(ctx.template_dirs)}")


MODULE = CopyModule()
