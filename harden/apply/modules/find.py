"""`find`: files below directories, chosen as Ansible's find chooses them (`paths`, shell
`patterns` or regexes on the basename, `excludes`, `file_type`, `recurse`, `hidden`, `age`,
`size`), registered as `files` (path, mode, isreg/isdir/islnk, size, uid/gid, pw_name/gr_name,
mtime), `matched` and `examined`. One `find -printf` per path in the play's fact exec; the
choosing happens on the controller. Files are listed sorted by path (Ansible lists them in
directory order, which the filesystem decides)."""

from __future__ import annotations

import fnmatch
import posixpath
import re
import time

from harden.apply.facts import FIND, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed

KINDS = {"f": "file", "d": "directory", "l": "link"}
_AGE = re.compile(r"^(-?\d+)([smhdw]?)$")
_SIZE = re.compile(r"^(-?\d+)([bkmgt]?)b?$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_BYTES = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}


class FindModule(Module):
    name = "find"
    node_paths = ("paths",)
    args = (
        Arg("paths", "any", required=True),
        Arg("patterns", "any", default=[]),
        Arg("excludes", "any", default=[]),
        Arg("use_regex", "bool", default=False),
        Arg("file_type", choices=("file", "directory", "link", "any"), default="file"),
        Arg("recurse", "bool", default=False),
        Arg("hidden", "bool", default=False),
        Arg("age"),
        Arg("age_stamp", choices=("mtime",), default="mtime"),
        Arg("size"),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict):
            aliases = {"path": "paths", "name": "paths", "pattern": "patterns",
                       "exclude": "excludes", "type": "file_type"}
            args = {aliases.get(k, k): v for k, v in args.items()}
        return super().validate(args, path, line, rendered)

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FIND, p, recurse=args["recurse"]) for p in _list(args["paths"])]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        for word in ("age", "size"):
            if args[word] and not (_AGE if word == "age" else _SIZE).match(str(args[word])):
                raise TaskFailed(f"find: {word} {args[word]!r} is not a number with an "
                                 "optional unit")
        return []

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        found, examined, skipped = [], 0, []
        for top in _list(args["paths"]):
            entries = facts.listing(top, args["recurse"])
            if entries is None:
                skipped.append(top)
                continue
            examined += len(entries)
            found += [_registered(e) for e in entries if _chosen(e, args)]
        found.sort(key=lambda f: f["path"])
        out = {"files": found, "matched": len(found), "examined": examined}
        if skipped:
            out["skipped_paths"] = {p: f"'{p}' is not a directory" for p in skipped}
        return out


def _list(value) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _chosen(entry: dict, args: dict) -> bool:
    name = posixpath.basename(entry["path"])
    kind = KINDS.get(entry["kind"], "other")
    if args["file_type"] != "any" and kind != args["file_type"]:
        return False
    if name.startswith(".") and not args["hidden"]:
        return False
    patterns, excludes = _list(args["patterns"]), _list(args["excludes"])
    if patterns and not any(_match(name, p, args["use_regex"]) for p in patterns):
        return False
    if any(_match(name, p, args["use_regex"]) for p in excludes):
        return False
    return _age_ok(entry, args["age"]) and _size_ok(entry, args["size"], kind)


def _match(name: str, pattern: str, regex: bool) -> bool:
    return bool(re.match(pattern + r"\Z", name)) if regex else fnmatch.fnmatch(name, pattern)


def _age_ok(entry: dict, age) -> bool:
    """Ansible: a positive age selects files at least that old, a negative one younger."""
    if not age:
        return True
    number, unit = _AGE.match(str(age)).groups()
    seconds = int(number) * _UNITS[unit]
    elapsed = time.time() - entry["mtime"]
    return elapsed >= abs(seconds) if seconds >= 0 else elapsed <= abs(seconds)


def _size_ok(entry: dict, size, kind: str) -> bool:
    if not size or kind != "file":
        return True
    number, unit = _SIZE.match(str(size).lower()).groups()
    limit = int(number) * _BYTES[unit]
    return entry["size"] >= limit if limit >= 0 else entry["size"] <= abs(limit)


def _registered(entry: dict) -> dict:
    kind = KINDS.get(entry["kind"], "other")
    return {"path": entry["path"], "mode": f"{entry['mode']:04o}", "isreg": kind == "file",
            "isdir": kind == "directory", "islnk": kind == "link", "size": entry["size"],
            "uid": entry["uid"], "gid": entry["gid"], "pw_name": entry["pw_name"],
            "gr_name": entry["gr_name"], "mtime": entry["mtime"]}


MODULE = FindModule()
