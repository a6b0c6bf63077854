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

from harden.apply.facts import FILE, GLOB, LINK, FactRequest, Facts, FileState
from harden.apply.modules.base import (Arg, Change, Module, PlanContext, TaskFailed, format_mode,
                                       parse_mode, plan_metadata, write_snippet)

_GLOB_CHARS = set("*?[")


class FileModule(Module):
    name = "file"
    node_paths = ("path", "src")
    args = (
        Arg("path", required=True),
        Arg("state", choices=("file", "directory", "absent", "touch", "link"), default="file"),
        Arg("src"),
        Arg("access_time", choices=("now", "preserve"), default="now"),
        Arg("modification_time", choices=("now", "preserve"), default="now"),
        Arg("mode", "mode"),
        Arg("mode_max", "mode"),
        Arg("owner"),
        Arg("group"),
        Arg("recurse", "bool", default=False),
        Arg("match"),
        Arg("missing_ok", "bool", default=False),
        Arg("keep_owners", "list", default=[]),
        Arg("force", "bool", default=False),
        Arg("follow", "bool", default=True),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        """Besides the arguments, whether `state` was given: Ansible takes an omitted state
        from the path as it is (a symlink's is `link`), which matters with `follow: false`.
        Validated arguments may come back here once rendered: the mark is kept then."""
        given = None
        if isinstance(args, dict) and "state_given" in args:
            given = args["state_given"]
            args = {k: v for k, v in args.items() if k != "state_given"}
        out = super().validate(args, path, line, rendered)
        out["state_given"] = given if given is not None else \
            isinstance(args, dict) and args.get("state") is not None
        return out

    def facts_needed(self, args: dict) -> list[FactRequest]:
        path = args["path"]
        wanted = self._facts_needed(args)
        if not args["follow"] and not (_GLOB_CHARS & set(path) or args["recurse"]):
            wanted.append(FactRequest(LINK, path))          # is it a symlink itself?
        return wanted

    def _facts_needed(self, args: dict) -> list[FactRequest]:
        path = args["path"]
        if args["state"] in ("absent", "touch", "link"):
            return [FactRequest(FILE, path), FactRequest(LINK, path)] + \
                ([FactRequest(GLOB, path, recurse=True)] if args["state"] in ("absent", "link")
                 else []) + ([FactRequest(FILE, link_source(path, args["src"]))]
                             if args["state"] == "link" and args["src"] else [])
        if _GLOB_CHARS & set(path) or args["recurse"]:
            return [FactRequest(GLOB, path, recurse=args["recurse"])]
        return [FactRequest(FILE, path)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        if args["mode"] and args["mode_max"]:
            raise TaskFailed("file: give either mode or mode_max, not both")
        if args["mode_max"] and not args["mode_max"].lstrip("0").isdigit() and \
                args["mode_max"].strip("0"):
            raise TaskFailed("file: mode_max takes an octal mode (a symbolic mode already says "
                             "which bits go: `mode: go-rwx`)")
        path = args["path"]
        if not path.startswith("/"):
            raise TaskFailed(f"file: path must be absolute: {path}")
        if not args["follow"] and _nofollow_link(path, args, facts):
            return []
        if args["state"] in STATE_PLANS:
            if _GLOB_CHARS & set(path) or args["recurse"]:
                raise TaskFailed(f"file: state {args['state']} takes one path (no glob, no "
                                 "recurse)")
            return STATE_PLANS[args["state"]](path, args, facts)
        if args["src"]:
            raise TaskFailed("file: src is only for state link")
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
            mode = parse_mode(args["mode"], state.mode, state.kind == "directory")
        elif args["mode_max"]:
            # a kept path may be shared through its group (sa.key): only "other" bits go
            mode = state.mode & (parse_mode(args["mode_max"]) | (0o7770 if kept else 0))
    if kept:
        return plan_metadata(state, mode, None, None)
    return plan_metadata(state, mode, args["owner"], args["group"])


def _mkdir(path: str, args: dict) -> Change:
    mode = format_mode(parse_mode(args["mode"] or "0755", None, directory=True))
    # made meanwhile (a kubelet creates a DirectoryOrCreate hostPath once an earlier write of
    # the play restarted the pod): given the mode then, as Ansible's live check would
    q = shlex.quote(path)
    script = f"if [ -d {q} ]; then hb_chmod {q} {mode}; else hb_mkdir {q} {mode}; fi"
    owner, group = args["owner"] or "root", args["group"] or "root"
    # hb_chown records the directory again after the chown: the record is what the run left
    script += f"; hb_chown {q} {shlex.quote(owner + ':' + group)}"
    return Change(summary=f"create directory {path} ({mode} {owner}:{group})", script=script,
                  path=path, diff=f"--- /dev/null\n+++ b{path}/\n+directory {mode} "
                                  f"{owner}:{group}\n",
                  after=FileState(path, "directory", parse_mode(mode), owner, group))


def _absent(path: str, args: dict, facts: Facts) -> list[Change]:
    """Remove a file or an empty directory, backed up first so a rollback puts it back. A
    symlink or a directory with contents is refused: a rollback could not restore it."""
    if facts.link(path) is not None:
        raise TaskFailed(f"file: {path} is a symlink; harden removes regular files and empty "
                         "directories only (a rollback restores those)")
    state = facts.file(path)
    if state is None:
        return []
    if state.kind == "directory":
        inside = [s.path for s in facts.glob(path, recurse=True) if s.path != state.path]
        if inside:
            raise TaskFailed(f"file: {path} is a directory with {len(inside)} entries; harden "
                             "removes empty directories only (remove what is inside first)")
        remove = "rmdir"
    elif state.kind == "file":
        remove = "rm -f"
    else:
        raise TaskFailed(f"file: {path} is neither a regular file nor a directory")
    q = shlex.quote(path)
    what = "directory" if state.kind == "directory" else "file"
    return [Change(summary=f"remove {path}", script=f"hb_backup {q}; {remove} -- {q}; "
                   f"hb_after {q}", path=path, after=None, removes=True,
                   diff=f"--- a{path}\n+++ /dev/null\n-{what} {format_state(state)}\n")]


def _touch(path: str, args: dict, facts: Facts) -> list[Change]:
    """Create an empty file, or update an existing one's times (changed each time, as in
    Ansible, unless both times are `preserve`); mode/owner/group as given."""
    if facts.link(path) is not None:
        raise TaskFailed(f"file: {path} is a symlink; touch it through its target")
    state = facts.file(path)
    mode = args["mode"] and format_mode(parse_mode(args["mode"], state and state.mode))
    if state is None:
        owner, group = args["owner"] or "root", args["group"] or "root"
        return [Change(summary=f"touch {path} (create)", path=path, rewrites=True,
                       script=write_snippet(path, b"", mode, owner, group),
                       diff=f"--- /dev/null\n+++ b{path}\n+file {mode or '0644'} "
                            f"{owner}:{group}\n",
                       after=FileState(path, "file", parse_mode(mode or "0644"), owner, group,
                                       b""))]
    changes = plan_metadata(state, parse_mode(mode) if mode else None, args["owner"],
                            args["group"])
    if (args["access_time"], args["modification_time"]) != ("preserve", "preserve"):
        q = shlex.quote(path)
        changes.append(Change(summary=f"touch {path}", script=f"hb_backup {q}; touch -- {q}; "
                              f"hb_after {q}", path=path))
    return changes


def _link(path: str, args: dict, facts: Facts) -> list[Change]:
    """A symlink to `src`, as Ansible's file state=link: a missing `src` fails unless
    `force`; an existing file or empty directory is replaced only with `force` (backed up
    first, so a rollback puts it back in place of the link); an existing link to somewhere
    else is re-pointed, with or without `force`, as Ansible does (the old link is recorded,
    so a rollback points it back). Without `src`, an existing link keeps its target. Then
    mode/owner/group apply to what the link points to (`follow: true`, Ansible's default),
    and not at all when that target does not exist (Ansible warns and sets nothing)."""
    current = facts.link(path)
    src = args["src"] or current
    if not src:
        raise TaskFailed("src is required for creating new symlinks")
    if "\t" in src or "\n" in src:
        raise TaskFailed(f"file: link target {src!r} holds a tab or newline; harden's backup "
                         "index cannot record it")
    # without src, the existing link's target is what FILE gathered for `path` (stat -L)
    source = link_source(path, src) if args["src"] else path
    if not args["force"] and facts.file(source) is None:
        raise TaskFailed("src file does not exist, use 'force=yes' if you really want to "
                         f"create the link: {source}")
    changes = [] if current == src else [_link_change(path, src, current, args, facts)]
    target = facts.file(source)
    if target is not None:
        mode = parse_mode(args["mode"], target.mode, target.kind == "directory") \
            if args["mode"] else None
        changes += plan_metadata(target, mode, args["owner"], args["group"])
    return changes


def _link_change(path: str, src: str, current: str | None, args: dict,
                 facts: Facts) -> Change:
    """The change that makes `path` a link to `src`: new, re-pointed, or in place of a file
    or an empty directory."""
    q, qs = shlex.quote(path), shlex.quote(src)
    tmp = shlex.quote(posixpath.join(posixpath.dirname(path),
                                     f".{posixpath.basename(path)}.harden-link"))
    state = None if current is not None else facts.file(path)
    if current is not None:
        script = (f"hb_backup_link {q}; rm -f -- {tmp}; ln -s -- {qs} {tmp}; "
                  f"mv -fT -- {tmp} {q}; hb_after_real {q}")
        diff = f"--- a{path}\n+++ b{path}\n-link -> {current}\n+link -> {src}\n"
    elif state is not None:
        link, diff = _replace_by_link(path, src, state, args, facts)
        script = f"hb_backup {q}; {link}; hb_after {q}"
    else:
        script = f"hb_backup {q}; ln -s -- {qs} {q}; hb_after {q}"
        diff = f"--- /dev/null\n+++ b{path}\n+link -> {src}\n"
    target = facts.file(link_source(path, src) if args["src"] else path)
    change = Change(summary=f"link {path} -> {src}", path=path, script=script, diff=diff,
                    after=target and FileState(path, target.kind, target.mode, target.owner,
                                               target.group, target.content),
                    removes=target is None)
    change.link = (path, src)
    return change


def _replace_by_link(path: str, src: str, state: FileState, args: dict,
                     facts: Facts) -> tuple[str, str]:
    """The shell that swaps a file or an empty directory for a link (force: true only)."""
    if state.kind not in ("file", "directory") or not args["force"]:
        raise TaskFailed(f"refusing to convert from {state.kind} to symlink for {path}")
    q = shlex.quote(path)
    if state.kind == "directory":
        if [s for s in facts.glob(path, recurse=True) if s.path != state.path]:
            raise TaskFailed(f"the directory {path} is not empty, refusing to convert it")
        return (f"rmdir -- {q}; ln -s -- {shlex.quote(src)} {q}",
                f"--- a{path}\n+++ b{path}\n-directory {format_state(state)}\n"
                f"+link -> {src}\n")
    tmp = shlex.quote(posixpath.join(posixpath.dirname(path),
                                     f".{posixpath.basename(path)}.harden-link"))
    return (f"rm -f -- {tmp}; ln -s -- {shlex.quote(src)} {tmp}; mv -fT -- {tmp} {q}",
            f"--- a{path}\n+++ b{path}\n-file {format_state(state)}\n+link -> {src}\n")


def link_source(path: str, src: str) -> str:
    """Where a link's `src` is, as the node resolves it (relative to the link's directory)."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(path), src))


def format_state(state: FileState) -> str:
    return f"{state.mode:04o} {state.owner}:{state.group}"


def _nofollow_link(path: str, args: dict, facts: Facts) -> bool:
    """`follow: false` on a path that is a symlink (True: the task is done, nothing to change).
    Ansible then works on the link itself: `state: file` or `directory` given fail as its module
    fails; with `state` left out (Ansible takes the link's own state) or `state: link`, `mode`
    changes nothing on Linux (there is no lchmod: Ansible's chmod of the link reaches the
    target, which it puts back at once) and `owner`/`group` would be an lchown of the link,
    which harden refuses: its backups record a link's target, not the link's own owner, so a
    rollback could not put it back. A path that is not a symlink is handled as with
    `follow: true` (the same in Ansible)."""
    if args["recurse"] or _GLOB_CHARS & set(path) or facts.link(path) is None:
        return False
    state = args["state"] if args.get("state_given", True) else "link"
    if state == "file":
        raise TaskFailed(f"file ({path}) is link, cannot continue")
    if state == "directory":
        raise TaskFailed(f"{path} already exists as a link")
    if state in ("touch", "absent"):
        return False            # as before: touch follows the link, absent refuses it
    if args["src"] and args["src"] != facts.link(path):
        return False            # re-pointing the link: the link state's own plan
    if args["owner"] or args["group"]:
        raise TaskFailed(f"file: follow: false with owner/group on the symlink {path}: harden "
                         "does not change a link's own owner (a rollback could not put it "
                         "back); drop owner/group or use follow: true for its target")
    return True


STATE_PLANS = {"absent": _absent, "touch": _touch, "link": _link}

MODULE = FileModule()
