"""The `systemctl` command line of a lab node: options parsed as systemctl parses them, each verb
answered from the node's unit files (harden.lab.units) and the supervisor's processes.

Only what hardening content and Ansible's systemd/service/service_facts modules ask for:
show (with -p/--property, --value), is-active, is-enabled, is-failed, status, list-units,
list-unit-files, start/stop/restart/reload/try-restart/reload-or-restart, enable/disable
(with --now), mask/unmask, daemon-reload, reset-failed.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Callable, Protocol

from harden.lab.units import UnitError, Units, unit_name

VALUE_OPTIONS = ("-p", "--property", "-t", "--type", "--state", "-H", "--host", "-M",
                 "--machine", "-n", "--lines", "-o", "--output", "--job-mode", "--root")
ACTIONS = ("start", "stop", "restart", "try-restart", "reload", "reload-or-restart",
           "try-reload-or-restart", "condrestart", "force-reload")


class Process(Protocol):
    """A unit the supervisor runs (harden.lab.node.Service)."""

    name: str
    state: str
    pid: int | None
    error: str


@dataclass
class Request:
    verb: str
    units: list[str]
    properties: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    value_only: bool = False
    show_all: bool = False
    now: bool = False
    quiet: bool = False


def parse(argv: list[str]) -> Request:
    words, props, types = [], [], []
    flags = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg.startswith("-") and name in VALUE_OPTIONS and not eq:
            value = argv[i + 1] if i + 1 < len(argv) else ""
            i += 1
        if name in ("-p", "--property"):
            props += [p for p in value.split(",") if p]
        elif name in ("-t", "--type"):
            types += [t for t in value.split(",") if t]
        elif arg.startswith("-"):
            flags.add(arg)
        else:
            words.append(arg)
        i += 1
    verb = words[0] if words else "list-units"
    return Request(verb, words[1:], props, types, "--value" in flags,
                   bool({"-a", "--all"} & flags), "--now" in flags,
                   bool({"-q", "--quiet"} & flags))


class Systemctl:
    """Answers one systemctl invocation: (exit code, stdout, stderr)."""

    def __init__(self, units: Units, processes: dict[str, Process],
                 start: Callable[[Process], None], stop: Callable[[Process], None]):
        self.units = units
        self.processes = processes          # unit name (aliases included) -> process
        self.start_process, self.stop_process = start, stop
        self.exited: set[str] = set()       # started without a process: active (exited)

    def handle(self, argv: list[str]) -> tuple[int, str, str]:
        req = parse(argv)
        if req.verb in ("daemon-reload", "daemon-reexec", "reset-failed"):
            return 0, "", ""
        if req.verb == "list-units":
            return 0, self.list_units(req), ""
        if req.verb == "list-unit-files":
            text = self.list_unit_files(req)
            return (1 if req.units and text.endswith("\n0 unit files listed.\n") else 0), text, ""
        if not req.units:
            return 1, "", "Too few arguments.\n"
        handler = {"show": self.show, "is-active": self.is_active, "is-failed": self.is_failed,
                   "is-enabled": self.is_enabled, "status": self.status,
                   "enable": self.enable, "disable": self.disable, "mask": self.mask,
                   "unmask": self.unmask}.get(req.verb)
        if handler is None and req.verb in ACTIONS:
            handler = self.action
        if handler is None:
            return 1, "", f"Unknown command verb '{req.verb}'.\n"
        rc, out, err = 0, "", ""
        for word in req.units:
            try:
                one_rc, one_out, one_err = handler(unit_name(word), req)
            except UnitError as exc:
                one_rc, one_out, one_err = exc.rc, "", exc.message
            rc, out, err = max(rc, one_rc), out + one_out, err + one_err
        if req.quiet:
            out = ""
        return rc, out, err

    # --- state -------------------------------------------------------------------------------

    def _process(self, name: str) -> Process | None:
        process = self.processes.get(name)
        if process is None:
            unit = self.units.find(name)
            if unit is not None and unit.target != "/dev/null":
                base = unit.target.rsplit("/", 1)[-1]
                process = self.processes.get(base)
        return process

    def active(self, name: str) -> tuple[str, str, int]:
        """(ActiveState, SubState, MainPID)."""
        process = self._process(name)
        if process is not None:
            sub = {"active": "running", "activating": "auto-restart",
                   "failed": "failed"}.get(process.state, "dead")
            return process.state, sub, process.pid or 0
        if name in self.exited:
            return "active", "exited", 0
        return "inactive", "dead", 0

    def load_state(self, name: str) -> str:
        state = self.units.state(name)
        if state == "not-found" and self._process(name) is None:
            return "not-found"
        return "masked" if state == "masked" else "loaded"

    def properties(self, name: str) -> dict[str, str]:
        unit = self.units.find(name)
        active, sub, pid = self.active(name)
        state = self.units.state(name)
        load = self.load_state(name)
        return {
            "Type": "simple", "MainPID": str(pid), "Id": name, "Names": name,
            "Description": (unit.description if unit else "") or name,
            "LoadState": load, "ActiveState": active, "SubState": sub,
            "FragmentPath": unit.target if unit and load == "loaded" else "",
            "UnitFileState": "" if state == "not-found" else state,
            "UnitFilePreset": "enabled" if load == "loaded" else "",
            "CanStart": "yes" if load == "loaded" else "no",
            "CanStop": "yes" if load == "loaded" else "no",
            "CanReload": "no",
        }

    # --- verbs -------------------------------------------------------------------------------

    def show(self, name: str, req: Request):
        props = self.properties(name)
        keys = req.properties or list(props)
        if req.value_only:
            return 0, "".join(f"{props.get(k, '')}\n" for k in keys), ""
        return 0, "".join(f"{k}={props.get(k, '')}\n" for k in keys) + \
            ("" if req.properties else "\n"), ""

    def is_active(self, name: str, req: Request):
        active = self.active(name)[0]
        return (0 if active == "active" else 3), active + "\n", ""

    def is_failed(self, name: str, req: Request):
        active = self.active(name)[0]
        return (0 if active == "failed" else 1), active + "\n", ""

    def is_enabled(self, name: str, req: Request):
        state = self.units.state(name)
        if state == "not-found":
            return 1, "", (f"Failed to get unit file state for {name}: No such file or "
                           "directory\n")
        return (0 if state in ("enabled", "static", "alias", "indirect") else 1), \
            state + "\n", ""

    def status(self, name: str, req: Request):
        props = self.properties(name)
        if props["LoadState"] == "not-found":
            return 4, "", f"Unit {name} could not be found.\n"
        active, sub = props["ActiveState"], props["SubState"]
        text = (f"* {name} - {props['Description']}\n"
                f"     Loaded: {props['LoadState']} ({props['FragmentPath'] or '/dev/null'}; "
                f"{props['UnitFileState']}; preset: enabled)\n"
                f"     Active: {active} ({sub})\n")
        if props["MainPID"] != "0":
            text += f"   Main PID: {props['MainPID']}\n"
        return (0 if active == "active" else 3), text, ""

    def action(self, name: str, req: Request):
        load = self.load_state(name)
        verb = req.verb
        if load == "not-found":
            return 5, "", f"Failed to {verb} {name}: Unit {name} not found.\n"
        if load == "masked":
            return 1, "", f"Failed to {verb} {name}: Unit {name} is masked.\n"
        process = self._process(name)
        if process is None:
            return self._action_without_process(name, verb)
        running = process.state in ("active", "activating")
        if verb in ("try-restart", "condrestart", "try-reload-or-restart") and not running:
            return 0, "", ""
        if verb in ("stop", "restart", "try-restart", "reload-or-restart", "reload",
                    "force-reload", "condrestart", "try-reload-or-restart") and running:
            self.stop_process(process)
        if verb != "stop":
            self.start_process(process)
            if process.error:
                return 1, "", f"Job for {name} failed: {process.error}\n"
        return 0, "", ""

    def _action_without_process(self, name: str, verb: str):
        if verb == "stop":
            self.exited.discard(name)
        elif verb in ("try-restart", "condrestart", "try-reload-or-restart"):
            pass
        elif verb == "reload" and name not in self.exited:
            return 1, "", f"Failed to reload {name}: Unit {name} is not active.\n"
        else:
            self.exited.add(name)
        return 0, "", ""

    def enable(self, name: str, req: Request):
        said = self.units.enable(name)
        if req.now:
            self.action(name, Request("start", [name]))
        return 0, "", said

    def disable(self, name: str, req: Request):
        if self.units.find(name) is None:
            return 1, "", f"Failed to disable unit: Unit file {name} does not exist.\n"
        said = self.units.disable(name)
        if req.now:
            self.action(name, Request("stop", [name]))
        return 0, "", said

    def mask(self, name: str, req: Request):
        return 0, "", self.units.mask(name)

    def unmask(self, name: str, req: Request):
        return 0, "", self.units.unmask(name)

    # --- listings ----------------------------------------------------------------------------

    def list_units(self, req: Request) -> str:
        """Loaded units: those that run or ran, and the enabled ones (what a booted node has
        loaded); without --all only the active ones."""
        lines = []
        types = req.types or ["service"]
        names = {n for t in types for n in self.units.names(t)}
        names |= {n for n in self.processes if n.rsplit(".", 1)[-1] in types}
        names |= {n for n in self.exited if n.rsplit(".", 1)[-1] in types}
        for name in sorted(names):
            if req.units and not any(fnmatch.fnmatchcase(name, p) for p in req.units):
                continue
            state = self.units.state(name)
            active, sub, _ = self.active(name)
            if state == "alias" or (active == "inactive" and (not req.show_all
                                                               or state != "enabled")):
                continue
            props = self.properties(name)
            lines.append(f"{name} {props['LoadState']} {active} {sub} {props['Description']}")
        return ("UNIT LOAD ACTIVE SUB DESCRIPTION\n" + "".join(f"{l}\n" for l in lines) +
                f"\n{len(lines)} loaded units listed.\n")

    def list_unit_files(self, req: Request) -> str:
        lines = []
        types = req.types or [None]
        pattern_names = set()
        for unit_type in types:
            for pattern in req.units or [None]:
                pattern_names |= set(self.units.names(unit_type, pattern))
        for name in sorted(pattern_names):
            state = self.units.state(name)
            lines.append(f"{name} {state} enabled")
        return ("UNIT FILE STATE VENDOR PRESET\n" + "".join(f"{l}\n" for l in lines) +
                f"\n{len(lines)} unit files listed.\n")
