"""`template`: render a Jinja2 file from templates/ with the task's variables, write atomically.

Rendering happens on the controller at plan time, so --check and --diff show exactly the
bytes a real run would write. With `force: false` an existing dest is not rendered at all, nor
its mode/owner/group touched (Ansible's copy returns at once): a re-run then needs none of the variables the first render
took (an encryption key) and cannot undo what changed the file since (a key rotation).
Jinja settings follow Ansible's template module: a block tag's own newline is dropped
(`trim_blocks: true`), leading whitespace before it is kept unless `lstrip_blocks: true`.
"""

from __future__ import annotations

import os
import socket

from harden.apply.modules.base import Arg, PlanContext
from harden.apply.modules.whole_file import DEST_ARGS, WholeFileModule
from harden.apply.templating import render_template_file


class TemplateModule(WholeFileModule):
    name = "template"
    args = (Arg("src", required=True), *DEST_ARGS,
            Arg("trim_blocks", "bool", default=True),
            Arg("lstrip_blocks", "bool", default=False),
            Arg("backup", "bool", default=False))      # accepted: harden always backs up

    def content(self, args: dict, ctx: PlanContext) -> bytes:
        variables = {**template_vars(args["src"], args["dest"], ctx.template_dirs), **ctx.vars}
        return render_template_file(args["src"], ctx.template_dirs, variables,
                                    args["trim_blocks"], args["lstrip_blocks"]).encode()


def template_vars(src: str, dest: str, template_dirs: list[str]) -> dict:
    """The variables Ansible's template action adds for the file being rendered. Role templates
    start with `{{ ansible_managed | comment }}`; ansible-core's default is the constant
    "Ansible managed" (a variable of the play or inventory wins, as there). The time-dependent
    ones (template_mtime, template_run_date) are left out: they would make every run a change."""
    fullpath = next((os.path.join(d, src) for d in template_dirs
                     if os.path.isfile(os.path.join(d, src))), os.path.abspath(src))
    return {"ansible_managed": "Ansible managed", "template_path": src,
            "template_fullpath": fullpath, "template_destpath": dest,
            "template_host": socket.gethostname()}


MODULE = TemplateModule()
