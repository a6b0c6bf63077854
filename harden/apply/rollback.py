"""Putting a host back as it was before a run: after a failed verification, or on request.

The node's backup index (one line per path, written before the run first touched it) is the
only input needed, so an interrupted run or another controller's run can be undone too. Order
follows kubeadm's upgrade rollback, plus the health wait kubeadm skips:

1. restore files that existed (static-pod manifests first, so the component comes back
   as early as possible), their directories' mode/owner, and runtime sysctls; each restored
   file is checked against the sha256 recorded at backup time;
2. run the same restarts the run did (kubelet after its config changed);
3. wait until every restored static pod and the kubelet are healthy again;
4. only then put back ConfigMap keys (kubeadm's configuration, harden.node.configmap: that needs
   the API server the restored manifest runs) and remove files and directories the run created
   (a manifest's new audit policy, say), since the pod may have been using them until the old
   manifest took over.

A manual rollback first compares every path with the state the run left and refuses when
someone changed one since, showing the difference, unless forced. That state is the
`after-index` written at commit or, for a run killed before it committed, `after-partial`,
which the apply helpers append to after each change they make. It also refuses, unless forced
and even when nothing changed since, to take an encryption key away from an encryption config:
whatever the API server wrote with that key since would become unreadable.
"""

from __future__ import annotations

import base64
import posixpath
import shlex
from dataclasses import dataclass, field

from harden.apply.facts import FILE, KUBELET, FactRequest, build_script, \
    parse_output
from harden.apply.health import wait_healthy
from harden.runs.journal import BackupEntry, HostRecord, parse_index
from harden.apply.modules.wait_for_kubelet import MODULE as WAIT_KUBELET
from harden.apply.modules.wait_for_static_pod import MODULE as WAIT_STATIC_POD
from harden.node import markers
from harden.node.configmap import CONFIGMAP_RESTORE_SH, CONFIGMAP_SH
from harden.node.failure import NODE_FAILURE
from harden.node.paths import BACKUP_ROOT, DEFAULT_KUBELET_CONFIG, JOURNAL_ROOT, KUBELET_DROPIN_DIRS, \
    KUBELET_FILES, MANIFEST_DIR
from harden.ssh.session import Session

ROLLBACK_WAIT_TIMEOUT = 300
_MARK = markers.ROLLBACK


class RollbackError(Exception):
    """The host could not be restored (a command failed, a checksum differs, no backup)."""


@dataclass
class NodeRun:
    """What a node knows about one run: backups, the state it left, its record."""

    run_id: str
    entries: list[BackupEntry]
    after: dict[str, BackupEntry] | None          # None: the run never committed (interrupted)
    current: dict[str, BackupEntry]
    record: HostRecord | None
    after_partial: dict[str, BackupEntry] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return self.record is None

    @property
    def left(self) -> dict[str, BackupEntry]:
        """The state the run left each path in: the commit's after-index, else what the apply
        helpers recorded change by change. A path missing here was backed up, and maybe
        written, before the run died: the write and its after-partial line are two steps."""
        return self.after if self.after is not None else self.after_partial

    def reference(self, path: str) -> tuple[BackupEntry | None, str]:
        """The state `path` is judged against, and the directory under the run's backups that
        holds its copy: what the run left ("after"), else the backup itself ("files"). A path
        backed up but missing from `left` may or may not have been written before the run
        died, so any difference from its backup needs a person's decision."""
        if path in self.left:
            return self.left[path], "after"
        return next((e for e in self.entries if e.path == path), None), "files"

    def changed_since(self) -> list[str]:
        """Paths whose state differs from what the run left behind (or, where that is not
        known, from the backup), and from the backup too: a path already back in its backed-up
        state (restored by an earlier `harden rollback` that was cut off, or reverted by
        hand) loses nothing when restored, so it never stops a rollback from finishing."""
        out = []
        for entry in self.entries:
            reference, now = self.reference(entry.path)[0], self.current.get(entry.path)
            if now is not None and now.kind == "cm" and now.sha256 == "?":
                continue     # the API does not answer now; the restore itself compares (hr_cm)
            if reference is not None and now is not None and \
                    _state(now) not in (_state(reference), _state(entry)):
                out.append(entry.path)
        return out


def _state(entry: BackupEntry) -> tuple:
    return (entry.kind, entry.mode, entry.uid, entry.gid, entry.sha256)


def _section(name: str) -> str:
    return f"printf '%s\\n' {shlex.quote(_MARK + name)}\n"


def probe_script(run_id: str, backup_root: str = BACKUP_ROOT,
                 journal_root: str = JOURNAL_ROOT) -> str:
    """Print the index, after-index, record and current state of every backed-up path.

    Exits 5 when a state directory exists but this login cannot read it (no sudo): an empty
    answer would otherwise read as "this run changed nothing here"."""
    hb = f"{shlex.quote(backup_root)}/{shlex.quote(run_id)}"
    record = f"{shlex.quote(journal_root)}/{shlex.quote(run_id)}.json"
    roots = f"{shlex.quote(backup_root)} {shlex.quote(journal_root)}"
    return (
        "LC_ALL=C; export LC_ALL\n"
        f"HB={hb}\n"
        f"for d in {roots}; do\n"
        "  if [ -e \"$d\" ] && { [ ! -r \"$d\" ] || [ ! -x \"$d\" ]; }; then\n"
        "    echo \"cannot read $d as user $(id -un): the rollback needs root (become)\" >&2\n"
        "    exit 5\n"
        "  fi\n"
        "done\n"
        + _section("index") + "[ -f \"$HB/index\" ] && cat \"$HB/index\"\n"
        + _section("after") + "[ -f \"$HB/after-index\" ] && cat \"$HB/after-index\"\n"
        + _section("after-partial") +
        "[ -f \"$HB/after-partial\" ] && cat \"$HB/after-partial\"\n"
        + _section("record") + f"[ -f {record} ] && base64 -w0 < {record} && echo\n"
        + _section("current") + CONFIGMAP_SH + "HB_KC_TRIES=0\n" +
        "[ -f \"$HB/index\" ] && cut -s -f6- \"$HB/index\" | while IFS= read -r p; do\n"
        "  case $p in /configmap:*) hb_cm_record \"$p\" /dev/stdout current; continue;; esac\n"
        "  if [ -L \"$p\" ]; then\n"
        "    printf 'link\\t-\\t-\\t-\\t%s\\t%s\\n' \"$(readlink -- \"$p\")\" \"$p\"\n"
        "  elif [ -f \"$p\" ] && [ \"${p#/proc/}\" = \"$p\" ]; then\n"
        "    printf 'file\\t%s\\t%s\\t%s\\n' \"$(stat -L -c '%a\t%u\t%g' -- \"$p\")\" "
        "\"$(sha256sum < \"$p\" | cut -d' ' -f1)\" \"$p\"\n"
        "  elif [ -d \"$p\" ]; then\n"
        "    printf 'dir\\t%s\\t-\\t%s\\n' \"$(stat -L -c '%a\t%u\t%g' -- \"$p\")\" \"$p\"\n"
        "  elif [ -e \"$p\" ]; then printf 'proc\\t-\\t-\\t-\\t-\\t%s\\n' \"$p\"\n"
        "  else printf 'absent\\t-\\t-\\t-\\t-\\t%s\\n' \"$p\"; fi\n"
        "done\n:\n")


def parse_probe(run_id: str, stdout: str) -> NodeRun | None:
    """None when the node has no backup of this run (it changed nothing there), unless its
    record says `harden prune` removed them: that run did change the node."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            current = sections.setdefault(line[len(_MARK):], [])
        elif current is not None:
            current.append(line)
    record_lines = [line for line in sections.get("record", []) if line.strip()]
    record = HostRecord.from_json(base64.b64decode(record_lines[0]).decode()) \
        if record_lines else None
    if not sections.get("index") and not (record and record.pruned):
        return None
    after = sections.get("after")
    return NodeRun(
        run_id, parse_index("\n".join(sections.get("index", []))),
        {e.path: e for e in parse_index("\n".join(after))} if after else None,
        {e.path: e for e in parse_index("\n".join(sections.get("current", [])))}, record,
        parse_after_partial(sections.get("after-partial", [])))


def parse_after_partial(lines: list[str]) -> dict[str, BackupEntry]:
    """The last line of a path wins: it is the state the run's latest change left."""
    entries = (BackupEntry.parse(line) for line in lines)
    return {e.path: e for e in entries if e is not None}


def read_node_run(session: Session, run_id: str, become=None, backup_root: str = BACKUP_ROOT,
                  journal_root: str = JOURNAL_ROOT) -> NodeRun | None:
    result = session.run("sh -s", become=become,
                         stdin=probe_script(run_id, backup_root, journal_root).encode())
    if result.rc != 0:
        raise RollbackError(f"reading the backups of run {run_id} failed: "
                            f"{result.stderr.decode(errors='replace').strip()}")
    return parse_probe(run_id, result.stdout.decode(errors="replace"))


def is_manifest(path: str, manifest_dir: str = MANIFEST_DIR) -> bool:
    return posixpath.dirname(path) == manifest_dir and \
        not posixpath.basename(path).startswith(".")


def restore_order(entries: list[BackupEntry], manifest_dir: str = MANIFEST_DIR
                  ) -> tuple[list[BackupEntry], list[BackupEntry]]:
    """(restore now: manifests first, then other files, dirs, sysctls;
    remove after health: created files first, then created dirs deepest first)."""
    existed = [e for e in entries if e.kind != "absent"]
    existed.sort(key=lambda e: (not is_manifest(e.path, manifest_dir), e.kind == "dir"))
    created = [e for e in entries if e.kind == "absent"]
    created.sort(key=lambda e: (-e.path.count("/"), e.path))
    return existed, created


# Each helper puts back the target of its path, never a symlink in its place: the index names
# resolved paths, and resolving again covers an index written before paths were resolved.
_RESTORE_PRELUDE = r"""set -e
LC_ALL=C; export LC_ALL
""" + NODE_FAILURE + r"""
hr_unlink() {   # the index names resolved paths: a link there now replaced what was backed up
  if [ -L "$1" ]; then rm -f -- "$1"; fi
}
hr_file() {
  b="$HB/files$1"
  [ -f "$b" ] || { echo "no backup copy of $1" >&2; exit 3; }
  hr_unlink "$1"; p="$(readlink -m -- "$1")"
  t="$(dirname -- "$p")/.$(basename -- "$p").harden-restore"
  # already as backed up (the run never got to change it, or a resumed restore): untouched
  if [ -f "$p" ] && [ "$(stat -c '%a %u %g' -- "$p")" = "$2 $3 $4" ] \
      && [ "$(sha256sum < "$p" | cut -d' ' -f1)" = "$5" ]; then return 0; fi
  mkdir -p -- "$(dirname -- "$p")"; hn_where "$(dirname -- "$p")"; hn_tmp="$t"
  rm -f -- "$t"; cp -- "$b" "$t"
  chown "$3:$4" -- "$t"; chmod "$2" -- "$t"; sync -- "$t"
  [ "$(sha256sum < "$t" | cut -d' ' -f1)" = "$5" ] || { rm -f -- "$t";
    echo "backup copy of $1 does not match its recorded sha256" >&2; exit 3; }
  mv -f -- "$t" "$p"; hn_tmp=; sync -- "$(dirname -- "$p")"
}
hr_dir() {
  hr_unlink "$1"; p="$(readlink -m -- "$1")"
  [ -e "$p" ] || mkdir -- "$p"        # removed by the run (file state=absent)
  if [ -d "$p" ]; then chown "$3:$4" -- "$p"; chmod "$2" -- "$p"; fi
}
hr_proc() { cat -- "$HB/files$1" > "$1"; }
hr_link() {     # a link the run re-pointed: pointed back, atomically
  [ -L "$1" ] && [ "$(readlink -- "$1")" = "$2" ] && return 0
  t="$(dirname -- "$1")/.$(basename -- "$1").harden-restore"
  rm -f -- "$t"; ln -s -- "$2" "$t"; mv -fT -- "$t" "$1"
}
""" + CONFIGMAP_SH + CONFIGMAP_RESTORE_SH + r"""hr_remove() {
  if [ -L "$1" ]; then rm -f -- "$1"; return 0; fi     # a link the run made: never its target
  p="$(readlink -m -- "$1")"
  if [ -d "$p" ]; then rmdir -- "$p" 2>/dev/null || echo "W kept $p (not empty)"
  elif [ -e "$p" ]; then rm -f -- "$p"; fi
}
"""


def restore_script(run_id: str, entries: list[BackupEntry],
                   backup_root: str = BACKUP_ROOT) -> str:
    lines = [_RESTORE_PRELUDE, f"HB={shlex.quote(backup_root)}/{shlex.quote(run_id)}"]
    for e in entries:
        q = shlex.quote(e.path)
        if e.kind == "file":
            lines.append(f"hr_file {q} {e.mode} {e.uid} {e.gid} {e.sha256}")
        elif e.kind == "dir":
            lines.append(f"hr_dir {q} {e.mode} {e.uid} {e.gid}")
        elif e.kind == "proc":
            lines.append(f"hr_proc {q}")
        elif e.kind == "link":
            lines.append(f"hr_link {q} {shlex.quote(e.sha256)}")
        elif e.kind == "absent":
            lines.append(f"hr_remove {q}")
        elif e.kind == "cm":
            lines.append(f"hr_cm {q} {shlex.quote(e.sha256)}")
    return "\n".join(lines) + "\n"


@dataclass
class Restart:
    """A service action the rollback repeats (the run's handlers did the same), or the undo of
    a live mount step (verb remount/umount/mount on `path`, with the mount's old `opts`,
    `fstype` and `src`), run once the files (the fstab) are back."""

    name: str
    verb: str = "restart"
    daemon_reload: bool = False
    path: str = ""
    opts: str = ""
    fstype: str = ""
    src: str = ""

    def command(self) -> str:
        if self.path:
            return self._mount_command()
        steps = ["systemctl daemon-reload"] if self.daemon_reload else []
        if self.name:
            steps.append(f"systemctl {self.verb} {shlex.quote(self.name)}")
        return "\n".join(steps)

    def _mount_command(self) -> str:
        q = shlex.quote(self.path)
        if self.verb == "remount":
            return f"mount -o {shlex.quote('remount,' + self.opts)} {q}"
        if self.verb == "umount":
            return f"umount {q}"
        return (f"mount -t {shlex.quote(self.fstype)} -o {shlex.quote(self.opts)} "
                f"{shlex.quote(self.src)} {q}")


def restarts_for(paths: list[str], recorded: list[dict] = ()) -> list[Restart]:
    """The restarts a restore needs: those the run recorded, plus the kubelet's whenever one
    of its files was put back (a config the kubelet already read is not re-read otherwise)."""
    out = [Restart(r.get("name") or "", r.get("verb") or "restart",
                   bool(r.get("daemon_reload")),
                   *(r.get(k) or "" for k in ("path", "opts", "fstype", "src")))
           for r in recorded]
    dropin = any(posixpath.dirname(p) in KUBELET_DROPIN_DIRS for p in paths)
    kubelet = dropin or any(p in KUBELET_FILES for p in paths)
    if kubelet and not any(r.name == "kubelet" for r in out):
        out.append(Restart("kubelet", "restart", dropin))
    elif dropin:
        for r in out:
            if r.name == "kubelet":
                r.daemon_reload = True
    return out


@dataclass
class RollbackOutcome:
    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    healthy: bool = True
    detail: str = ""


def restore_host(session: Session, run_id: str, entries: list[BackupEntry], *, become=None,
                 restarts: list[Restart] = (), wait_kubelet: bool = False,
                 wait_timeout: float = ROLLBACK_WAIT_TIMEOUT,
                 backup_root: str = BACKUP_ROOT, force: bool = False) -> RollbackOutcome:
    """Steps 1-4 of the module docstring on one host; RollbackError when a step fails.

    Health after a rollback is "the restored component runs and its probes pass", whichever
    process it is: an apply that failed before its manifest was written leaves the original
    pod running, and that pod is exactly what we want."""
    existed, created = restore_order(entries)
    api = [e for e in existed if e.kind == "cm"]          # through the API: once it is back
    existed = [e for e in existed if e.kind != "cm"]
    outcome = RollbackOutcome(restored=[e.path for e in existed])
    _run(session, restore_script(run_id, existed, backup_root), become, "restoring files")
    commands = [r.command() for r in restarts if r.command()]
    if commands:
        _run(session, "set -e\n" + "\n".join(commands) + "\n", become, "restarting services")
    manifests = [e.path for e in existed if e.kind == "file" and is_manifest(e.path)]
    kubelet = wait_kubelet or any(r.name == "kubelet" for r in restarts)
    for spec in _wait_specs(session, manifests, kubelet, become, wait_timeout):
        result = wait_healthy(session, spec, become=become)
        if not result.healthy:
            outcome.healthy = False
            outcome.detail = result.detail
            if api:
                outcome.warnings.append(
                    f"not restored yet: {', '.join(e.path for e in api)} (the API is needed; "
                    f"run harden rollback {run_id} again once the control plane is healthy)")
            return outcome                   # created files stay: the pod may need them
    if api:
        out = _run(session, ("HR_FORCE=1\n" if force else "") +
                   restore_script(run_id, api, backup_root), become, "restoring ConfigMap keys")
        outcome.warnings += [line[2:] for line in out.splitlines() if line.startswith("W ")]
        outcome.restored += [e.path for e in api]
    if created:
        out = _run(session, restore_script(run_id, created, backup_root), become,
                   "removing created files")
        outcome.warnings += [line[2:] for line in out.splitlines() if line.startswith("W ")]
        outcome.removed = [e.path for e in created]
    return outcome


def _run(session: Session, script: str, become, what: str) -> str:
    result = session.run("sh -s", become=become, stdin=script.encode())
    if result.rc != 0:
        raise RollbackError(f"{what} failed (exit {result.rc}): "
                            f"{result.stderr.decode(errors='replace').strip()[-500:]}")
    return result.stdout.decode(errors="replace")


def _wait_specs(session: Session, manifests: list[str], kubelet: bool, become, timeout: float) -> list:
    """Wait specs built from the restored files, as read back from the node."""
    requests = [FactRequest(FILE, m, content=True) for m in manifests]
    if kubelet:
        requests.append(FactRequest(KUBELET, DEFAULT_KUBELET_CONFIG, content=True))
    if not requests:
        return []
    result = session.run("sh -s", become=become, stdin=build_script(requests).encode())
    facts = parse_output(requests, result.stdout.decode(errors="replace"))
    specs = []
    for path in manifests:
        name = posixpath.splitext(posixpath.basename(path))[0]
        args = WAIT_STATIC_POD.validate({"name": name, "manifest": path, "successes": 2,
                                         "timeout": int(timeout), "interval": 1})
        specs.append(WAIT_STATIC_POD.wait_spec(args, facts))
    if kubelet:
        args = WAIT_KUBELET.validate({"successes": 2, "timeout": int(timeout), "interval": 1})
        specs.append(WAIT_KUBELET.wait_spec(args, facts))
    return specs


def read_node_files(session: Session, run_id: str, files: list[tuple[str, str]], become,
                     backup_root: str, must_contain: str | None = None
                     ) -> dict[str, bytes | None]:
    """Contents of node files, by name: `files` pairs a name with a shell word for the file
    (it may use $HB, the run's backup directory). None for a missing or empty file, or one
    without `must_contain`: filtering on the node keeps unrelated files there. The contents
    stay in memory; callers never print them unredacted."""
    hb = f"{shlex.quote(backup_root)}/{shlex.quote(run_id)}"
    script = ["LC_ALL=C; export LC_ALL", f"HB={hb}"]
    for name, word in files:
        test = f"[ -f {word} ]" + (f" && grep -qF -- {shlex.quote(must_contain)} {word}"
                                   if must_contain else "")
        script.append(_section(name) + f"if {test}; then base64 -w0 < {word}; fi; echo")
    result = session.run("sh -s", become=become, stdin=("\n".join(script) + "\n").encode())
    if result.rc != 0:
        raise RollbackError(f"reading files of run {run_id} failed (exit {result.rc})")
    sections: dict[str, str] = {}
    key = None
    for line in result.stdout.decode(errors="replace").splitlines():
        if line.startswith(_MARK):
            key = line[len(_MARK):]
        elif key is not None:
            sections[key] = sections.get(key, "") + line
    return {name: base64.b64decode(sections.get(name, "")) or None for name, _ in files}
