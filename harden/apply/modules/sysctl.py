"""`sysctl`: persist kernel parameters in /etc/sysctl.d/ and set the running value.

Both halves are planned from facts: the file only when its line differs, the runtime value only
when /proc/sys differs, so a second run changes nothing. (The kubelet refuses to start with
protectKernelDefaults unless six of these already hold, so they must be set first.)

At boot the sysctl files are read in the order harden.node.sysctl_boot models (file-name order
over the sysctl.d directories, then /etc/sysctl.conf; the last assignment wins). A file that
sorts after ours and sets a key differently undoes the persisted value at the next boot (for the
kubelet with protectKernelDefaults: it does not start). The task fails naming that file, on
every run, whether or not anything else changes.

Ansible's ansible.posix.sysctl arguments are taken too. `sysctl_file` names the file in
Ansible's spelling, and then the file is written as Ansible writes it (every assignment as
`key=value`, comments kept, a key's later duplicates dropped). The running value is set when
`sysctl_set` or `reload` (default true) is on, only where it differs (Ansible's reload runs
`sysctl -p FILE`, which leaves the same values). `ignoreerrors` lets a key the kernel lacks
pass when only `reload` would set it (Ansible's `sysctl -e`); with `sysctl_set` a missing key
fails, as `sysctl -w` fails in Ansible. `state: absent` takes the key's lines out of the file
and leaves the running value.
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
        Arg("sysctl_file"),
        Arg("sysctl_set", "bool", default=False),
        Arg("reload", "bool"),
        Arg("ignoreerrors", "bool", default=False),
        Arg("state", choices=("present", "absent"), default="present"),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict):          # Ansible's aliases key/val
            for alias, real in (("key", "name"), ("val", "value")):
                if alias in args and real not in args:
                    args = {real if k == alias else k: v for k, v in args.items()}
        out = super().validate(args, path, line, rendered)
        if out["sysctl_file"] is not None:
            if args.get("file") not in (None, out["sysctl_file"]):
                from harden.errors import InputError
                raise InputError("sysctl: give file or sysctl_file, not both", path, line)
            out["file"] = out["sysctl_file"]
        if out["reload"] is not None or out["sysctl_set"]:
            out["apply"] = bool(out["sysctl_set"] or out["reload"] in (None, True))
        return out

    def facts_needed(self, args: dict) -> list[FactRequest]:
        wanted = [FactRequest(FILE, args["file"], content=True),
                  FactRequest(FILE, SYSCTL_CONF, content=True)]
        wanted += [FactRequest(GLOB, f"{d}/*.conf", content=True) for d in SYSCTL_DIRS]
        if args["apply"] and args["state"] == "present":
            wanted += [FactRequest(SYSCTL, key) for key in _wanted(args)]
        return wanted

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        wanted = _wanted(args)
        state = facts.file(args["file"], content=True)
        old = state.content.decode() if state is not None else ""
        changes = []
        absent = args["state"] == "absent"
        if args["sysctl_file"] is not None:
            new = ansible_persisted(old, wanted, absent)
        else:
            new = _without(old, wanted) if absent else _persisted(old, wanted)
        if new != old:
            changes += plan_write(args["file"], new.encode(), state, None if state else "0644",
                                  None, None, secret=False)
        if absent:
            return changes
        _check_boot_values(args["file"], new, wanted, facts)
        if args["apply"]:
            for key, value in wanted.items():
                current = facts.sysctl(key)
                if current is None and args["ignoreerrors"] and not args["sysctl_set"]:
                    continue        # sysctl -e -p skips a key the kernel lacks
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
        if value is None and args.get("state") == "absent":
            value = ""
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


def ansible_persisted(text: str, wanted: dict[str, str], absent: bool) -> str:
    """The file as Ansible's sysctl module rewrites it: lines stripped, each assignment
    re-written `key=value` (the first of a key only), wanted keys set or, absent, dropped,
    a missing wanted key appended."""
    if not _ansible_writes(text, wanted, absent):
        return text
    out, seen = [], set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            out.append(line)
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if key in seen:
            continue
        seen.add(key)
        if key in wanted:
            if not absent:
                out.append(f"{key}={wanted[key]}")
        else:
            out.append(f"{key}={value}")
    if not absent:
        out += [f"{k}={v}" for k, v in wanted.items() if k not in seen]
    return "".join(f"{line}\n" for line in out)


def _ansible_writes(text: str, wanted: dict[str, str], absent: bool) -> bool:
    """Whether Ansible rewrites the file: a wanted key's value there (its last assignment)
    differs, or, absent, the key has a value there."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")) and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    if absent:
        return any(values.get(key) for key in wanted)
    return any(values.get(key) != value for key, value in wanted.items())


def _without(text: str, wanted: dict[str, str]) -> str:
    """harden's own file with the wanted keys' lines taken out."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not ((m := _LINE.match(line)) and
                           m.group("key").replace("/", ".") in wanted))


MODULE = SysctlModule()
