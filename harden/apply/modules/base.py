"""The module contract: argument schema → facts needed → plan (list of Change) → apply script.

A module never talks to a host. It declares what it must know (`facts_needed`), decides from
those facts what has to change (`plan`, empty list = nothing to do) and describes each change as
a shell snippet. The runner batches the snippets of a task into one exec
(`apply_script`), so a task costs one round trip however many files it touches, and check mode
is simply "plan, print, do not run the script".
"""

from __future__ import annotations

import base64
import copy
import difflib
import hashlib
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from harden.errors import InputError
from harden.node import limits
from harden.apply.facts import ConfigMapState, Facts, FactRequest, FileState
from harden.node.paths import BACKUP_ROOT
from harden.node.failure import NODE_FAILURE
from harden.node.configmap import CONFIGMAP_APPLY_SH
from harden.node.record import HB_RECORD
from harden.runs.journal import RUN_ID

REDACTED = "<redacted: secret content>"
_MODE = re.compile(r"^0?[0-7]{3,4}$")
ACCOUNT_ARGS = ("owner", "group")         # any module's arguments naming a user / group


class TaskFailed(Exception):
    """The task cannot be carried out on this host (an assert failed, a flag names a file the
    pod cannot see, ...). The runner marks the host failed and rolls it back."""


@dataclass(frozen=True)
class Arg:
    """One module argument: type is one of str, int, number, bool, list, dict, mode, any."""

    name: str
    type: str = "str"
    required: bool = False
    choices: tuple = ()
    default: Any = None


@dataclass
class PlanContext:
    """What a plan may use besides facts: the task's variables, template search path, mode."""

    vars: dict = field(default_factory=dict)
    template_dirs: list[str] = field(default_factory=list)
    check_mode: bool = False
    as_found: bool = False      # --check-mode ansible: facts are the node as found, not as
                                # the earlier tasks of the run leave it
    predicting: bool = False    # the predictive --check (not a task's own check_mode: true,
                                # not --check-mode ansible): the plan says what the run will do


@dataclass
class Change:
    """One difference the task will make on the host.

    path: the file it writes (None for service actions / commands). diff: unified diff,
    already redacted when the content is secret. script: sh snippet using the helpers in
    APPLY_PRELUDE; it carries file content inline (base64 here-document), so it may hold a
    secret and must never be logged or journaled. after: the path's state once applied
    (the runner feeds it to Facts.set_file so later tasks plan on it). secret: `path` holds
    secret content, so the run records it and a later rollback never shows its content (the
    module knows this; an argument name does not, e.g. `encryption_key`'s `secret` is the key).
    counted: False for an action that runs on the node but that Ansible's module never reports
    as changed (systemd's daemon-reload), so the task's status and notifications match Ansible's.
    """

    summary: str
    script: str
    path: str | None = None
    diff: str = ""
    after: FileState | None = None
    sysctl: tuple[str, str] | None = None
    rewrites: bool = False      # new bytes in `path` (not only mode/owner): a pod restarts
    secret: bool = False
    configmap: ConfigMapState | None = None     # a ConfigMap as this change leaves it
    undo: tuple | None = None   # harden.apply.rollback.Restart's fields: what a rollback runs
    unit: tuple[str, dict] | None = None    # a unit's systemctl view once applied
    link: tuple[str, str] | None = None     # a symlink this change creates (path, target)
    removes: bool = False       # `path` is gone once applied
    counted: bool = True        # False: carried out, but not a change (Ansible does not count it)
    mounted: tuple[str, str | None] | None = None   # (mount point, its mounts line or None)

    def __post_init__(self) -> None:
        """Every change's path passes here (paths a script only finds on the node are checked
        there, by hb_save): the node's backup index holds one path per line after five
        tab-separated fields, so a tab or newline in a path would make another path pass for
        backed up (and a rollback never put it back)."""
        for path in (self.path, *(self.link or ())):
            if path is not None and ("\t" in path or "\n" in path):
                raise TaskFailed(f"{path!r} holds a tab or newline; harden's backup index "
                                 "cannot record it, so it is not changed")

    def record_in(self, facts: Facts) -> None:
        """Update facts to what this change leaves behind (used in check mode as well)."""
        if self.path is not None and (self.after is not None or self.removes):
            facts.set_file(self.path, self.after)
        if self.configmap is not None:
            facts.set_configmap(self.configmap)
        if self.link is not None:
            facts.links[self.link[0]] = self.link[1]
        if self.sysctl is not None:
            facts.set_sysctl(*self.sysctl)
        if self.unit is not None:
            facts.set_unit(*self.unit)
        if self.mounted is not None and facts.mount_table is not None:
            facts.mount_table["M"] = replace_mount(facts.mount_table.get("M", ""), *self.mounted)


def replace_mount(table: str, point: str, line: str | None) -> str:
    """/proc/self/mounts text with `point`'s lines replaced by `line` (None: unmounted)."""
    kept = [row for row in table.splitlines(keepends=True)
            if len(row.split()) < 2 or row.split()[1] != point]
    return "".join(kept) + (line + "\n" if line else "")


class Module:
    """Base class: subclasses set `name`, `args` and implement facts_needed and plan."""

    name: str = ""
    args: tuple[Arg, ...] = ()
    check_mode_safe: bool = True     # False: skipped in --check unless the task says otherwise
    node_paths: tuple[str, ...] = ()  # arguments Ansible types `path`: `~user` expanded on the node

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return []

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        raise NotImplementedError

    def report(self, args: dict, variables: dict) -> str:
        """What the task's output line says besides its status (debug's message)."""
        return ""

    def variables_set(self, args: dict) -> dict:
        """Variables the task defines for this host for the rest of the run (set_fact)."""
        return {}

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        """What `register` keeps besides changed/failed/changes: facts a later play, or
        another host through `hostvars`, may judge (never secret content)."""
        return {}

    def validate(self, args: Any, path: str | None = None, line: int | None = None,
                 rendered: bool = True) -> dict:
        """Check names, types, choices; fill defaults. Before templating (`rendered` False)
        values holding Jinja are not type-checked yet."""
        return validate_args(self, args, path, line, rendered)


def validate_args(module: Module, args: Any, path, line, rendered: bool) -> dict:
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise InputError(f"module '{module.name}' takes a mapping of arguments", path, line)
    specs = {a.name: a for a in module.args}
    lines = getattr(args, "key_lines", {})
    out = {}
    for key, value in args.items():
        where = lines.get(key, line)
        if key not in specs:
            raise InputError(f"module '{module.name}' has no argument '{key}'; valid: "
                             f"{', '.join(sorted(specs))}", path, where)
        out[key] = _check_type(module.name, specs[key], value, path, where, rendered)
    for spec in module.args:
        if spec.name not in out:
            if spec.required:
                raise InputError(f"module '{module.name}' needs argument '{spec.name}'",
                                 path, line)
            out[spec.name] = copy.deepcopy(spec.default)
    return out


_BOOL_WORDS = {"yes": True, "on": True, "true": True, "1": True,
               "no": False, "off": False, "false": False, "0": False}
_PY_TYPES = {"str": str, "int": int, "bool": bool, "list": list, "dict": dict}


def _number(module: str, spec: Arg, value, path, line) -> float | int:
    """An int or float, also from a rendered string ("0.5"), never a bool."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InputError(f"{module}: '{spec.name}' must be a non-negative number, got "
                         f"{value!r}", path, line)
    return value


def _check_type(module: str, spec: Arg, value, path, line, rendered: bool):
    if value is None:
        return copy.deepcopy(spec.default)
    if not rendered and isinstance(value, str) and ("{{" in value or "{%" in value):
        return value
    if spec.type == "mode":
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o7777:
            # As Ansible: YAML reads an unquoted 0600 as the number 384, which is the mode
            # meant; an unquoted 644 is the number 644, i.e. mode 01204 (Ansible's caveat).
            value = f"{value:04o}"
        if not isinstance(value, str) or not (_MODE.match(value) or _symbolic_ok(value)):
            raise InputError(f"{module}: '{spec.name}' must be an octal mode like \"0600\" "
                             f"or a symbolic one like \"u=rw,g=r,o=\" or \"a-s\", got "
                             f"{value!r}", path, line)
        return value
    if spec.type == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if spec.type == "int" and isinstance(value, str) and value.isdigit():
        value = int(value)
    if spec.type == "bool" and isinstance(value, str) and value.lower() in _BOOL_WORDS:
        value = _BOOL_WORDS[value.lower()]      # `k=v` arguments are text, as in Ansible
    if spec.type == "number":
        return _number(module, spec, value, path, line)
    want = _PY_TYPES.get(spec.type)
    if want is not None and (not isinstance(value, want) or
                             (want is int and isinstance(value, bool))):
        raise InputError(f"{module}: '{spec.name}' must be a {spec.type}, got "
                         f"{type(value).__name__} {value!r}", path, line)
    if spec.choices and value not in spec.choices:
        raise InputError(f"{module}: '{spec.name}' must be one of "
                         f"{', '.join(map(str, spec.choices))}; got {value!r}", path, line)
    if spec.name in ACCOUNT_ARGS:
        _check_account(module, spec.name, value, path, line)
    return value


def _check_account(module: str, name: str, value: str, path, line) -> None:
    """Owners and groups are compared with the names the node reports, so "root:root" or
    "0" would differ from "root" on every run and never settle as a no-op."""
    if ":" in value:
        raise InputError(f"{module}: '{name}' takes a single name, got {value!r} (set owner "
                         f"and group as separate arguments)", path, line)
    if value.isdigit():
        raise InputError(f"{module}: '{name}' must be a name, not a numeric id ({value!r}): "
                         f"the node reports {name}s by name", path, line)


# --- diffs ---------------------------------------------------------------------------------

def is_encryption_config(content: bytes | None) -> bool:
    """Content that parses as a YAML mapping of `kind: EncryptionConfiguration`: it holds
    keys whatever the task that wrote it declared, so it is always treated as secret."""
    if not content or b"EncryptionConfiguration" not in content:
        return False
    try:
        document = limits.safe_load(content, "")
    except limits.NodeDataError:
        return True          # too odd to parse, yet names the kind: redact to be safe
    except yaml.YAMLError:
        return False
    return isinstance(document, dict) and document.get("kind") == "EncryptionConfiguration"


def text_diff(path: str, before: bytes | None, after: bytes | None, secret: bool) -> str:
    """Unified diff of a file's content; secret content never leaves as more than a marker."""
    if secret or is_encryption_config(before) or is_encryption_config(after):
        old = "" if before is None else REDACTED + "\n"
        new = "" if after is None else REDACTED + "\n"
        if before == after:
            return ""
        if old == new:
            new = REDACTED + " (changed)\n"
        return "".join(difflib.unified_diff([old] if old else [], [new] if new else [],
                                            f"a{path}", f"b{path}"))
    old_lines = _lines(before)
    new_lines = _lines(after)
    return "".join(difflib.unified_diff(old_lines, new_lines, f"a{path}", f"b{path}"))


def _lines(data: bytes | None) -> list[str]:
    if data is None:
        return []
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def meta_diff(path: str, what: str, before: str, after: str) -> str:
    return f"--- a{path}\n+++ b{path}\n-{what} {before}\n+{what} {after}\n"


# --- apply scripts -------------------------------------------------------------------------

# Shell helpers every change snippet may call. `hb_backup` saves the original of a path once
# per run under $HB/files/<path> (0700 dir) and appends "kind mode uid gid sha256 path" to
# $HB/index (kind: file, dir, absent, proc); the journal and rollback read that index.
# Every helper first resolves its path (`hb_real`, what `readlink -m` gives: symlinks followed,
# `//` and `.` folded), so a symlink is never replaced, chmod-ed or backed up itself: its target
# is, and the index names the target, which is what a rollback must put back.
# After each change, `hb_after` appends the state the path was left in to $HB/after-partial
# (same format; the last line of a path wins) and copies a file to $HB/after/<path>: a run
# killed before its commit writes no after-index, and a manual rollback of it must still see
# whether someone changed a path since (harden.apply.rollback.NodeRun.changed_since).
#
# Each helper process costs about a millisecond on a node, and a write exec touches few paths,
# so the helpers do in the shell what needs no program: the path resolution when no component
# is a link, dirname/basename, the "already backed up?" test (the index's paths are read once per
# script into $hb_seen, and every line this script adds goes there too, so a path is backed up
# once per run across the run's execs), the private umask (switched, not a subshell). So the
# helpers keep state in the script's shell: a helper must never run in a subshell, `( )` or a
# pipeline's `| while` (what it adds to $hb_seen would be lost, and a later change of the same
# path in the exec would index and copy it a second time); `hb_under` runs one for each path
# under a directory, fed from a file. A copy under files/ counts as a backup only with its index
# line (a SIGKILL between the two leaves a stray copy, which the next backup replaces).
# Durability is batched without changing its order: `hb_save` takes
# the backup and `hb_sync` makes the copy, its index line, and the after-partial lines of earlier
# changes durable in one `sync` before the path changes (a write also syncs its new content
# there, before the rename). A backup cut short by a crash before that sync is harmless: the
# original is still untouched, and a rollback verifies every copy against the index's sha256
# (hr_file) before restoring it. The last after-partial lines are made durable on exit (hn_exit).
# A change whose result is known passes it to hb_after_real, saving a hash (hb_write: the
# controller's hash of the content; hb_chmod/hb_chown right after the backup: the backup's) and
# for hb_chmod of a plain octal mode the `stat` too (the backup's owner, the mode given).
APPLY_PRELUDE = r"""set -e
LC_ALL=C; export LC_ALL
""" + NODE_FAILURE + r"""
hb_ready=; hb_dirty=; hb_sc=; hb_ap_dirty=; hb_seen=; hb_fresh=
hn_flush() { hb_sync; }
hb_real() {     # readlink -m of $1, in $hb_r; walked in the shell unless a component is a link
  case $1 in
    *//*|*/./*|*/../*|*/.|*/..|*/) hb_r=$(readlink -m -- "$1"); return;;
    /*) ;;
    *) hb_r=$(readlink -m -- "$1"); return;;
  esac
  hb_q=$1; hb_s=
  while [ -n "$hb_q" ]; do
    hb_q=${hb_q#/}; hb_c=${hb_q%%/*}; hb_s=$hb_s/$hb_c; hb_q=${hb_q#"$hb_c"}
    if [ -L "$hb_s" ]; then hb_r=$(readlink -m -- "$1"); return; fi
  done
  hb_r=$1
}
hb_parent() {   # dirname of $1, in $hb_d
  hb_d=$1
  while :; do case $hb_d in ?*/) hb_d=${hb_d%/};; *) break;; esac; done
  case $hb_d in */*) hb_d=${hb_d%/*};; *) hb_d=.; return;; esac
  while :; do case $hb_d in ?*/) hb_d=${hb_d%/};; *) break;; esac; done
  hb_d=${hb_d:-/}
}
hb_dirs() {     # the run's backup dir and index, made (and locked down) once per script
  [ -z "$hb_ready" ] || return 0
  [ -d "$HB" ] || mkdir -p "$HB"
  chmod 0700 "$HB_ROOT" "$HB"
  [ -f "$HB/index" ] || hb_private_file "$HB/index"     # 0600, subdirectories 0700
  hb_seen='
'
  if [ -s "$HB/index" ]; then hb_seen="$hb_seen$(cut -s -f6- -- "$HB/index")
"; fi
  hb_ready=1
}
hb_backup() {   # leaves the resolved path in $hb_p; its backup is durable when it returns
  hb_save "$1"; hb_sync
}
hb_save() {     # hb_backup, not yet durable: the caller runs hb_sync before changing $hb_p
  [ -z "$hb_sc" ] || hb_sync
  hb_real "$1"; hb_p=$hb_r; hb_fresh=
  hn_where "$HB_ROOT"
  hb_dirs
  case $hb_seen in *"
$hb_p
"*) return 0;; esac
  case $hb_p in *"
"*|*"	"*) echo "$1 resolves to a path holding a tab or newline; the backup index cannot" \
      "record it: not changed" >&2; exit 1;; esac
  hb_seen="$hb_seen$hb_p
"
  # a copy with no index line was cut off before its line (SIGKILL: no EXIT trap): not a backup
  [ ! -f "$HB/files$hb_p" ] || rm -f -- "$HB/files$hb_p"
  if [ -f "$hb_p" ] && [ "${hb_p#/proc/}" = "$hb_p" ]; then
    [ -d "$HB/files${hb_p%/*}" ] || hb_private_dir "$HB/files${hb_p%/*}" "$HB/after${hb_p%/*}"
    hn_tmp="$HB/files$hb_p"         # a partial copy must not pass for a backup
    cp -p -- "$hb_p" "$HB/files$hb_p"
    hb_h=$(sha256sum < "$hb_p") || hb_h=; hb_h=${hb_h%% *}
    hb_st=$(stat --printf '%a\t%u\t%g' -- "$hb_p")
    printf 'file\t%s\t%s\t%s\n' "$hb_st" "$hb_h" "$hb_p" >> "$HB/index"
    hn_tmp=; hb_sc="$HB/files$hb_p"; hb_fresh=$hb_h
  elif [ -d "$hb_p" ]; then
    stat --printf 'dir\t%a\t%u\t%g\t-\t%n\n' -- "$hb_p" >> "$HB/index"
  elif [ -f "$hb_p" ]; then
    [ -d "$HB/files${hb_p%/*}" ] || hb_private_dir "$HB/files${hb_p%/*}"
    cat -- "$hb_p" > "$HB/files$hb_p"
    printf 'proc\t-\t-\t-\t-\t%s\n' "$hb_p" >> "$HB/index"
  else
    printf 'absent\t-\t-\t-\t-\t%s\n' "$hb_p" >> "$HB/index"
  fi
  hb_dirty=1
}
hb_sync() {     # FILES...: durable together with the backup taken and the change lines so far
  [ -n "$hb_dirty$hb_ap_dirty$*" ] || return 0
  if [ -n "$hb_dirty" ]; then set -- "$HB/index" ${hb_sc:+"$hb_sc"} "$@"; fi
  if [ -n "$hb_ap_dirty" ]; then set -- "$HB/after-partial" "$@"; fi
  sync -- "$@"; hb_dirty=; hb_sc=; hb_ap_dirty=
}
hb_after() { hb_real "$1"; hb_after_real "$hb_r"; }
hb_after_real() {   # PATH [SHA256 [MODE UID GID]]: hb_after of a path as given: resolved
                    # already (hb_backup's $hb_p), or a link the run re-points, recorded as
                    # itself; SHA256 and MODE UID GID (tab-separated): known to the caller
  [ -f "$HB/after-partial" ] || hb_private_file "$HB/after-partial"
  hb_record "$1" "$HB/after-partial" "${2:-}" "${3:-}"; hb_ap_dirty=1
}
hb_mkdirs() {
  [ -d "$1" ] && return 0
  hb_parent "$1"; hb_mkdirs "$hb_d"
  hb_backup "$1"; mkdir -m 0755 -- "$hb_p"; hb_after_real "$hb_p"
}
hb_write() {    # PATH MODE OWNER GROUP [SHA256 of the content]; the content (base64) on stdin
  hb_parent "$1"; hb_mkdirs "$hb_d"; hb_real "$1"; hb_w=$hb_r
  hb_parent "$hb_w"; hb_wd=$hb_d; hb_mkdirs "$hb_wd"; hb_save "$hb_w"
  t="$hb_wd/.${hb_w##*/}.harden-tmp"
  hn_where "$hb_wd"; hn_tmp="$t"
  if [ -e "$t" ] || [ -L "$t" ]; then rm -f -- "$t"; fi
  hb_private_um; umask 077
  base64 -d > "$t" || { hb_rc=$?; umask "$hb_um"; return "$hb_rc"; }
  umask "$hb_um"
  # owner and group first, then the mode (Ansible's order): a chown clears setuid/setgid
  if [ "$3" = - ] || [ "$4" = - ]; then       # one kept: the base's (the file's, else root's)
    if [ -e "$hb_w" ]; then chown --reference="$hb_w" -- "$t"; else chown 0:0 -- "$t"; fi
  fi
  if [ "$3" != - ] && [ "$4" != - ]; then chown "$3:$4" -- "$t"
  elif [ "$3" != - ]; then chown "$3" -- "$t"
  elif [ "$4" != - ]; then chgrp "$4" -- "$t"; fi
  case $2 in [0-7][0-7][0-7]|[0-7][0-7][0-7][0-7]) ;;    # an absolute mode replaces the base's
    *) if [ -e "$hb_w" ]; then chmod --reference="$hb_w" -- "$t"; else chmod 0644 -- "$t"; fi;;
  esac
  [ "$2" = - ] || chmod "$2" -- "$t"
  hb_sync "$t"; mv -f -- "$t" "$hb_w"; hn_tmp=
  hb_after_real "$hb_w" "${5:-}"; hb_sync "$hb_wd"
}
hb_backup_link() {  # a link the run re-points: the link itself, not its target, is recorded
  [ -z "$hb_sc" ] || hb_sync
  hn_where "$HB_ROOT"
  hb_dirs
  case $hb_seen in *"
$1
"*) hb_sync; return 0;; esac
  hb_seen="$hb_seen$1
"
  hb_record "$1" "$HB/index"; hb_dirty=1; hb_sync
}
hb_chmod() {     # a file just backed up keeps its content and owner, and a plain octal
                # mode is exactly what chmod leaves on a regular file: nothing to look up
  hb_backup "$1"; chmod "$2" -- "$hb_p"
  case $hb_fresh:$2 in
    ?*:[0-7][0-7][0-7]|?*:0[0-7][0-7][0-7])
      hb_m=$2; while :; do case $hb_m in 0?*) hb_m=${hb_m#0};; *) break;; esac; done
      hb_after_real "$hb_p" "$hb_fresh" "$hb_m	${hb_st#*	}";;
    *) hb_after_real "$hb_p" "$hb_fresh";;
  esac
}
hb_chown() {
  hb_backup "$1"; chown "$2" -- "$hb_p"; hb_after_real "$hb_p" "$hb_fresh"
}
hb_mkdir() {
  hb_parent "$1"; hb_mkdirs "$hb_d"; hb_backup "$1"; mkdir -m "$2" -- "$hb_p"
  hb_after_real "$hb_p"
}
hb_proc() { hb_backup "$1"; printf '%s\n' "$2" > "$1"; hb_after "$1"; }
hb_under() {    # HELPER SRC DEST: HELPER DEST/<p> for each path p under SRC, in this shell
  hb_dirs; hb_l="$HB/under.list"
  (cd -- "$2" && find . -mindepth 1) > "$hb_l"
  while IFS= read -r hb_s; do "$1" "$3/${hb_s#./}"; done < "$hb_l"
  rm -f -- "$hb_l"
}
""" + HB_RECORD + CONFIGMAP_APPLY_SH


def apply_script(changes: list[Change], run_id: str, backup_root: str = BACKUP_ROOT) -> str:
    """One sh script applying `changes` in order, each path backed up before it is touched.

    Feed it to `sh -s` on the node's STDIN (never as `sh -c` argv: it may carry secret
    content, and argv is visible in `ps` to every user of the node).
    """
    if not RUN_ID.match(run_id):
        raise ValueError(f"bad run id {run_id!r}")
    head = f"HB_ROOT={shlex.quote(backup_root)}\nHB=\"$HB_ROOT\"/{shlex.quote(run_id)}\n"
    # ConfigMap changes first, while the API server still answers: a manifest written in the
    # same script restarts it (or etcd). Their content never depends on the node's files.
    changes = [c for c in changes if c.configmap is not None] + \
        [c for c in changes if c.configmap is None]
    later = _superseded(changes)
    return APPLY_PRELUDE + head + "".join(
        (f"hb_backup {shlex.quote(posixpath.normpath(c.path))}" if i in later else
         c.script.rstrip("\n")) + "\n" for i, c in enumerate(changes))


def _superseded(changes: list[Change]) -> set[int]:
    """Content writes that a later write in the same script replaces again: only the last one
    is written. The kubelet watches the static-pod directory, so each intermediate manifest
    would restart the pod once more (three tasks of one play editing kube-apiserver.yaml would
    be three restarts). The skipped ones still back the path up first. Only writes keeping the
    file's mode/owner/group qualify: a skipped explicit mode would otherwise be lost."""
    last: dict[str, int] = {}
    for index, change in enumerate(changes):
        if change.path and change.rewrites:
            last[change.path] = index
    keeps_metadata = {i for i, c in enumerate(changes) if c.path and re.match(
        re.escape(f"hb_write {shlex.quote(posixpath.normpath(c.path))} - - - ") +
        r"[0-9a-f]{64} <<", c.script)}
    return {i for i, c in enumerate(changes) if c.path and c.rewrites and last[c.path] != i
            and i in keeps_metadata and last[c.path] in keeps_metadata}


def write_snippet(path: str, content: bytes, mode: str | None, owner: str | None,
                  group: str | None) -> str:
    """Atomic replace of `path` by `content`. Mode/owner/group not given ('-') are kept from
    the existing file; a new file gets 0644 root:root. The content's sha256 goes along: the
    node records the state the write left without hashing the file again."""
    m, o, g = mode or "-", owner or "-", group or "-"
    encoded = base64.encodebytes(content).decode()
    target = shlex.quote(posixpath.normpath(path))
    return (f"hb_write {target} {shlex.quote(m)} {shlex.quote(o)} "
            f"{shlex.quote(g)} {hashlib.sha256(content).hexdigest()} "
            f"<<'HARDEN_EOF'\n{encoded}HARDEN_EOF")


def parse_mode(mode: str, current: int | None = None, directory: bool = False) -> int:
    """An octal mode, or a symbolic one (chmod's `u=rw,g-w,a-s`) applied to `current` as
    Ansible applies it: to the path's mode now, or to a new path's mode (0644 for a file,
    0755 for a directory: what the node's 022 umask gives) when it does not exist yet."""
    if _MODE.match(mode):
        return int(mode, 8)
    if current is None:
        current = 0o755 if directory else 0o644
    return symbolic_mode(mode, current, directory)


# chmod's symbolic modes, as Ansible's module_utils applies them (AnsibleModule
# _symbolic_mode_to_octal): clauses "who op perms [op perms...]" joined by commas; no `who`
# means all three but with the umask's bits left alone (harden takes the usual 022).
_WHO = re.compile(r"^([ugo]*|a)$")
_PERMS = re.compile(r"^[rwxXstugo]*$")
_OPERATOR = re.compile(r"[+=-]")
UMASK = 0o022
_BITS = {"u": {"r": 0o400, "w": 0o200, "x": 0o100, "s": 0o4000, "t": 0},
         "g": {"r": 0o040, "w": 0o020, "x": 0o010, "s": 0o2000, "t": 0},
         "o": {"r": 0o004, "w": 0o002, "x": 0o001, "s": 0, "t": 0o1000}}
_CLASS = {"u": 0o4700, "g": 0o2070, "o": 0o1007}         # what `=` replaces per class
_SHIFT = {"u": 6, "g": 3, "o": 0}


def _symbolic_ok(mode: str) -> bool:
    try:
        symbolic_mode(mode, 0o644, False)
    except ValueError:
        return False
    return True


def symbolic_mode(mode: str, current: int, directory: bool) -> int:
    """The mode `current` becomes under symbolic `mode` (ValueError when it is not one)."""
    new = current & 0o7777
    for clause in mode.split(","):
        operators = _OPERATOR.findall(clause)
        parts = _OPERATOR.split(clause)
        who = parts.pop(0)
        if not operators or not _WHO.match(who):
            raise ValueError(f"bad symbolic permission for mode: {clause}")
        umask = UMASK if who == "" else 0
        users = "ugo" if who in ("", "a") else who
        for operator, perms in zip(operators, parts):
            if not _PERMS.match(perms):
                raise ValueError(f"bad symbolic permission for mode: {clause}")
            for user in users:
                bits = _perm_bits(user, perms, new, directory, umask)
                if operator == "=":
                    new = (new & ~_CLASS[user] & 0o7777) | bits
                elif operator == "+":
                    new |= bits
                else:
                    new &= ~bits & 0o7777
    return new


def _perm_bits(user: str, perms: str, previous: int, directory: bool, umask: int) -> int:
    """The bits of `perms` for one class (`X`: x only for a directory or a path already
    executable by someone; `u`/`g`/`o`: copy that class's current bits)."""
    bits = 0
    for perm in perms:
        if perm in "rwx":
            bits |= _BITS[user][perm] & ~umask
        elif perm in "st":
            bits |= _BITS[user][perm]
        elif perm == "X":
            if directory or previous & 0o111:
                bits |= _BITS[user]["x"]
        else:
            bits |= ((previous >> _SHIFT[perm]) & 0o7) << _SHIFT[user]
    return bits


def format_mode(mode: int) -> str:
    return f"{mode:04o}"




def plan_write(path: str, content: bytes, existing: FileState | None, mode: str | None,
               owner: str | None, group: str | None, secret: bool) -> list[Change]:
    """The change (if any) that makes `path` hold `content` with the given mode/owner/group.
    Content equal → only metadata is fixed, without rewriting the file."""
    if existing is not None and existing.kind != "file":
        raise TaskFailed(f"{path} exists and is not a regular file")
    if mode is not None:
        mode = format_mode(parse_mode(mode, existing.mode if existing else None))
    after = FileState(path, "file",
                      parse_mode(mode) if mode else (existing.mode if existing else 0o644),
                      owner or (existing.owner if existing else "root"),
                      group or (existing.group if existing else "root"), content)
    if existing is not None and existing.content == content:
        return plan_metadata(existing, after.mode, after.owner, after.group, secret)
    what = "create" if existing is None else "update"
    return [Change(summary=f"{what} {path}" + (" (secret)" if secret else ""),
                   script=write_snippet(path, content, mode, owner, group), path=path,
                   diff=text_diff(path, existing.content if existing else None, content, secret),
                   after=after, rewrites=True, secret=secret)]


def plan_metadata(state: FileState, mode: int | None, owner: str | None,
                  group: str | None, secret: bool = False) -> list[Change]:
    """chmod/chown of an existing path, only for what differs. `secret` marks the path's
    content as secret although this change does not write it: a rollback of the run may
    still show that content."""
    parts, script, diff = [], [], ""
    q = shlex.quote(posixpath.normpath(state.path))
    if mode is not None and mode != state.mode:
        parts.append(f"mode {format_mode(state.mode)} -> {format_mode(mode)}")
        script.append(f"hb_chmod {q} {format_mode(mode)}")
        diff += meta_diff(state.path, "mode", format_mode(state.mode), format_mode(mode))
    new_owner = owner or state.owner
    new_group = group or state.group
    if (new_owner, new_group) != (state.owner, state.group):
        parts.append(f"owner {state.owner}:{state.group} -> {new_owner}:{new_group}")
        # before the chmod: a chown clears setuid/setgid, so the mode asked must come last
        script.insert(0, f"hb_chown {q} {shlex.quote(new_owner + ':' + new_group)}")
        diff += meta_diff(state.path, "owner", f"{state.owner}:{state.group}",
                          f"{new_owner}:{new_group}")
    if not parts:
        return []
    after = FileState(state.path, state.kind, mode if mode is not None else state.mode,
                      new_owner, new_group, state.content)
    return [Change(summary=f"{state.path}: " + ", ".join(parts), script="; ".join(script),
                   path=state.path, diff=diff, after=after, secret=secret)]
