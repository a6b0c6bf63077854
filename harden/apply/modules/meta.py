"""`meta`: `flush_handlers` runs the handlers notified so far, there and then, as Ansible does
(the runner does it; see harden.apply.tasks); `noop` does nothing. Other meta actions
(end_play, end_host, clear_facts, refresh_inventory, reset_connection, ...) are refused at
load."""

from __future__ import annotations

from harden.apply.facts import Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext

ACTIONS = ("flush_handlers", "noop")


class MetaModule(Module):
    name = "meta"
    args = (Arg("free_form", required=True, choices=ACTIONS),)

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        return []


MODULE = MetaModule()
