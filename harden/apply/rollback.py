"""Putting a host back as it was before a run: after a failed verification, or on request.

The node's backup index (one line per path, written before the run first touched it) is the
only input needed, so an interrupted run or another controller's run can be undone too. Order
follows kubeadm's upgrade rollback, plus the health wait kubeadm skips:

1. restore files that existed (static-pod manifests first, so the component comes back
   as early as possible), their directories' mode/owner, and runtime sysctls; each restored
   file is checked against the sha256 recorded at backup time;
2. run the same restarts the run did (kubelet after its config changed);
3. wait until every restored static pod and the kubelet are healthy again;
4. only then remove files and directories the run created (a manifest's new audit policy,
   say), since the pod may have been using them until the old manifest took over.

A manual rollback first compares every path with the state the run left and refuses when
someone changed one since, showing the difference, unless forced. That state is the
`after-index` written at commit or, for a run killed before it committed, `after-partial`,
which the apply helpers append to after each change they make. It also refuses, unless forced
and even when nothing changed since, to take an encryption key away from an encryption config:
whatever the API server wrote with that key since would become unreadable.
"""

from __future__ import annotations

import base64
import contextlib
import posixpath
import re
import shlex
import threading
import time
from dataclasses import dataclass, field

import yaml

from harden.apply.facts import FILE, KUBELET, DEFAULT_KUBELET_CONFIG, FactRequest, build_script, \
    parse_output
from harden.errors import HardenError
from harden.apply.health import wait_healthy
from harden.runs.journal import JOURNAL_ROOT, BackupEntry, HostRecord, commit_script, parse_index
from harden.apply.manifest import Manifest
from harden.apply.modules.base import BACKUP_ROOT, REDACTED, is_encryption_config, text_diff
from harden.apply.modules.wait_for_kubelet import MODULE as WAIT_KUBELET
from harden.apply.modules.wait_for_static_pod import MANIFEST_DIR
from harden.apply.modules.wait_for_static_pod import MODULE as WAIT_STATIC_POD

KUBELET_FILES = ("/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env",
                 "/etc/default/kubelet", "/etc/sysconfig/kubelet")
KUBELET_DROPIN_DIRS = ("/etc/systemd/system/kubelet.service.d",
                       "/usr/lib/systemd/system/kubelet.service.d",
                       "/lib/systemd/system/kubelet.service.d")
ROLLBACK_WAIT_TIMEOUT = 300
_MARK = "@@harden-rb "
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# What `journal.new_run_id` makes: only such an id can be another controller's run.
RUN_ID_SHAPE = re.compile(r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")


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
        known, from the backup)."""
        out = []
        for entry in self.entries:
            reference, now = self.reference(entry.path)[0], self.current.get(entry.path)
            if reference is not None and now is not None and _state(reference) != _state(now):
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
        + _section("current") +
        "[ -f \"$HB/index\" ] && cut -f6- \"$HB/index\" | while IFS= read -r p; do\n"
        "  if [ -f \"$p\" ] && [ \"${p#/proc/}\" = \"$p\" ]; then\n"
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


def read_node_run(session, run_id: str, become=None, backup_root: str = BACKUP_ROOT,
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
hr_file() {
  b="$HB/files$1"; p="$(readlink -m -- "$1")"
  t="$(dirname -- "$p")/.$(basename -- "$p").harden-restore"
  [ -f "$b" ] || { echo "no backup copy of $1" >&2; exit 3; }
  mkdir -p -- "$(dirname -- "$p")"; rm -f -- "$t"; cp -- "$b" "$t"
  chown "$3:$4" -- "$t"; chmod "$2" -- "$t"; sync -- "$t"
  [ "$(sha256sum < "$t" | cut -d' ' -f1)" = "$5" ] || { rm -f -- "$t";
    echo "backup copy of $1 does not match its recorded sha256" >&2; exit 3; }
  mv -f -- "$t" "$p"; sync -- "$(dirname -- "$p")"
}
hr_dir() {
  p="$(readlink -m -- "$1")"
  if [ -d "$p" ]; then chown "$3:$4" -- "$p"; chmod "$2" -- "$p"; fi
}
hr_proc() { cat -- "$HB/files$1" > "$1"; }
hr_remove() {
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
        elif e.kind == "absent":
            lines.append(f"hr_remove {q}")
    return "\n".join(lines) + "\n"


@dataclass
class Restart:
    """A service action the rollback repeats (the run's handlers did the same)."""

    name: str
    verb: str = "restart"
    daemon_reload: bool = False

    def command(self) -> str:
        steps = ["systemctl daemon-reload"] if self.daemon_reload else []
        if self.name:
            steps.append(f"systemctl {self.verb} {shlex.quote(self.name)}")
        return "\n".join(steps)


def restarts_for(paths: list[str], recorded: list[dict] = ()) -> list[Restart]:
    """The restarts a restore needs: those the run recorded, plus the kubelet's whenever one
    of its files was put back (a config the kubelet already read is not re-read otherwise)."""
    out = [Restart(r.get("name") or "", r.get("verb") or "restart",
                   bool(r.get("daemon_reload"))) for r in recorded]
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


def restore_host(session, run_id: str, entries: list[BackupEntry], *, become=None,
                 restarts: list[Restart] = (), wait_kubelet: bool = False,
                 wait_timeout: float = ROLLBACK_WAIT_TIMEOUT,
                 backup_root: str = BACKUP_ROOT) -> RollbackOutcome:
    """Steps 1-4 of the module docstring on one host; RollbackError when a step fails.

    Health after a rollback is "the restored component runs and its probes pass", whichever
    process it is: an apply that failed before its manifest was written leaves the original
    pod running, and that pod is exactly what we want."""
    existed, created = restore_order(entries)
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
            return outcome                   # created files stay: the pod may need them
    if created:
        out = _run(session, restore_script(run_id, created, backup_root), become,
                   "removing created files")
        outcome.warnings += [line[2:] for line in out.splitlines() if line.startswith("W ")]
        outcome.removed = [e.path for e in created]
    return outcome


def _run(session, script: str, become, what: str) -> str:
    result = session.run("sh -s", become=become, stdin=script.encode())
    if result.rc != 0:
        raise RollbackError(f"{what} failed (exit {result.rc}): "
                            f"{result.stderr.decode(errors='replace').strip()[-500:]}")
    return result.stdout.decode(errors="replace")


def _wait_specs(session, manifests: list[str], kubelet: bool, become, timeout: float) -> list:
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


def _read_node_files(session, run_id: str, files: list[tuple[str, str]], become,
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


def conflict_diffs(session, node_run: NodeRun, paths: list[str], become=None,
                   backup_root: str = BACKUP_ROOT) -> dict[str, str]:
    """For each path changed since the run: how it differs from what the run left, or from
    its backup when that is unknown (secret files as a marker only).

    An interrupted run left no record of which of its files are secret, so then no content is
    shown at all, only that it changed and how mode and owner differ. Whatever the record
    says, an encryption config is shown as a marker only (text_diff): a task may have written
    it without declaring it secret."""
    files = []
    for index, path in enumerate(paths):
        q = shlex.quote(path)
        files += [(f"{index} before", f"\"$HB/{node_run.reference(path)[1]}\"{q}"),
                  (f"{index} now", q)]
    contents = _read_node_files(session, node_run.run_id, files, become, backup_root)
    secret = set(node_run.record.secret_paths) if node_run.record else set(paths)
    diffs = {}
    for index, path in enumerate(paths):
        diff = text_diff(path, contents[f"{index} before"], contents[f"{index} now"],
                         path in secret)
        reference, current = node_run.reference(path)[0], node_run.current.get(path)
        if reference and current and (reference.mode, reference.uid, reference.gid) != \
                (current.mode, current.uid, current.gid):
            diff += (f"--- a{path}\n+++ b{path}\n-mode/uid/gid {reference.mode} "
                     f"{reference.uid} {reference.gid}\n+mode/uid/gid {current.mode} "
                     f"{current.uid} {current.gid}\n")
        diffs[path] = diff or (REDACTED if path in secret else "(changed)")
    return diffs


def encryption_keys(content: bytes | None) -> dict[tuple[str, str, str], str]:
    """Every key an EncryptionConfiguration holds, (provider kind, name, secret) -> a label
    naming it without its secret; empty for anything else. A KMS provider counts as a key
    (its name and endpoint): data it wrapped needs it as much."""
    if not is_encryption_config(content):
        return {}
    keys = {}
    for entry in yaml.safe_load(content).get("resources") or []:
        providers = entry.get("providers") if isinstance(entry, dict) else None
        for provider in providers if isinstance(providers, list) else []:
            for kind, config in (provider.items() if isinstance(provider, dict) else ()):
                config = config if isinstance(config, dict) else {}
                if kind == "kms":
                    keys[(kind, str(config.get("name")), str(config.get("endpoint")))] = \
                        f"kms provider '{config.get('name')}'"
                for key in config.get("keys") or []:
                    if isinstance(key, dict):
                        keys[(str(kind), str(key.get("name")), str(key.get("secret")))] = \
                            f"{kind} key '{key.get('name')}'"
    return keys


def dropped_keys(session, node_run: NodeRun, become=None,
                 backup_root: str = BACKUP_ROOT) -> dict[str, list[str]]:
    """For each encryption config the rollback would restore or remove: the labels of the
    keys it holds now that the result (the backup, or no file where the run created it)
    would lack. This holds whether or not anyone changed the file since the run: a rollback
    of `promote` leaves the file exactly as `stage` left it, yet rolling `stage` back then
    drops the key every API server has been writing with."""
    paths = [e.path for e in node_run.entries if e.kind in ("file", "absent") and
             getattr(node_run.current.get(e.path), "kind", None) == "file"]
    if not paths:
        return {}
    files = []
    for index, path in enumerate(paths):
        q = shlex.quote(path)
        files += [(f"{index} now", q), (f"{index} backup", f"\"$HB/files\"{q}")]
    contents = _read_node_files(session, node_run.run_id, files, become, backup_root,
                                must_contain="ncryption")
    out = {}
    for index, path in enumerate(paths):
        now, backup = contents[f"{index} now"], contents[f"{index} backup"]
        gone = sorted({label for key, label in encryption_keys(now).items()
                       if key not in encryption_keys(backup)})
        gone += _dropped_encryption_flag(path, now, backup)
        if gone:
            out[path] = gone
    return out


def _dropped_encryption_flag(path: str, now: bytes | None, backup: bytes | None) -> list[str]:
    """A static-pod manifest whose restore would drop or repoint --encryption-provider-config
    (a run that only pointed kube-apiserver at the config, say): that API server could no
    longer read what is encrypted, and would write new objects in plain text."""
    if not is_manifest(path) or now is None:
        return []
    flag = "encryption-provider-config"
    try:
        current = Manifest(now.decode(), path).flags().get(flag)
        restored = Manifest(backup.decode(), path).flags().get(flag) if backup else None
    except (HardenError, UnicodeDecodeError, yaml.YAMLError):
        return []                 # not a manifest harden can read: no claim either way
    if current is None or current == restored:
        return []
    return [f"--{flag}={current}" + (f" (would become {restored})" if restored else
                                     " (would be removed)")]


def _dropped_message(dropped: dict[str, list[str]]) -> str:
    where = "; ".join(f"{path}: {', '.join(labels)}" for path, labels in dropped.items())
    return (f"the rollback would remove encryption key(s) or the encryption config the node "
            f"uses now ({where}); "
            f"anything the API server encrypted with them would become unreadable. Go "
            f"forward instead with playbooks/rotate-encryption-key.yml (stage, promote, "
            f"rewrite, retire)")


# --- `harden rollback RUN_ID` --------------------------------------------------------------

@dataclass
class HostRollback:
    host: str
    status: str                      # rolled_back | nothing | already | refused | failed
    message: str = ""
    diffs: dict[str, str] = field(default_factory=dict)


def rollback_host(session, host: str, run_id: str, force: bool,
                  wait_timeout: float = ROLLBACK_WAIT_TIMEOUT, backup_root: str = BACKUP_ROOT,
                  journal_root: str = JOURNAL_ROOT,
                  control_plane_turn=contextlib.nullcontext()) -> HostRollback:
    """Undo one host's part of a finished (or interrupted) run. A host whose static-pod
    manifests are restored waits for `control_plane_turn` (a lock shared by the hosts of one
    rollback) so that two control planes never restart together.

    Every step runs with become=True, as `apply` must have: the backups are root's (0700), and
    the transport only uses sudo when the login user is not already the become user."""
    node_run = read_node_run(session, run_id, True, backup_root, journal_root)
    if node_run is None:
        return HostRollback(host, "nothing", "this run changed nothing here")
    if node_run.record is not None and node_run.record.status == "rolled_back":
        return HostRollback(host, "already", "already rolled back")
    if node_run.record is not None and node_run.record.pruned:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(node_run.record.pruned))
        return HostRollback(host, "refused", f"backups of {run_id} were pruned on {host} at "
                                             f"{when} (harden prune); it cannot be rolled back")
    changed = node_run.changed_since()
    note = " (interrupted run)" if node_run.interrupted else ""
    dropped = {} if force else dropped_keys(session, node_run, True, backup_root)
    if (changed or dropped) and not force:
        reasons = ([f"{len(changed)} path(s) changed since the run{note}"] if changed else []) \
            + ([_dropped_message(dropped)] if dropped else [])
        return HostRollback(host, "refused", "; ".join(reasons) + "; nothing restored "
                            "(--force restores anyway)",
                            conflict_diffs(session, node_run, changed, True, backup_root)
                            if changed else {})
    record = node_run.record
    restarts = restarts_for([e.path for e in node_run.entries], record.restarts if record else [])
    turn = control_plane_turn if any(is_manifest(e.path) for e in node_run.entries) \
        else contextlib.nullcontext()
    with turn:
        outcome = restore_host(session, run_id, node_run.entries, become=True,
                               restarts=restarts,
                               wait_kubelet=bool(record and record.kubelet_wait),
                               wait_timeout=wait_timeout, backup_root=backup_root)
    if not outcome.healthy:
        return HostRollback(host, "failed", f"files restored but not healthy: {outcome.detail}")
    done = record or HostRecord(run_id, host, "", "rolled_back", 0, 0)
    done.status = "rolled_back"
    result = session.run("sh -s", become=True,
                         stdin=commit_script(done, backup_root, journal_root))
    if result.rc != 0:
        return HostRollback(host, "failed", "restored, but the node record could not be "
                                            "updated")
    warnings = "; ".join(outcome.warnings)
    return HostRollback(host, "rolled_back",
                        f"restored {len(outcome.restored)}, removed {len(outcome.removed)} "
                        f"path(s){note}" + (f"; {warnings}" if warnings else ""))


def run_rollback(inventories, run_id: str, *, limit: str | None, force: bool,
                 run_options, console, forks: int = 20, journal=None) -> int:
    """`harden rollback`: hosts of the run (from the local journal, else every selected host)
    in parallel, control planes one at a time. Exit 0, or 4 if any host was refused, failed or
    unreachable."""
    from rich.text import Text

    from harden.apply.output import diff_text
    from harden.ssh.settings import connection_specs
    from harden.errors import HardenError, InputError
    from harden.inventory.loader import load_inventory
    from harden.runs.journal import Journal
    from harden.ssh.parallel import for_each_host
    from harden.ssh.transport import connect

    if not RUN_ID.match(run_id):
        raise InputError(f"not a run id: {run_id!r} (see `harden runs`)")
    own_journal = journal is None
    journal = journal or Journal()
    try:
        known_here = journal.has_run(run_id)
        if not known_here and not RUN_ID_SHAPE.match(run_id):
            raise InputError(unknown_run(run_id, journal, "not in the local journal, and not "
                                         "shaped like a run id (YYYYMMDDTHHMMSSZ-xxxxxx)"))
        inventory = load_inventory(inventories)
        selected = inventory.select(None, limit=limit)
        known = set(journal.hosts_of(run_id))
        hosts = [h for h in selected if h.name in known] if known else selected
        specs = connection_specs(hosts, run_options, inventory)
        turn = threading.Lock()

        def one(host) -> HostRollback:
            try:
                with connect(specs[host.name]) as session:
                    return rollback_host(session, host.name, run_id, force,
                                         control_plane_turn=turn)
            except (HardenError, RollbackError) as exc:
                return HostRollback(host.name, "failed", str(exc))

        outcomes = {name: result.value if result.ok else
                    HostRollback(name, "failed", result.message)
                    for name, result in for_each_host(hosts, one, forks).items()}
        if not known_here and all(o.status == "nothing" for o in outcomes.values()):
            # Another controller's run leaves backups on its hosts; a typo leaves nothing.
            raise InputError(unknown_run(run_id, journal, "not in the local journal, and no "
                                         "selected host has a backup or record of it"))
        code = 0
        for name, outcome in outcomes.items():
            style = {"rolled_back": "green", "nothing": "dim", "already": "dim"}.get(
                outcome.status, "bold red")
            console.print(Text(f"{name:<12} ", style="bold") +
                          Text(outcome.status, style=style) + Text(f"  {outcome.message}"))
            for path, diff in outcome.diffs.items():
                console.print(Text(f"  changed since the run: {path}", style="yellow"))
                console.print(diff_text(diff))
            if outcome.status == "rolled_back":
                journal.mark_rolled_back(run_id, name)
            elif outcome.status in ("refused", "failed"):
                code = 4
        return code
    finally:
        if own_journal:
            journal.close()


def unknown_run(run_id: str, journal, why: str) -> str:
    """The error for a run id nobody knows, offering the ids it was probably meant to be."""
    closest = journal.closest_runs(run_id)
    offer = (f"; closest known: {', '.join(closest)}" if closest
             else "; the journal holds no run yet")
    return (f"unknown run id {run_id!r}: {why} (journal {journal.path}){offer} "
            "(see `harden runs`); nothing rolled back")
