"""`template`: render a Jinja2 file from templates/ with the task's variables, write atomically.

Rendering happens on the controller at plan time, so --check and --diff show exactly the
bytes a real run would write.
"""

from __future__ import annotations

from harden.facts import FILE, FactRequest, Facts
from harden.modules.base import Arg, Change, Module, PlanContext, plan_write
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
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, args["dest"], content=True)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        text = render_template_file(args["src"], ctx.template_dirs, ctx.vars)
        return plan_write(args["dest"], text.encode(), facts.file(args["dest"], content=True),
                          args["mode"], args["owner"], args["group"], args["secret"])


MODULE = TemplateModule()
