"""`community.general.pam_limits`: one `domain type item value` line in a limits file, edited
as that module does (so both tools leave the same bytes): the first matching line is rewritten
with tabs when its value differs (`use_max`/`use_min` keep the larger/smaller limit), other
lines stay byte for byte, a missing line is appended. A comment given replaces the line's
comment; none keeps it. The file is written through harden's backup and atomic write;
`backup` is accepted (harden always backs up). Values are checked as limits.conf(5) reads them.
"""

from __future__ import annotations

import re

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write
from harden.errors import InputError

ITEMS = ("core", "data", "fsize", "memlock", "nofile", "rss", "stack", "cpu", "nproc", "as",
         "maxlogins", "maxsyslogins", "priority", "locks", "sigpending", "msgqueue", "nice",
         "rtprio", "chroot")
UNLIMITED = ("unlimited", "infinity", "-1")
_SPACE = re.compile(r"\s+")


def value_problem(item: str, value: str) -> str:
    """Why limits.conf would not take `value` for `item` ('' when it does)."""
    if item in ("nice", "priority"):
        try:
            if -20 <= int(value) <= 19:
                return ""
        except ValueError:
            pass
        return f"value {value!r} for {item!r} must be a number from -20 to 19"
    if value in UNLIMITED or value.isdigit():
        return ""
    return (f"value {value!r} for {item!r} must be 'unlimited', 'infinity', -1 or a limit of "
            "0 or more")


class PamLimitsModule(Module):
    name = "pam_limits"
    args = (
        Arg("domain", required=True),
        Arg("limit_type", required=True, choices=("soft", "hard", "-")),
        Arg("limit_item", required=True, choices=ITEMS),
        Arg("value", required=True),
        Arg("use_max", "bool", default=False),
        Arg("use_min", "bool", default=False),
        Arg("backup", "bool", default=False),            # accepted: harden always backs up
        Arg("dest", default="/etc/security/limits.conf"),
        Arg("comment", default=""),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        out = super().validate(args, path, line, rendered)
        if out["use_max"] is True and out["use_min"] is True:
            raise InputError("pam_limits: use_min and use_max cannot both be set", path, line)
        value = out["value"]
        if rendered and isinstance(value, str) and value_problem(out["limit_item"], value):
            raise InputError(f"pam_limits: {value_problem(out['limit_item'], value)}",
                             path, line)
        return out

    def facts_needed(self, args: dict) -> list[FactRequest]:
        dest = args["dest"]
        return [FactRequest(FILE, dest, content=True),
                FactRequest(FILE, dest.rsplit("/", 1)[0] or "/")]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        dest = args["dest"]
        state = facts.file(dest, content=True)
        if state is None:
            parent = facts.file(dest.rsplit("/", 1)[0] or "/")
            if parent is None or parent.kind != "directory":
                raise TaskFailed(f"directory {dest.rsplit('/', 1)[0]} is not writable (check "
                                 "presence, access rights, use sudo)")
        old = state.content.decode() if state is not None else ""
        new = edit_limits(old, args, dest)
        if state is not None and new == old:
            return []
        return plan_write(dest, new.encode(), state, None, None, None, secret=False)


def _limit_line(args: dict, value: str, comment: str) -> str:
    tail = "\t#" + comment if comment else ""
    return f"{args['domain']}\t{args['limit_type']}\t{args['limit_item']}\t{value}{tail}\n"


def _new_value(args: dict, actual: str) -> str:
    """The value a matching line gets: `value`, or with use_max/use_min the larger/smaller of
    the two (an unlimited one counting as the largest)."""
    value = args["value"]
    # (the original means to exempt nice/priority but tests the limit type, so never does)
    actual_unlimited, value_unlimited = actual in UNLIMITED, value in UNLIMITED
    if args["use_max"]:
        if actual_unlimited:
            return actual
        return value if value_unlimited else str(max(int(value), int(actual)))
    if args["use_min"]:
        if actual_unlimited and value_unlimited:
            return actual
        if actual_unlimited or value_unlimited:
            return value if actual_unlimited else actual
        return str(min(int(value), int(actual)))
    return value


def edit_limits(text: str, args: dict, dest: str) -> str:
    """The file as community.general.pam_limits leaves it (its loop, line by line)."""
    out, found, comment = [], False, args["comment"] or ""
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            out.append(line)
            continue
        squeezed = _SPACE.sub(" ", line).strip()
        if not squeezed:
            out.append(line)
            continue
        fields = squeezed.split("#", 1)[0].rstrip().split(" ")
        if not comment:
            comment = line.split("#", 1)[1] if "#" in line else ""
        if len(fields) != 4:
            out.append(line)
            continue
        domain, kind, item, actual = fields
        problem = value_problem(item, actual)
        if problem:
            raise TaskFailed(f"Invalid configuration found in '{dest}': {problem}")
        if (domain, kind, item) != (args["domain"], args["limit_type"], args["limit_item"]):
            out.append(line)
            continue
        found = True
        new_value = actual if args["value"] == actual else _new_value(args, actual)
        out.append(line if new_value == actual else _limit_line(args, new_value, comment))
    if not found:
        out.append(_limit_line(args, args["value"], comment))
    return "".join(out)


MODULE = PamLimitsModule()
