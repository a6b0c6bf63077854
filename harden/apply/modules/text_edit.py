"""What lineinfile, blockinfile and replace share: a file edited in place on the controller
(read in the play's one gather, edited as text, written back through harden's backup and
atomic write only when the text differs). A subclass only says how the text changes."""

from __future__ import annotations

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write

FILE_ARGS = (
    Arg("path", required=True),
    Arg("mode", "mode"),
    Arg("owner"),
    Arg("group"),
    Arg("backup", "bool", default=False),          # accepted: harden always backs up
)


class TextEditModule(Module):
    node_paths = ("path",)
    can_create = True          # the module has a `create` argument

    def edit(self, text: str, args: dict) -> str:
        raise NotImplementedError

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, args["path"], content=True)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        existing = facts.file(args["path"], content=True)
        if existing is None:
            if args.get("state") == "absent":
                return []
            if not (self.can_create and args.get("create")):
                hint = " (create: true makes it)" if self.can_create else ""
                raise TaskFailed(f"{args['path']} does not exist{hint}")
        elif existing.kind != "file":
            raise TaskFailed(f"{args['path']} is not a regular file")
        before = existing.content.decode(errors="surrogateescape") if existing else ""
        after = self.edit(before, args)
        content = existing.content if existing is not None and after == before else \
            after.encode(errors="surrogateescape")
        return plan_write(args["path"], content, existing, args["mode"], args["owner"],
                          args["group"], False)
