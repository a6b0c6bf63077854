"""`service` and `systemd` (`systemd_service`): a unit's state, enablement and mask, judged as
Ansible's systemd module judges them from `systemctl show` and `systemctl is-enabled` (read in
the play's one fact exec), plus daemon-reload.

In Ansible's order: daemon-reload, then mask/unmask, enable/disable, then the state. `started`
and `stopped` change only what differs; `restarted` and `reloaded` always act (a stopped unit is
started instead). A unit the node does not know fails the task (mask/unmask excepted, as
systemd can mask a unit before it is installed). Enabled means what `is-enabled` answers with
exit 0 and Ansible takes as enabled: enabled, static, generated, transient. Each change
records its opposite (stop for a start, disable for an enable, unmask for a mask; a restart is
repeated) so a rollback of the host undoes it. In check mode the changes are planned and
reported, not run. `daemon_reload` runs first and, as in Ansible, is never counted as a
change: a task that only reloads is `ok` (and notifies nothing).
"""

from __future__ import annotations

import shlex

from harden.apply.facts import UNIT, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed

def Restart(name: str, verb: str, daemon_reload: bool = False) -> tuple[str, str, bool]:
    """What a rollback runs for a change (harden.apply.rollback.Restart's fields; that module
    imports the modules, so not imported here)."""
    return (name, verb, daemon_reload)


STATES = ("started", "stopped", "restarted", "reloaded")
ENABLED_WORDS = ("enabled", "static", "generated", "transient")


class ServiceModule(Module):
    name = "service"
    args = (
        Arg("name"),
        Arg("state", choices=STATES),
        Arg("enabled", "bool"),
        Arg("daemon_reload", "bool", default=False),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(UNIT, args["name"])] if args["name"] else []

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        name = args["name"]
        if not name and (args["state"] or args["enabled"] is not None or args.get("masked")
                         is not None):
            raise TaskFailed(f"{self.name}: state, enabled and masked need name")
        if not name and not args["daemon_reload"]:
            raise TaskFailed(f"{self.name}: give name with state, enabled or masked, or "
                             "daemon_reload")
        changes = [_daemon_reload()] if args["daemon_reload"] else []
        if not name:
            return changes
        unit = facts.unit(name)
        if not unit.get("systemctl"):
            raise TaskFailed(f"{self.name}: no systemctl on this host")
        changes += self._mask(name, args, unit)
        if args["enabled"] is not None or args["state"]:
            if unit.get("LoadState") == "not-found" and not unit.get("enabled"):
                raise TaskFailed(f"Could not find the requested service {name}: host")
        changes += _enable(name, args, unit)
        changes += _state(name, args, unit, args["daemon_reload"])
        return changes

    def _mask(self, name: str, args: dict, unit: dict) -> list[Change]:
        return []

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        if not args["name"]:
            return {}
        unit = facts.unit(args["name"])
        out = {"name": args["name"],
               "status": {k: v for k, v in unit.items() if k[:1].isupper()}}
        if args["state"]:
            out["state"] = "started" if args["state"] in ("restarted", "reloaded") \
                else args["state"]
        if args["enabled"] is not None:
            out["enabled"] = args["enabled"]
        return out


class SystemdModule(ServiceModule):
    name = "systemd"
    args = ServiceModule.args + (Arg("masked", "bool"),)

    def _mask(self, name: str, args: dict, unit: dict) -> list[Change]:
        if args["masked"] is None or (unit.get("enabled") == "masked") == args["masked"]:
            return []
        verb, undo = ("mask", "unmask") if args["masked"] else ("unmask", "mask")
        after = {"enabled": "masked", "LoadState": "masked"} if args["masked"] else \
            {"enabled": "disabled", "LoadState": "loaded"}
        return [_step(f"{verb} {name}", f"systemctl {verb} {shlex.quote(name)}",
                      Restart(name, undo), name, after)]


class SystemdServiceModule(SystemdModule):
    name = "systemd_service"


def _enable(name: str, args: dict, unit: dict) -> list[Change]:
    wanted = args["enabled"]
    if wanted is None or (unit.get("enabled") in ENABLED_WORDS) == wanted:
        return []
    verb, undo = ("enable", "disable") if wanted else ("disable", "enable")
    return [_step(f"{verb} {name}", f"systemctl {verb} {shlex.quote(name)}",
                  Restart(name, undo), name,
                  {"enabled": "enabled" if wanted else "disabled",
                   "UnitFileState": "enabled" if wanted else "disabled"})]


def _state(name: str, args: dict, unit: dict, reload_first: bool) -> list[Change]:
    state = args["state"]
    if state is None:
        return []
    active = unit.get("ActiveState") in ("active", "activating")
    if state == "started" and active or state == "stopped" and not (
            active or unit.get("ActiveState") == "deactivating"):
        return []
    if state == "stopped":
        verb, undo = "stop", Restart(name, "start")
    elif not active:
        verb, undo = "start", Restart(name, "stop")
    else:
        verb = "restart" if state == "restarted" else "reload"
        undo = Restart(name, verb, reload_first)      # a rollback repeats it on old files
    after = {"ActiveState": "inactive" if verb == "stop" else "active",
             "SubState": "dead" if verb == "stop" else "running"}
    return [_step(f"{verb} {name}", f"systemctl {verb} {shlex.quote(name)}", undo, name,
                  after)]


def _daemon_reload() -> Change:
    """Run, never counted: Ansible's systemd module leaves `changed` alone for a
    daemon-reload (and in check mode skips it), so a notified reload handler shows ok."""
    return Change(summary="daemon-reload", script="systemctl daemon-reload", counted=False)


def _step(summary: str, script: str, undo: tuple | None, unit: str | None,
          after: dict) -> Change:
    return Change(summary=summary, script=script, undo=undo,
                  unit=(unit, after) if unit else None)


MODULE = ServiceModule()
SYSTEMD = SystemdModule()
SYSTEMD_SERVICE = SystemdServiceModule()
