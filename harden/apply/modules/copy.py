"""`copy`: write inline content (or a file from the templates path, verbatim) atomically.

With `force: false` an existing dest keeps its content (only mode/owner/group are enforced):
the file is created once and from then on owned by whatever changes it on the node.
"""

from __future__ import annotations

import json
import os

from harden.apply.facts import Facts
from harden.apply.modules.base import Arg, Change, PlanContext, TaskFailed
from harden.apply.modules.whole_file import DEST_ARGS, WholeFileModule


class CopyModule(WholeFileModule):
    name = "copy"
    args = (Arg("content", "any"), Arg("src"), *DEST_ARGS)

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        if (args["content"] is None) == (args["src"] is None):
            raise TaskFailed("copy: give exactly one of content or src")
        return super().plan(args, facts, ctx)

    def content(self, args: dict, ctx: PlanContext) -> bytes:
        if args["content"] is not None:
            content = args["content"]
            if isinstance(content, (dict, list)):       # as Ansible's copy: written as JSON
                content = json.dumps(content)
            return content if isinstance(content, bytes) else str(content).encode()
        for directory in ctx.template_dirs:
            candidate = os.path.join(directory, args["src"])
            if os.path.isfile(candidate):
                with open(candidate, "rb") as handle:
                    return handle.read()
        raise TaskFailed(f"copy: {args['src']} not found in {', '.join(ctx.template_dirs)}")


MODULE = CopyModule()
