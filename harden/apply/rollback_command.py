"""`harden rollback RUN_ID`: which hosts a run touched, what refuses a restore (paths changed
since the run, an encryption key the restore would drop), and what the operator is shown.

The restore itself is harden.apply.rollback's, shared with the automatic rollback of a failed
run; this module adds the operator-facing guards and output, which the runner never needs.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
import time
from dataclasses import dataclass, field

import yaml
from rich.text import Text

from harden.apply.manifest import Manifest
from harden.apply.output import diff_text
from harden.node.configmap import is_configmap_path
from harden.apply.rollback import ROLLBACK_WAIT_TIMEOUT, NodeRun, RollbackError, read_node_files, \
    is_manifest, read_node_run, restarts_for, restore_host
from harden.apply.modules.base import REDACTED, is_encryption_config, text_diff
from harden.errors import HardenError, InputError
from harden.inventory.loader import load_inventory
from harden.node import limits
from harden.node.paths import BACKUP_ROOT, JOURNAL_ROOT, lock_path
from harden.progress import HostProgress, wanted
from harden.runs.journal import RUN_ID, RUN_ID_SHAPE, HostRecord, Journal, commit_script, \
    new_run_id
from harden.runs.lock import Holder, NodeLocked, holder_for, release, take
from harden.ssh.parallel import for_each_host
from harden.ssh.settings import connection_specs
from harden.ssh.transport import connect
from harden.ssh.session import Session


def conflict_diffs(session: Session, node_run: NodeRun, paths: list[str], become=None,
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
        now = f"\"$HB/current\"{q}" if is_configmap_path(path) else q   # copied by the probe
        files += [(f"{index} before", f"\"$HB/{node_run.reference(path)[1]}\"{q}"),
                  (f"{index} now", now)]
    contents = read_node_files(session, node_run.run_id, files, become, backup_root)
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
    try:
        document = limits.safe_load(content, "")
    except limits.NodeDataError as exc:
        raise HardenError(f"an EncryptionConfiguration cannot be read: {exc}") from None
    for entry in document.get("resources") or []:
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


def dropped_keys(session: Session, node_run: NodeRun, become=None,
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
    contents = read_node_files(session, node_run.run_id, files, become, backup_root,
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


def _dropped_warning(dropped: dict[str, list[str]]) -> str:
    where = "; ".join(f"{path}: {', '.join(labels)}" for path, labels in dropped.items())
    return (f"DROPPED encryption key(s) in use ({where}) as --drop-encryption-key asked: "
            f"whatever the API server wrote with them is unreadable once it restarts")


# --- `harden rollback RUN_ID` --------------------------------------------------------------

@dataclass
class HostRollback:
    host: str
    status: str              # rolled_back | nothing | already | refused | locked | failed
    message: str = ""
    diffs: dict[str, str] = field(default_factory=dict)


def rollback_host(session: Session, host: str, run_id: str, force: bool,
                  wait_timeout: float = ROLLBACK_WAIT_TIMEOUT, backup_root: str = BACKUP_ROOT,
                  journal_root: str = JOURNAL_ROOT,
                  control_plane_turn=contextlib.nullcontext(),
                  drop_encryption_key: bool = False) -> HostRollback:
    """Undo one host's part of a finished (or interrupted) run. A host whose static-pod
    manifests are restored waits for `control_plane_turn` (a lock shared by the hosts of one
    rollback) so that two control planes never restart together.

    Two guards, lifted by two different flags: `force` restores paths changed since the run;
    only `drop_encryption_key` lets the restore take a key (or the encryption config) away
    from what the node holds now, since that makes whatever the API server wrote with it
    unreadable. `--force` alone never does: it is what a refusal for a changed file offers.

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
    changed = [] if force else node_run.changed_since()
    note = " (interrupted run)" if node_run.interrupted else ""
    dropped = dropped_keys(session, node_run, True, backup_root)
    blocking = {} if drop_encryption_key else dropped
    if changed or blocking:
        reasons = ([f"{len(changed)} path(s) changed since the run{note}"] if changed else []) \
            + ([_dropped_message(blocking)] if blocking else [])
        lifts = (["--force restores changed paths anyway"] if changed else []) + \
            (["only --drop-encryption-key lifts the key guard, --force does not"]
             if blocking else [])
        return HostRollback(host, "refused", "; ".join(reasons) + "; nothing restored ("
                            + "; ".join(lifts) + ")",
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
                               wait_timeout=wait_timeout, backup_root=backup_root,
                               force=force)
    if not outcome.healthy:
        return HostRollback(host, "failed", f"files restored but not healthy: {outcome.detail}")
    done = record or HostRecord(run_id, host, "", "rolled_back", 0, 0)
    done.status = "rolled_back"
    result = session.run("sh -s", become=True,
                         stdin=commit_script(done, backup_root, journal_root))
    if result.rc != 0:
        return HostRollback(host, "failed", "restored, but the node record could not be "
                                            "updated")
    warnings = "; ".join(outcome.warnings + ([_dropped_warning(dropped)] if dropped else []))
    return HostRollback(host, "rolled_back",
                        f"restored {len(outcome.restored)}, removed {len(outcome.removed)} "
                        f"path(s){note}" + (f"; {warnings}" if warnings else ""))


def run_rollback(inventories, run_id: str, *, limit: str | None, force: bool,
                 run_options, console, forks: int = 20, journal=None,
                 break_lock: bool = False, drop_encryption_key: bool = False,
                 host_defaults: dict | None = None) -> int:
    """`harden rollback`: hosts of the run (from the local journal, else every selected host)
    in parallel, control planes one at a time, each under its node lock. Exit 0, or 4 if any
    host was refused, locked, failed or unreachable."""
    if not RUN_ID.match(run_id):
        raise InputError(f"not a run id: {run_id!r} (see `harden runs`)")
    own_journal = journal is None
    journal = journal or Journal()
    try:
        known_here = journal.has_run(run_id)
        if not known_here and not RUN_ID_SHAPE.match(run_id):
            raise InputError(unknown_run(run_id, journal, "not in the local journal, and not "
                                         "shaped like a run id (YYYYMMDDTHHMMSSZ-xxxxxx)"))
        inventory = load_inventory(inventories).with_defaults(host_defaults or {})
        selected = inventory.select(None, limit=limit)
        known = set(journal.hosts_of(run_id))
        hosts = [h for h in selected if h.name in known] if known else selected
        specs = connection_specs(hosts, run_options, inventory)
        holder = holder_for(new_run_id(), "rollback", subject=run_id)
        journal.start_run(holder.run_id, f"rollback {run_id}", "rollback", False)
        turn = threading.Lock()

        def one(host) -> HostRollback:
            try:
                with connect(specs[host.name]) as session:
                    return _locked(session, host.name, holder, break_lock, journal,
                                   lambda: rollback_host(
                                       session, host.name, run_id, force,
                                       control_plane_turn=turn,
                                       drop_encryption_key=drop_encryption_key))
            except (HardenError, RollbackError) as exc:
                status = "locked" if isinstance(exc, NodeLocked) else "failed"
                return HostRollback(host.name, status, getattr(exc, "message", str(exc)))

        with HostProgress(f"harden rollback {run_id}", len(hosts), console=console,
                          enabled=wanted()) as progress:
            outcomes = for_each_host(hosts, progress.around(
                one, lambda r: r.status not in ("refused", "locked", "failed")), forks)
        if not known_here and all(o.ok and o.value.status == "nothing"
                                  for o in outcomes.values()):
            # Another controller's run leaves backups on its hosts; a typo leaves nothing.
            journal.finish_run(holder.run_id, 1)
            raise InputError(unknown_run(run_id, journal, "not in the local journal, and no "
                                         "selected host has a backup or record of it"))
        code = _print_rollbacks(console, journal, run_id, outcomes)
        journal.finish_run(holder.run_id, code)
        return code
    finally:
        if own_journal:
            journal.close()


def _locked(session: Session, host: str, holder: Holder, break_lock: bool, journal,
            work, backup_root: str = BACKUP_ROOT) -> HostRollback:
    """Run `work` under the node's lock, given back afterwards whatever happened (a process
    killed keeps it: the next `harden rollback` of the same run takes it over)."""
    lock = lock_path(backup_root)
    note = take(session, host, holder, lock, break_lock=break_lock, journal=journal,
                take_over_subject=holder.subject)
    try:
        outcome = work()
    finally:
        release(session, holder, lock)
    if note:
        outcome.message = f"{note}; {outcome.message}"
    return outcome


def _print_rollbacks(console, journal, run_id: str, outcomes: dict) -> int:
    code = 0
    for name, result in outcomes.items():
        outcome = result.value if result.ok else HostRollback(name, "failed", result.message)
        style = {"rolled_back": "green", "nothing": "dim", "already": "dim"}.get(
            outcome.status, "bold red")
        console.print(Text(f"{name:<12} ", style="bold") +
                      Text(outcome.status, style=style) + Text(f"  {outcome.message}"))
        for path, diff in outcome.diffs.items():
            console.print(Text(f"  changed since the run: {path}", style="yellow"))
            console.print(diff_text(diff))
        if outcome.status == "rolled_back":
            journal.mark_rolled_back(run_id, name)
        elif outcome.status in ("refused", "failed", "locked"):
            code = 4
    return code


def unknown_run(run_id: str, journal, why: str) -> str:
    """The error for a run id nobody knows, offering the ids it was probably meant to be."""
    closest = journal.closest_runs(run_id)
    offer = (f"; closest known: {', '.join(closest)}" if closest
             else "; the journal holds no run yet")
    return (f"unknown run id {run_id!r}: {why} (journal {journal.path}){offer} "
            "(see `harden runs`); nothing rolled back")
