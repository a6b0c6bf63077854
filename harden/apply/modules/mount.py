"""`mount` (ansible.posix.mount): an fstab entry and the live mount, as Ansible's module makes
them on Linux, with the fstab edit going through harden's backup, atomic write and rollback.

The fstab (`fstab:`, default /etc/fstab) is read as a file fact and rewritten as Ansible
rewrites it: a line whose mount point (escaped, `\\040` for a space) equals `path` gets
`src path fstype opts dump passno` when any field differs (a 4- or 5-field line always
differs, as Ansible compares its missing dump/passno as the number 0), a missing entry is
appended, comments, blank and other lines stay. Whether `path` is mounted comes from
/proc/self/mounts (the play's one fact exec).

- `present`: the fstab only.
- `mounted`: the fstab, then `mount path` when it is not mounted, or `mount -o remount path`
  when it is mounted and its fstab line changed (Ansible's rule: the live options are not
  compared). A missing mount point directory is created first.
- `unmounted`: `umount path` when mounted. `absent`: the entry removed and, when there was one,
  the path unmounted and its directory removed, as Ansible does.
- `remounted`: `mount -o remount[,opts] path`, a change every time (Ansible judges nothing).

With a non-default `fstab`, mount and remount name it (`-T FILE`), as Ansible does. Check
mode plans and reports the same changes and runs nothing; `--diff` shows no hunk for a mount
task, as Ansible shows none. Rollback restores the fstab from
its backup and then undoes the live step: a remount is repeated with the options the mount
had before the run, a mount harden made is unmounted, an unmount is mounted again with the
old source, type and options. A kernel option the old option list does not name (proc's
`hidepid` when it was 0) keeps the value the run set: `mount -o remount` only changes what it
is given.
"""

from __future__ import annotations

import shlex

from harden.apply.facts import FILE, MOUNTS, FactRequest, Facts, FileState
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write

DEFAULT_FSTAB = "/etc/fstab"
_LABELS = ("src", "name", "fstype", "opts", "dump", "passno")
_MISSING = object()       # a dump/passno field the line lacks: Ansible's int 0, never equal


class MountModule(Module):
    name = "mount"
    node_paths = ("path",)
    args = (
        Arg("path", required=True),
        Arg("state", choices=("mounted", "present", "unmounted", "absent",
                              "absent_from_fstab", "remounted"), required=True),
        Arg("src"),
        Arg("fstype"),
        Arg("opts"),
        Arg("dump", "any", default="0"),
        Arg("passno", "any", default="0"),
        Arg("fstab"),
        Arg("boot", "bool", default=True),
        Arg("backup", "bool", default=False),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict) and "name" in args and "path" not in args:
            args = {"path" if k == "name" else k: v for k, v in args.items()}
        return super().validate(args, path, line, rendered)

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(MOUNTS, "/proc/mounts"),
                FactRequest(FILE, args["fstab"] or DEFAULT_FSTAB, content=True),
                FactRequest(FILE, args["path"])]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        state = args["state"]
        if state in ("present", "mounted") and not (args["src"] and args["fstype"]):
            raise TaskFailed(f"mount: state is {state} but all of the following are missing: "
                             + ", ".join(k for k in ("src", "fstype") if not args[k]))
        entry = _entry(args)
        fstab = args["fstab"] or DEFAULT_FSTAB
        existing = facts.file(fstab, content=True)
        old = (existing.content or b"").decode() if existing else ""
        live = _live(facts.mounts().get("M", ""), args["path"])
        if state == "remounted":
            return [_remount(args, live, with_opts=True)]
        if state == "unmounted":
            return [_umount(args["path"], live)] if live else []
        if state in ("absent", "absent_from_fstab"):
            new = unset_mount(old, entry)
            if new == old:
                return []
            changes = _write(fstab, new, existing)
            return changes + _removed(args["path"], live, facts) \
                if state == "absent" else changes
        new = set_mount(old, entry)
        changes = _write(fstab, new, existing) if new != old else []
        if state == "present":
            return changes
        if live:
            return changes + ([_remount(args, live, with_opts=False)] if changes else [])
        return changes + _made_dir(args["path"], facts) + [_mount(args)]


def _entry(args: dict) -> dict:
    """The fstab fields Ansible writes, escaped as it escapes them (`noauto` when boot is
    off)."""
    opts = args["opts"] or "defaults"
    if not args["boot"] and "noauto" not in opts.split(","):
        opts += ",noauto"
    raw = {"src": args["src"] or "", "name": args["path"], "fstype": args["fstype"] or "",
           "opts": opts, "dump": str(args["dump"]), "passno": str(args["passno"])}
    return {k: escape(v) for k, v in raw.items()}


def escape(value: str) -> str:
    """Ansible's fstab escaping: backslash, space and ampersand as octal escapes."""
    return value.replace("\\", "\\134").replace(" ", "\\040").replace("&", "\\046")


def set_mount(text: str, entry: dict) -> str:
    """The fstab as Ansible's set_mount leaves it (the text unchanged when nothing differs)."""
    out, exists, changed = [], False, False
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            line += "\n"
        fields = line.split("#")[0].split()
        if not line.strip() or line.strip().startswith("#") or len(fields) not in (4, 5, 6) \
                or not _same_point(dict(zip(_LABELS, fields)), entry):
            out.append(line)
            continue
        exists = True
        found = {**{"dump": _MISSING, "passno": _MISSING}, **dict(zip(_LABELS, fields))}
        for key in ("src", "fstype", "opts", "dump", "passno"):
            if found[key] != entry[key]:
                found[key] = entry[key]
                changed = True
        out.append(_line(found) if changed else line)
    if not exists:
        out.append(_line(entry))
        changed = True
    return "".join(out) if changed else text


def unset_mount(text: str, entry: dict) -> str:
    """The fstab without `entry`'s mount point (Ansible's unset_mount: 6-field lines only)."""
    out, changed = [], False
    for line in text.splitlines(keepends=True):
        fields = line.split()
        if line.strip() and not line.strip().startswith("#") and len(fields) == 6 \
                and _same_point(dict(zip(_LABELS, fields)), entry):
            changed = True
            continue
        out.append(line)
    return "".join(out) if changed else text


def _same_point(found: dict, entry: dict) -> bool:
    """Ansible's match: the same mount point, except swap lines (`none`) of another src."""
    if found["name"] != entry["name"]:
        return False
    return not (found["name"] == "none" and found.get("fstype") == "swap"
                and found["src"] != entry["src"])


def _line(fields: dict) -> str:
    return " ".join(str(fields[k]) for k in _LABELS) + "\n"


def _live(table: str, point: str) -> list[str] | None:
    """The last /proc/self/mounts line mounted on `point` (src, target, type, opts), if any."""
    point = point.rstrip("/") or "/"
    found = None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 4 and ((fields[1].replace("\\040", " ").rstrip("/") or "/") == point):
            found = fields[:4]
    return found


def _write(fstab: str, new: str, existing: FileState | None) -> list[Change]:
    """The fstab write; no --diff hunk, as Ansible's mount returns none."""
    changes = plan_write(fstab, new.encode(), existing, None if existing else "0644", None,
                         None, secret=False)
    for change in changes:
        change.diff = ""
    return changes


def _fstab_arg(args: dict) -> str:
    fstab = args["fstab"]
    return f" -T {shlex.quote(fstab)}" if fstab and fstab != DEFAULT_FSTAB else ""


def _mount(args: dict) -> Change:
    point = args["path"]
    entry = _entry(args)
    return Change(summary=f"mount {point}",
                  script=f"mount{_fstab_arg(args)} {shlex.quote(point)}",
                  undo=("", "umount", False, point),
                  mounted=(point, f"{entry['src']} {entry['name']} {entry['fstype']} "
                                  f"{entry['opts']} 0 0"))


def _remount(args: dict, live: list[str] | None, with_opts: bool) -> Change:
    """`mount -o remount`; the rollback remounts with the options the mount has now."""
    point = args["path"]
    opts = args["opts"] or "defaults"
    extra = "," + opts if with_opts and opts != "defaults" else ""
    undo = ("", "remount", False, point, live[3]) if live else None
    return Change(summary=f"remount {point}" + (f" ({opts})" if extra else ""),
                  script=f"mount -o {shlex.quote('remount' + extra)}{_fstab_arg(args)} "
                         f"{shlex.quote(point)}",
                  undo=undo)


def _umount(point: str, live: list[str]) -> Change:
    src, _, fstype, opts = live
    return Change(summary=f"umount {point}", script=f"umount {shlex.quote(point)}",
                  mounted=(live[1], None),
                  undo=("", "mount", False, point, opts, fstype, src.replace("\\040", " ")))


def _made_dir(point: str, facts: Facts) -> list[Change]:
    """Ansible creates a missing mount point (its parents too); the rollback removes it."""
    if facts.file(point) is not None:
        return []
    q = shlex.quote(point)
    return [Change(summary=f"create {point}", script=f"hb_backup {q}\nmkdir -p -- {q}",
                   path=point,
                   after=FileState(point, "directory", 0o755, "root", "root"))]


def _removed(point: str, live: list[str] | None, facts: Facts) -> list[Change]:
    """absent: unmount, then remove the mount point directory, as Ansible does."""
    changes = [_umount(point, live)] if live else []
    state = facts.file(point)
    if state is not None:
        if state.kind != "directory":
            raise TaskFailed(f"mount: Error rmdir {point}: not a directory")
        q = shlex.quote(point)
        changes.append(Change(summary=f"remove {point}", script=f"hb_backup {q}\nrmdir -- {q}",
                              path=point, removes=True))
    return changes


MODULE = MountModule()
