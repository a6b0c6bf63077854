"""`file`: mode / owner / group of a path, a glob or a tree; or make sure a directory exists.

`mode_max` only removes bits (the CIS "600 or more restrictive" rule): a 0400 file stays 0400
under mode_max "0600", a 0644 one becomes 0600. When recursing, modes apply to regular files
only, since taking the x bit from a directory would make the tree unreadable.

`keep_owners` leaves the owner and group of paths whose user or group is one of those names as
they are (modes still tighten): kubeadm's rootless control plane (feature gate
RootlessControlPlane) runs each component as its own user (kubeadm-etcd, kubeadm-kas,
kubeadm-kcm, kubeadm-ks) owning its keys, kubeconfig and data, and gives sa.key to the group
kubeadm-sa-key-readers; a chown to root would stop those components at their next start, and so
would taking the group's read bit from sa.key: only "other" bits are taken from such paths.
"""

from __future__ import annotations

import fnmatch
import posixpath
import shlex

from harden.apply.facts import FILE, GLOB, FactRequest, Facts, FileState
from harden.apply.modules.base import (Arg, Change, Module, PlanContext, TaskFailed, parse_mode,
                                 plan_metadata)

_GLOB_CHARS = set("*?[")


class FileModule(Module):
    name = "file"
    args = (
        Arg("path", required=True),
        Arg("state", choices=("file", "directory"), default="file"),
        Arg("mode", "mode"),
        Arg("mode_max", "mode"),
        Arg("owner"),
        Arg("group"),
        Arg("recurse", "bool", default=False),
        Arg("match"),
        Arg("missing_ok", "bool", default=False),
        Arg("keep_owners", "list", default=[]),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        path = args["path"]
        if _GLOB_CHARS & set(path) or args["recurse"]:
            return [FactRequest(GLOB, path, recurse=args["recurse"])]
        return [FactRequest(FILE, path)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        if args["mode"] and args["mode_max"]:
            raise TaskFailed("file: give either mode or mode_max, not both")
        path = args["path"]
        if not path.startswith("/"):
            raise TaskFailed(f"file: path must be absolute: {path}")
        if _GLOB_CHARS & set(path) or args["recurse"]:
            states = facts.glob(path, recurse=args["recurse"])
            if not states and not args["missing_ok"]:
                raise TaskFailed(f"file: nothing matches {path}")
            return [c for s in states if _selected(s, args) for c in _fix(s, args)]
        state = facts.file(path)
        if state is None:
            if args["state"] == "directory":
                return [_mkdir(path, args)]
            if args["missing_ok"]:
                return []
            raise TaskFailed(f"file: {path} does not exist (missing_ok: true to skip it)")
        if args["state"] == "directory" and state.kind != "directory":
            raise TaskFailed(f"file: {path} exists and is not a directory")
        return _fix(state, args)


def _selected(state: FileState, args: dict) -> bool:
    return not args["match"] or fnmatch.fnmatchcase(posixpath.basename(state.path), args["match"])


def _fix(state: FileState, args: dict) -> list[Change]:
    kept = bool({state.owner, state.group} & set(args["keep_owners"] or []))
    mode = None
    if state.kind == "file" or not args["recurse"]:
        if args["mode"] and not kept:
            mode = parse_mode(args["mode"])
        elif args["mode_max"]:
            # a kept path may be shared through its group (sa.key): only "other" bits go
            mode = state.mode & (parse_mode(args["mode_max"]) | (0o7770 if kept else 0))
    if kept:
        return plan_metadata(state, mode, None, None)
    return plan_metadata(state, mode, args["owner"], args["group"])


def _mkdir(path: str, args: dict) -> Change:
    mode = args["mode"] or "0755"
    script = f"hb_mkdir {shlex.quote(path)} {mode}"
    owner, group = args["owner"] or "root", args["group"] or "root"
    script += f"; chown {shlex.quote(owner + ':' + group)} -- {shlex.quote(path)}"
    return Change(summary=f"create directory {path} ({mode} {owner}:{group})", script=script,
                  path=path, diff=f"--- /dev/null\n+++ b{path}/\n+directory {mode} "
                                  f"{owner}:{group}\n",
                  after=FileState(path, "directory", parse_mode(mode), owner, group))


MODULE = FileModule()
