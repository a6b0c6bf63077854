"""`copy` with `remote_src: true` of a directory, in the steps of ansible-core's copy module.

The module's rules, which this file follows one by one:
- `src` ending in `/` copies what is inside it into `dest`; without the slash, the directory
  itself is copied into `dest` (`dest/<basename of src>`), as rsync does.
- A `dest` ending in `/` whose directory is missing is created, with parents (`directory_mode`,
  else 0755; `owner`/`group`); otherwise `dest`'s parent must exist ("Destination directory
  ... does not exist").
- A tree that does not exist yet is copied whole (shutil.copytree): directories and files get
  the modes of their sources, the files the writing user (root) as owner.
- Into an existing tree only what differs goes (filecmp.dircmp): a file whose bytes differ is
  rewritten with its source's mode and keeps its owner, a missing entry is copied, anything
  else is left (an extra file in dest, a directory's mode, a file where src has a directory).
- `owner`/`group` then apply to everything in the tree; `mode` only to `dest` itself (a
  directory too: Ansible gives the top directory the files' `mode`).
- `force: false` and an existing `dest`: nothing at all.

The bytes never leave the node: the plan compares sha256 sums computed there, and each copy is a
`cp` on the node through harden's backup and atomic rename, so a rollback removes what the copy
created and puts back what it rewrote. A symlink or special file in the source tree fails the
task (Ansible's handling of them depends on `local_follow`, which harden refuses).
"""

from __future__ import annotations

import posixpath
import shlex

from harden.apply.facts import FILE, TREE, FactRequest, FileState, Facts
from harden.apply.modules.base import (Change, TaskFailed, format_mode, parse_mode,
                                       plan_metadata)

# filecmp.dircmp's default ignore list: names a merge into an existing tree never compares
DIRCMP_IGNORES = frozenset(("RCS", "CVS", "tags", ".git", ".hg", ".bzr", "_darcs",
                            "__pycache__"))


def plan_tree(args: dict, facts: Facts) -> list[Change]:
    """The changes that copy directory `src` on the node to `dest`, as Ansible's module."""
    src, dest = args["src"], args["dest"]
    changes: list[Change] = []
    if dest.endswith("/"):
        changes += _missing_parents(dest.rstrip("/") or "/", facts, args)
    dest_state = _state(facts, dest, changes)
    final = dest
    if dest_state is not None and dest_state.kind == "directory":
        final = posixpath.join(dest, posixpath.basename(src))
    final_state = _state(facts, final, changes)
    if final_state is not None and not args["force"]:
        return []
    if final_state is None and _state(facts, posixpath.dirname(final.rstrip("/")),
                                      changes) is None:
        raise TaskFailed(f"Destination directory {posixpath.dirname(final.rstrip('/'))} "
                         "does not exist")
    if dest_state is not None and dest_state.kind != "directory":
        raise TaskFailed(f"copy: src {src} is a directory and dest {dest} is not")
    top = dest if src.endswith("/") else posixpath.join(dest, posixpath.basename(src))
    changes = changes + _copy_directory(src, top, facts, args, changes)
    return changes + _final_attributes(final, facts, args, changes)


def facts_wanted(src: str, dest: str) -> list[FactRequest]:
    """What a directory copy plans from besides dest and its directory (which every copy asks
    for), in the play's one fact exec (a plain file src answers "not a directory" at the cost
    of one test)."""
    top = dest if src.endswith("/") else posixpath.join(dest, posixpath.basename(src))
    return [FactRequest(TREE, src), FactRequest(FILE, top), FactRequest(TREE, top)]


def _state(facts: Facts, path: str, changes: list[Change]) -> FileState | None:
    """`path` as the node has it once `changes` are applied."""
    path = posixpath.normpath(path)
    for change in reversed(changes):
        if change.path == path:
            return change.after
    return facts.file(path)


def _missing_parents(directory: str, facts: Facts, args: dict) -> list[Change]:
    """os.makedirs of a missing `dest/` directory, then directory_mode/owner/group on each
    directory it made."""
    missing = []
    while facts.file(directory) is None:
        missing.insert(0, directory)
        directory = posixpath.dirname(directory)
    mode = args["directory_mode"]
    return [_mkdir(path, parse_mode(mode, None, True) if mode else 0o755,
                   args["owner"], args["group"]) for path in missing]


def _mkdir(path: str, mode: int, owner: str | None, group: str | None) -> Change:
    owner, group = owner or "root", group or "root"
    q = shlex.quote(path)
    script = (f"if [ -d {q} ]; then hb_chmod {q} {format_mode(mode)}; "
              f"else hb_mkdir {q} {format_mode(mode)}; fi")
    if (owner, group) != ("root", "root"):
        script += f"; hb_chown {q} {shlex.quote(owner + ':' + group)}"
    return Change(summary=f"create directory {path} ({format_mode(mode)} {owner}:{group})",
                  script=script, path=path,
                  diff=f"--- /dev/null\n+++ b{path}/\n+directory {format_mode(mode)}\n",
                  after=FileState(path, "directory", mode, owner, group))


def _copy_file(source: str, target: str, entry: dict, existing: FileState | None) -> Change:
    """cp on the node into a temporary file beside `target`, the source's mode, the existing
    file's owner (a new file: root's), then an atomic rename; backed up first."""
    s, t = shlex.quote(source), shlex.quote(target)
    tmp = shlex.quote(posixpath.join(posixpath.dirname(target),
                                     f".{posixpath.basename(target)}.harden-tmp"))
    owner = f"--reference={t}" if existing is not None else "0:0"
    mode = format_mode(entry["mode"])
    script = (f"hb_backup {t}; hn_where {shlex.quote(posixpath.dirname(target))}; "
              f"hn_tmp={tmp}; rm -f -- {tmp}; cp -- {s} {tmp}; chown {owner} -- {tmp}; "
              f"chmod {mode} -- {tmp}; sync -- {tmp}; mv -f -- {tmp} {t}; hn_tmp=; "
              f"hb_after {t}")
    what = "create" if existing is None else "update"
    return Change(summary=f"{what} {target} (copy of {source})", script=script, path=target,
                  diff=f"--- a{target}\n+++ b{target}\n-sha256 "
                       f"{'(none)' if existing is None else 'differs'}\n+sha256 "
                       f"{entry['sha256']}\n",
                  after=FileState(target, "file", entry["mode"],
                                  existing.owner if existing else "root",
                                  existing.group if existing else "root"),
                  rewrites=True)


def _source_entries(src: str, facts: Facts) -> list[dict]:
    entries = facts.tree(src)
    if entries is None:
        raise TaskFailed(f"Source {src} not found")
    for entry in entries:
        if entry["kind"] not in ("f", "d"):
            raise TaskFailed(f"copy: {posixpath.join(src, entry['rel'])} is a "
                             f"{'symlink' if entry['kind'] == 'l' else 'special file'}; "
                             "harden copies trees of regular files and directories only")
    return entries


def _copy_directory(src: str, top: str, facts: Facts, args: dict,
                    changes: list[Change]) -> list[Change]:
    """copytree into a missing `top`, else the dircmp merge; then owner/group throughout."""
    source = _source_entries(src, facts)
    src_state = facts.file(src)
    out: list[Change] = []
    if _state(facts, top, changes) is None:
        out += _makedirs(top, src_state.mode, facts, changes)
        existing: dict[str, dict] = {}
        for entry in source:
            out.append(_create(src, top, entry))
    else:
        existing = {e["rel"]: e for e in (facts.tree(top) or [])}
        out += _merge(src, top, source, existing)
    return out + _chown_tree(top, facts, existing, out, args)


def _makedirs(top: str, mode: int, facts: Facts, changes: list[Change]) -> list[Change]:
    """os.makedirs(top): missing parents 0755, `top` itself with the source's mode."""
    missing, directory = [], posixpath.normpath(top)
    while _state(facts, directory, changes) is None:
        missing.insert(0, directory)
        directory = posixpath.dirname(directory)
    return [_mkdir(path, mode if path == missing[-1] else 0o755, None, None)
            for path in missing]


def _create(src: str, top: str, entry: dict) -> Change:
    target = posixpath.join(top, entry["rel"])
    if entry["kind"] == "d":
        return _mkdir(target, entry["mode"], None, None)
    return _copy_file(posixpath.join(src, entry["rel"]), target, entry, None)


def _differs(source: str, entry: dict, there: dict) -> bool:
    """Whether two files' contents differ, by the sums taken on the node. sha256sum escapes a
    name with a backslash or a newline, so such a file has no sum here: refused, rather than
    taken as unchanged."""
    if entry["sha256"] is None or there["sha256"] is None:
        raise TaskFailed(f"copy: cannot compare {source} with its copy: a name with a "
                         "backslash or a newline is not supported")
    return entry["sha256"] != there["sha256"]


def _merge(src: str, top: str, source: list[dict], existing: dict[str, dict]) -> list[Change]:
    """dircmp: per common directory, differing files rewritten and missing entries copied
    (a missing directory whole); names in DIRCMP_IGNORES and type clashes left alone."""
    out, copied_dirs, left = [], [], []
    for entry in source:
        rel = entry["rel"]
        if any(rel.startswith(d + "/") for d in copied_dirs):
            out.append(_create(src, top, entry))
            continue
        if set(rel.split("/")) & DIRCMP_IGNORES or any(rel.startswith(d + "/") for d in left):
            continue
        there = existing.get(rel)
        if there is not None and entry["kind"] == "d" and there["kind"] != "d":
            left.append(rel)                # dircmp's common_funny: never looked into
        elif there is None:
            out.append(_create(src, top, entry))
            if entry["kind"] == "d":
                copied_dirs.append(rel)
        elif entry["kind"] == "f" and there["kind"] == "f" and \
                _differs(posixpath.join(src, rel), entry, there):
            target = posixpath.join(top, rel)
            out.append(_copy_file(posixpath.join(src, rel), target, entry, FileState(
                target, "file", there["mode"], there["owner"], there["group"])))
    return out


def _chown_tree(top: str, facts: Facts, existing: dict[str, dict],
                made: list[Change], args: dict) -> list[Change]:
    """chown_recursive: `owner`/`group` on `top` and every entry below it (old and new)."""
    if args["owner"] is None and args["group"] is None:
        return []
    states = {posixpath.normpath(c.path): c.after for c in made if c.path and c.after}
    top = posixpath.normpath(top)
    if top not in states and facts.file(top) is not None:
        states[top] = facts.file(top)
    for rel, entry in existing.items():
        path = posixpath.join(top, rel)
        states.setdefault(path, FileState(path, {"d": "directory", "f": "file"}.get(
            entry["kind"], "other"), entry["mode"], entry["owner"], entry["group"]))
    out = []
    for path in sorted(states):
        if path == top or path.startswith(top.rstrip("/") + "/"):
            out += plan_metadata(states[path], None, args["owner"], args["group"])
    return out


def _final_attributes(final: str, facts: Facts, args: dict,
                      changes: list[Change]) -> list[Change]:
    """set_fs_attributes_if_different on `dest` (after the basename join): mode, owner, group."""
    state = _state(facts, final, changes)
    if state is None:
        return []
    mode = parse_mode(args["mode"], state.mode, state.kind == "directory") \
        if args["mode"] else None
    return plan_metadata(FileState(posixpath.normpath(final), state.kind, state.mode,
                                   state.owner, state.group), mode, args["owner"],
                         args["group"])
