"""`service`: systemctl restart / reload / daemon-reload (usually as a handler).

An action, not a state: it always reports changed, and the runner only reaches it through a
notify from a changed task (or an explicit task). In check mode it is reported, not run.
"""

from __future__ import annotations

import shlex

from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.apply.facts import Facts

_VERB = {"restarted": "restart", "reloaded": "reload"}


class ServiceModule(Module):
    name = "service"
    args = (
        Arg("name"),
        Arg("state", choices=tuple(_VERB)),
        Arg("daemon_reload", "bool", default=False),
    )

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        steps, words = [], []
        if args["daemon_reload"]:
            steps.append("systemctl daemon-reload")
            words.append("daemon-reload")
        if args["state"]:
            if not args["name"]:
                raise TaskFailed("service: state needs name")
            verb = _VERB[args["state"]]
            steps.append(f"systemctl {verb} {shlex.quote(args['name'])}")
            words.append(f"{verb} {args['name']}")
        if not steps:
            raise TaskFailed("service: give state (restarted/reloaded) and/or daemon_reload")
        return [Change(summary=", ".join(words), script="\n".join(steps))]


MODULE = ServiceModule()
