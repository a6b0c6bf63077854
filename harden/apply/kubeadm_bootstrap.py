"""What the shipped playbooks would make of a new control plane, read from the playbooks.

`harden kubeadm-config` must not keep a second copy of the hardening: the flags, volumes, files
and kubelet keys it writes for `kubeadm init` are those the playbooks' own tasks would write,
with the same variables. So the playbooks are loaded as `harden apply` loads them, each task's
`when` and arguments are evaluated as the runner would for one control-plane host (inventory
vars, play vars, -e), and the tasks that describe a desired state are collected instead of
run: `static_pod` (flags, list flags, volumes), `kubelet_config` (keys), `template`/`copy`
(whole files), `file` with `state: directory` and `sysctl`. Tasks that only look, wait,
restart, run commands or talk to the API server are not part of a node's initial files.
Tasks marked `check_mode: true` write nothing, so they are skipped as well.
"""

from __future__ import annotations

import base64
import binascii
import glob
import os
import secrets
import tempfile
from dataclasses import dataclass, field

from harden.apply import loops
from harden.apply.modules import get_module
from harden.apply.modules.base import PlanContext, TaskFailed, parse_mode
from harden.apply.modules.sysctl import _persisted as sysctl_text, _wanted as sysctl_values
from harden.apply.modules.whole_file import WholeFileModule
from harden.apply.playbook import Play, Task, check_vars_spec, load_playbook
from harden.apply.tasks import TaskPlanner
from harden.apply.templating import Untemplated, evaluate, layered_vars
from harden.errors import HardenError, InputError

PLAYBOOK_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "playbooks")
# site.yml, then encryption at rest: a new cluster has no stored data, so it can start with
# the key (site.yml leaves encryption to its own two-run playbook for running clusters).
DEFAULT_PLAYBOOKS = (os.path.join(PLAYBOOK_DIR, "site.yml"),
                     os.path.join(PLAYBOOK_DIR, "encryption-at-rest.yml"))
# What a bootstrap changes in the playbooks' variables, below the user's -e: the encryption
# config is written with the key first (encrypting), since every API server of a new cluster
# starts with the same file (copied before `kubeadm join --control-plane`), so none can meet
# an object it cannot read; the reader-only step exists for clusters that already run.
BOOTSTRAP_VARS = {"encryption_reader_only": False, "encryption_phase": "prepare"}
# Manifest file name -> the component kubeadm generates it for.
MANIFEST_COMPONENTS = {"kube-apiserver.yaml": "kube-apiserver",
                       "kube-controller-manager.yaml": "kube-controller-manager",
                       "kube-scheduler.yaml": "kube-scheduler", "etcd.yaml": "etcd"}
COLLECTED = ("static_pod", "kubelet_config", "file", "sysctl")
KEY_SIZES = {"secretbox": (32,), "aescbc": (16, 24, 32), "aesgcm": (16, 24, 32)}


@dataclass
class ComponentEdits:
    """What the static_pod tasks do to one component, in task order."""

    edits: list[tuple[str, dict]] = field(default_factory=list)   # (task name, rendered args)


@dataclass
class NodeFile:
    """A file or directory the operator copies to every control plane before kubeadm runs."""

    path: str
    content: bytes | None            # None: a directory
    mode: int
    secret: bool = False
    source: str = ""                 # the task that writes it


@dataclass
class Hardening:
    """Everything the playbooks would set on a control plane, as data."""

    components: dict[str, ComponentEdits] = field(default_factory=dict)
    kubelet: dict = field(default_factory=dict)             # dotted key -> value
    kubelet_where: dict = field(default_factory=dict)       # dotted key -> (path, line)
    files: list[NodeFile] = field(default_factory=list)
    sysctl_files: list[NodeFile] = field(default_factory=list)   # every node, before kubelet
    skipped: list[str] = field(default_factory=list)        # "file:line task (reason)"


def derive(inventory_paths: list[str] | None, extra_vars: dict, playbooks=DEFAULT_PLAYBOOKS,
           host_name: str | None = None) -> Hardening:
    """Evaluate the playbooks for one control-plane host (the inventory's first, or
    `host_name`) and collect their desired state. InputError on bad input."""
    for name in BOOTSTRAP_VARS:
        if name in extra_vars:
            raise InputError(f"-e {name}: a new cluster starts with encryption on (the key "
                             "first in the config every control plane gets before it joins); "
                             f"{name} is for clusters that already run")
    inventory = _inventory(inventory_paths)
    host = _control_plane(inventory, host_name)
    variables_e = {**extra_vars, **encryption_vars({**host.vars, **extra_vars}),
                   **BOOTSTRAP_VARS}
    out = Hardening()
    for path in playbooks:
        for play in load_playbook(path).plays:
            hosts = inventory.select(play.hosts)
            if host.name not in {h.name for h in hosts}:
                continue
            check_vars_spec(play, hosts, extra_vars)
            _collect_play(play, inventory, host, hosts, variables_e, out)
    return out


def _inventory(paths: list[str] | None):
    """The user's inventory, or a one-control-plane, one-worker stand-in (groups as the
    shipped playbooks name them)."""
    from harden.inventory.loader import load_inventory

    if paths:
        return load_inventory(list(paths))
    with tempfile.TemporaryDirectory(prefix="harden-kubeadm-") as tmp:
        ini = os.path.join(tmp, "inventory.ini")
        with open(ini, "w", encoding="utf-8") as handle:
            handle.write("[control_plane]\ncontrol-plane\n\n[workers]\nworker\n")
        return load_inventory([ini])


def _control_plane(inventory, name: str | None):
    if name is not None:
        if name not in inventory.hosts:
            raise InputError(f"--host {name}: no such host in the inventory")
        if name not in inventory.groups.get("control_plane", []):
            raise InputError(f"--host {name}: not in group control_plane; the configuration "
                             "is what the playbooks set on a control plane")
        return inventory.hosts[name]
    if "control_plane" not in inventory.groups or not inventory.groups["control_plane"]:
        raise InputError("the inventory has no host in group control_plane (the group the "
                         "shipped playbooks harden as control planes)")
    return inventory.hosts[inventory.groups["control_plane"][0]]


def _collect_play(play: Play, inventory, host, hosts, extra_vars: dict, out: Hardening) -> None:
    magic = {"inventory_hostname": host.name,
             "group_names": sorted(g for g in host.groups if g != "all"),
             "ansible_check_mode": False, "play_hosts": [h.name for h in hosts],
             "ansible_play_hosts_all": [h.name for h in hosts],
             "groups": {g: list(h) for g, h in inventory.groups.items()},
             "hostvars": {n: {**h.vars, "inventory_hostname": n}
                          for n, h in inventory.hosts.items()},
             "harden_run_id": "kubeadm-config"}
    for task in play.tasks:
        if task.module not in COLLECTED and not _writes_whole_file(task):
            continue
        where = f"{task.path}:{task.line} {task.name}"
        if task.check_mode is True:
            out.skipped.append(f"{where} (check_mode: true, writes nothing)")
            continue
        variables = layered_vars(play.defaults, host.vars, Untemplated(magic), play.vars,
                                 task.vars, extra_vars=extra_vars)
        try:
            for one, scope in _runs(task, variables):
                if not all(evaluate(cond, scope, one.where) for cond in one.when):
                    out.skipped.append(f"{where} (when: false)")
                    continue
                _collect_task(one, play, TaskPlanner.args(one, scope), scope, out)
        except TaskFailed as exc:      # what would fail the task on a host fails here
            raise InputError(f"task '{task.name}': {exc}", *task.where) from None


def _runs(task: Task, variables: dict):
    """(task, variables) once, or once per loop item."""
    if task.loop is None:
        yield task, variables
        return
    for index, item in enumerate(loops.items(*task.loop, variables, task.where)):
        yield task, {**variables, **loops.item_vars(task.loop_control, item, index)}


def _writes_whole_file(task: Task) -> bool:
    return isinstance(get_module(task.module), WholeFileModule)


def _collect_task(task: Task, play: Play, args: dict, variables: dict, out: Hardening) -> None:
    label = f"{os.path.basename(task.path)}: {task.name}"
    if task.module == "static_pod":
        component = MANIFEST_COMPONENTS.get(os.path.basename(args["manifest"]))
        if component is None:
            raise InputError(f"static_pod manifest {args['manifest']} is not one kubeadm "
                             f"generates ({', '.join(MANIFEST_COMPONENTS)})", *task.where)
        out.components.setdefault(component, ComponentEdits()).edits.append((label, args))
    elif task.module == "kubelet_config":
        out.kubelet.update({str(k): v for k, v in args["set"].items()})
        out.kubelet_where.update({str(k): task.where for k in args["set"]})
    elif task.module == "sysctl":
        earlier = [f for f in out.sysctl_files if f.path == args["file"]]
        try:            # as on a node: a second task on the same file edits its lines
            text = sysctl_text(earlier[0].content.decode() if earlier else "",
                               sysctl_values(args))
        except TaskFailed as exc:
            raise InputError(str(exc), *task.where) from None
        out.sysctl_files = [f for f in out.sysctl_files if f.path != args["file"]]
        out.sysctl_files.append(NodeFile(args["file"], text.encode(), 0o644, source=label))
    elif task.module == "file":
        _collect_directory(task, args, label, out)
    else:
        _collect_whole_file(task, play, args, variables, label, out)


def _collect_directory(task: Task, args: dict, label: str, out: Hardening) -> None:
    """Only directories the playbooks create; mode/owner limits on existing files are about
    what kubeadm already wrote (it writes them 0600 root)."""
    if args["state"] != "directory" or glob.has_magic(args["path"]):
        return
    out.files.append(NodeFile(args["path"], None, _mode(args["mode"], 0o755, task), source=label))


def _collect_whole_file(task: Task, play: Play, args: dict, variables: dict, label: str,
                        out: Hardening) -> None:
    module = get_module(task.module)
    ctx = PlanContext(variables, [*task.search_dirs, *play.template_dirs], False)
    content = module.content(args, ctx)
    secret = bool(args.get("secret")) or task.no_log
    out.files = [f for f in out.files if f.path != args["dest"]]     # a later task wins
    out.files.append(NodeFile(args["dest"], content, _mode(args["mode"], 0o644, task),
                              secret=secret, source=label))


def _mode(mode, default: int, task: Task) -> int:
    if mode is None:
        return default
    try:
        return parse_mode(str(mode))
    except (ValueError, TaskFailed, HardenError) as exc:
        raise InputError(f"mode {mode!r}: {exc}", *task.where) from None


def encryption_vars(given: dict) -> dict:
    """The key the encryption config is written with: the one given (-e or the inventory:
    encryption_key, or encryption_keys), checked, or a fresh random 32-byte key."""
    provider = str(given.get("encryption_provider", "secretbox"))
    if "encryption_keys" in given:
        keys = given["encryption_keys"]
        if not isinstance(keys, list) or not keys or \
                not all(isinstance(k, dict) and {"name", "secret"} <= set(k) for k in keys):
            raise InputError("encryption_keys must be a list of {name, secret}")
        for key in keys:
            _check_key(str(key["secret"]), provider, f"encryption_keys {key['name']}")
        return {}
    if "encryption_key" in given:
        _check_key(str(given["encryption_key"]), provider, "encryption_key")
        return {}
    return {"encryption_key": base64.b64encode(secrets.token_bytes(32)).decode()}


def _check_key(secret: str, provider: str, what: str) -> None:
    if "{{" in secret:          # a template (a vault variable, say): the render will tell
        return
    try:
        size = len(base64.b64decode(secret, validate=True))
    except (binascii.Error, ValueError):
        size = -1
    sizes = KEY_SIZES.get(provider, (32,))
    if size not in sizes:
        raise InputError(f"{what}: the API server refuses a {provider} key that is not "
                         f"base64 of {' or '.join(map(str, sizes))} bytes (head -c 32 "
                         "/dev/urandom | base64)")
