"""`copy`: write inline content (or a file from the templates path, verbatim) atomically.

`remote_src: true` copies a file already on the node (`src` is a path there, read in the play's
one fact exec): the bytes go through the same backup/atomic write/rollback as any other copy,
and a missing src fails the task as in Ansible, as does a dest whose directory is missing, under
--check-mode ansible too (with remote_src Ansible's copy module itself runs in check mode;
without it the action plugin reports `changed` first, see whole_file.missing_directory). A directory src is
copied as a tree, by Ansible's rules (`copy_tree`).

With `force: false` an existing dest is left entirely alone (content, mode, owner, group), as
Ansible's copy: the file is created once and from then on owned by whatever changes it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.copy_tree import facts_wanted, plan_tree
from harden.apply.modules.base import Arg, Change, PlanContext, TaskFailed
from harden.apply.modules.whole_file import DEST_ARGS, WholeFileModule, missing_directory


class CopyModule(WholeFileModule):
    name = "copy"
    args = (Arg("content", "any"), Arg("src"), Arg("remote_src", "bool", default=False),
            Arg("directory_mode", "mode"), *DEST_ARGS)

    def facts_needed(self, args: dict) -> list[FactRequest]:
        wanted = super().facts_needed(args)
        if args.get("remote_src") and args.get("src"):
            wanted.append(FactRequest(FILE, args["src"], content=True))
            wanted += facts_wanted(args["src"], args["dest"])
        return wanted

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        if (args["content"] is None) == (args["src"] is None):
            raise TaskFailed("copy: give exactly one of content or src")
        if args["remote_src"]:
            source = facts.file(args["src"]) if args["src"].startswith("/") else None
            if source is not None and source.kind == "directory":
                return plan_tree(args, facts)
            # no action plugin answers for the module here: it runs, in check mode too (a
            # task's check_mode: true, --check-mode ansible), and fails on a missing dest
            # directory (ansible-core modules/copy.py, main()). The predictive check says what
            # the real run will meet instead: a command it does not run (`mkdir`) may still
            # make the directory
            return missing_directory(args["dest"], facts,
                                     ctx if ctx.predicting else replace(ctx, check_mode=False),
                                     self.plan_content(args, facts,
                                                       lambda: _remote_bytes(args["src"], facts)))
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


def _remote_bytes(src: str, facts: Facts) -> bytes:
    if not src.startswith("/"):
        raise TaskFailed(f"copy: with remote_src, src must be an absolute path on the node: {src}")
    state = facts.file(src, content=True)
    if state is None:
        raise TaskFailed(f"Source {src} not found")
    if state.kind != "file":
        raise TaskFailed(f"copy: {src} is a {state.kind}; harden copies a single regular file "
                         "with remote_src")
    return state.content or b""


MODULE = CopyModule()
