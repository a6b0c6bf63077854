"""`set_fact`: define variables for this host for the rest of the run, above play and task
vars (Ansible's precedence). A name may be a template (`"{{ item.key }}": ...` under a loop),
checked once rendered. Values are rendered once, when the task runs; `cacheable` is
accepted and has no effect (harden keeps no fact cache between runs)."""

from __future__ import annotations

import re

from harden.apply.facts import Facts
from harden.apply.modules.base import Change, Module, PlanContext
from harden.apply.templating import has_template
from harden.errors import InputError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SetFactModule(Module):
    name = "set_fact"

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if not isinstance(args, dict) or not args:
            raise InputError("set_fact takes a mapping of variable names to values", path, line)
        lines = getattr(args, "key_lines", {})
        for key in args:
            if not rendered and isinstance(key, str) and has_template(key):
                continue          # `"{{ item.key }}": ...`: judged once rendered, per item
            if not isinstance(key, str) or not _IDENTIFIER.match(key):
                raise InputError(f"set_fact: {key!r} is not a variable name", path,
                                 lines.get(key, line))
        return dict(args)

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        return []

    def variables_set(self, args: dict) -> dict:
        return {k: v for k, v in args.items() if k != "cacheable"}


MODULE = SetFactModule()
