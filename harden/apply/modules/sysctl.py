"""`sysctl`: persist kernel parameters in /etc/sysctl.d/ and set the running value.

Both halves are planned from facts: the file only when its line differs, the runtime value only
when /proc/sys differs, so a second run changes nothing. (The kubelet refuses to start with
protectKernelDefaults unless six of these already hold, so they must be set first.)

At boot the sysctl files are read in the order harden.node.sysctl_boot models (file-name order
over the sysctl.d directories, then /etc/sysctl.conf; the last assignment wins). A file that
sorts after ours and sets a key differently undoes the persisted value at the next boot (for the
kubelet with protectKernelDefaults: it does not start). The task fails naming that file, on
every run, whether or not anything else changes.
"""

from __future__ import annotations

import re
import shlex

import posixpath

from harden.apply.facts import FILE, GLOB, SYSCTL, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write
from harden.node import sysctl_boot
from harden.node.sysctl_boot import SYSCTL_CONF, SYSCTL_DIRS

DEFAULT_FILE = "/etc/sysctl.d/90-harden.conf"
_LINE = re.compile(r"^\s*(?P<key>[A-Za-z0-9_./-]+)\s*=\s*(?P<value>.*?)\s*$")


class SysctlModule(Module):
    name = "sysctl"
    args = (
        Arg("name"),
        Arg("value", "any"),
        Arg("values", "dict"),
        Arg("file", default=DEFAULT_FILE),
        Arg("apply", "bool", default=True),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        wanted = [FactRequest(FILE, args["file"], content=True),
                  FactRequest(FILE, SYSCTL_CONF, content=True)]
        wanted += [FactRequest(GLOB, f"{d}/*.conf", content=True) for d in SYSCTL_DIRS]
        if args["apply"]:
            wanted += [FactRequest(SYSCTL, key) for key in _wanted(args)]
        return wanted

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        wanted = _wanted(args)
        state = facts.file(args["file"], content=True)
        old = state.content.decode() if state is not None else ""
        changes = []
        new = _persisted(old, wanted)
        if new != old:
            changes += plan_write(args["file"], new.encode(), state, None if state else "0644",
                                  None, None, secret=False)
        _check_boot_values(args["file"], new, wanted, facts)
        if args["apply"]:
            for key, value in wanted.items():
                current = facts.sysctl(key)
                if current is None:
                    raise TaskFailed(f"sysctl: {key} does not exist on this host")
                if current.split() != value.split():
                    proc = "/proc/sys/" + key.replace(".", "/")
                    changes.append(Change(
                        summary=f"sysctl {key}: {current} -> {value}",
                        script=f"hb_proc {shlex.quote(proc)} {shlex.quote(value)}", path=proc,
                        diff=f"--- a{proc}\n+++ b{proc}\n-{current}\n+{value}\n",
                        sysctl=(key, value)))
        return changes


def boot_files(facts: Facts, ours: str, our_text: str) -> list[tuple[str, str]]:
    """(path, text) in the order the boot reads them, with our file as planned."""
    found = [state.path for directory in SYSCTL_DIRS
             for state in facts.glob(f"{directory}/*.conf") if state.kind == "file"]
    conf = facts.file(SYSCTL_CONF, content=True)
    if conf is not None and conf.kind == "file" and SYSCTL_CONF != ours:
        found.append(SYSCTL_CONF)
    others = sysctl_boot.boot_order(p for p in found
                                    if posixpath.basename(p) != posixpath.basename(ours))
    tail = [SYSCTL_CONF] if others and others[-1] == SYSCTL_CONF else []
    ordered = sorted(others[:len(others) - len(tail)] + [ours], key=posixpath.basename) + tail
    return [(path, our_text if path == ours else _text_of(facts, path)) for path in ordered]


def _text_of(facts: Facts, path: str) -> str:
    state = facts.file(path, content=True)
    return (state.content or b"").decode(errors="replace") if state else ""


def _check_boot_values(ours: str, our_text: str, wanted: dict[str, str], facts: Facts) -> None:
    """Fail when a file read after ours at boot sets a wanted key to another value."""
    last = sysctl_boot.boot_values(boot_files(facts, ours, our_text))
    for key, value in wanted.items():
        boot, path = last.get(key, (value, ours))
        if path != ours and not sysctl_boot.same_value(boot, value):
            raise TaskFailed(f"sysctl: {key}: {path} sets {boot} and is read after {ours} at "
                             f"boot, so the next boot would set {boot} instead of {value} (with "
                             f"protectKernelDefaults the kubelet would then not start); change or "
                             f"remove that setting")


def _wanted(args: dict) -> dict[str, str]:
    if (args["name"] is None) == (args["values"] is None):
        raise TaskFailed("sysctl: give either name + value, or values: {key: value, ...}")
    pairs = args["values"] or {args["name"]: args["value"]}
    out = {}
    for key, value in pairs.items():
        if value is None or isinstance(value, (dict, list)):
            raise TaskFailed(f"sysctl: {key} needs a scalar value")
        out[str(key)] = _text(value)
    return out


def _text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _persisted(text: str, wanted: dict[str, str]) -> str:
    """The sysctl.d file with each wanted key set once (existing lines edited in place)."""
    lines = text.splitlines(keepends=True)
    done: set[str] = set()
    out = []
    for line in lines:
        match = _LINE.match(line)
        key = match.group("key").replace("/", ".") if match else None
        if key in wanted:
            if key in done:
                continue
            done.add(key)
            if match.group("value").split() != wanted[key].split():
                line = f"{key} = {wanted[key]}\n"
        out.append(line)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out += [f"{k} = {v}\n" for k, v in wanted.items() if k not in done]
    return "".join(out)


MODULE = SysctlModule()
