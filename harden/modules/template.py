"""`template`: render a Jinja2 file from templates/ with the task's variables, write atomically.

Rendering happens on the controller at plan time, so --check and --diff show exactly the
bytes a real run would write. With `force: false` an existing dest is not rendered at all (only
its mode/owner/group are enforced): a re-run then needs none of the variables the first render
took (an encryption key) and cannot undo what changed the file since (a key rotation).
"""

from __future__ import annotations

from harden.facts import FILE, FactRequest, Facts
from harden.modules.base import (Arg, Change, Module, PlanContext, content_checksum,
                                 plan_keep_content, plan_write)
from harden.templating import render_template_file


class TemplateModule(Module):
    name = "template"
    args = (
        Arg("src", required=True),
        Arg("dest", required=True),
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
        if not args["force"]:
            existing = facts.file(args["dest"])
            if existing is not None:
                return plan_keep_content(existing, args["mode"], args["owner"],
                                         args["group"], args["secret"])
        text = render_template_file(args["src"], ctx.template_dirs, ctx.vars)
        return plan_write(args["dest"], text.encode(), facts.file(args["dest"], content=True),
                          args["mode"], args["owner"], args["group"], args["secret"])

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        return {"checksum": content_checksum(args["dest"], facts, changes)}


MODULE = TemplateModule()
