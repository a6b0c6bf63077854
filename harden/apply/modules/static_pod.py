"""`static_pod`: edit a control-plane component's flags, volumes and config-hash annotation.

The manifest is edited at line level (harden.apply.manifest) so the diff is what changed and nothing
else. Before a manifest change is planned, every file the new flags name must exist on the node
and be visible in the container through a hostPath volume: a kube-apiserver pointed at a file it
cannot see crash-loops, and that is a control plane down. Referenced config files (encryption,
audit, admission) are hashed into an annotation so that changing only such a file still changes
the manifest, and so still restarts the pod, which does not re-read those files otherwise.
With `replace: false` a flag of `set` that already has another value fails the task instead of
being changed: re-running a playbook must never silently repoint a component that already uses
another file (e.g. another encryption config, whose keys the stored data needs).
"""

from __future__ import annotations

import hashlib
import posixpath
import re

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.manifest import Manifest
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write

CONFIG_HASH_PREFIX = "harden.io/config-hash-"
VOLUME_TYPES = ("File", "FileOrCreate", "Directory", "DirectoryOrCreate")

# Flags whose value is a file the component reads at start: it must exist and be mounted.
FILE_FLAGS = frozenset({
    "admission-control-config-file", "audit-policy-file", "audit-webhook-config-file",
    "authentication-config", "authorization-config", "authentication-kubeconfig",
    "authorization-kubeconfig", "cert-file", "client-ca-file", "cluster-signing-cert-file",
    "cluster-signing-key-file", "config", "egress-selector-config-file",
    "encryption-provider-config", "etcd-cafile", "etcd-certfile", "etcd-keyfile", "key-file",
    "kubeconfig", "kubelet-certificate-authority", "kubelet-client-certificate",
    "kubelet-client-key", "peer-cert-file", "peer-key-file", "peer-trusted-ca-file",
    "proxy-client-cert-file", "proxy-client-key-file", "requestheader-client-ca-file",
    "root-ca-file", "service-account-key-file", "service-account-private-key-file",
    "service-account-signing-key-file", "tls-cert-file", "tls-private-key-file",
    "trusted-ca-file",
})
# Flags naming a file the component writes: its directory must be mounted.
OUTPUT_FLAGS = frozenset({"audit-log-path"})
# Pairs of list flags that must not share an element (the API server refuses to start).
EXCLUSIVE_LISTS = (("enable-admission-plugins", "disable-admission-plugins"),)


class StaticPodModule(Module):
    name = "static_pod"
    args = (
        Arg("manifest", required=True),
        Arg("container"),
        Arg("set", "dict", default={}),
        Arg("remove", "list", default=[]),
        Arg("add_to_list", "dict", default={}),
        Arg("remove_from_list", "dict", default={}),
        Arg("volumes", "list", default=[]),
        Arg("remove_volumes", "list", default=[]),
        Arg("config_hash_files", "list", default=[]),
        Arg("replace", "bool", default=True),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        wanted = [FactRequest(FILE, args["manifest"], content=True)]
        for name, value in _flag_values(args).items():
            if name in FILE_FLAGS and isinstance(value, str) and value.startswith("/"):
                wanted.append(FactRequest(FILE, value))
        for volume in _volumes(args):
            wanted.append(FactRequest(FILE, volume["host_path"]))
        wanted += [FactRequest(FILE, p, content=True) for p in args["config_hash_files"]]
        return wanted

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        path = args["manifest"]
        state = facts.file(path, content=True)
        if state is None:
            raise TaskFailed(f"static_pod: manifest {path} does not exist on this host")
        manifest = Manifest(state.content.decode(), path)
        container = args["container"]
        _edit(manifest, args, facts, container, path)
        _check_references(manifest, args, facts, container)
        _check_exclusive(manifest, container)
        new = manifest.text.encode()
        return plan_write(path, new, state, None, None, None, secret=False)


def _flag_name(flag: str) -> str:
    return str(flag).lstrip("-")


def _flag_value(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _flag_values(args: dict) -> dict[str, str | None]:
    return {_flag_name(k): _flag_value(v) for k, v in (args["set"] or {}).items()}


def _elements(value) -> list[str]:
    if isinstance(value, str):
        return [e.strip() for e in value.split(",") if e.strip()]
    return [str(e) for e in value or []]


def _volumes(args: dict) -> list[dict]:
    out = []
    for spec in args["volumes"] or []:
        if not isinstance(spec, dict) or not {"name", "host_path"} <= set(spec):
            raise TaskFailed("static_pod: each volume needs name and host_path "
                             "(optional: mount_path, read_only, type)")
        unknown = set(spec) - {"name", "host_path", "mount_path", "read_only", "type"}
        if unknown:
            raise TaskFailed(f"static_pod: unknown volume key(s) {', '.join(sorted(unknown))}; "
                             "valid: host_path, mount_path, name, read_only, type")
        if spec.get("type") is not None and spec["type"] not in VOLUME_TYPES:
            raise TaskFailed(f"static_pod: volume type must be one of {', '.join(VOLUME_TYPES)}")
        out.append(spec)
    return out


def _edit(manifest: Manifest, args: dict, facts: Facts, container: str | None,
          path: str) -> None:
    for flag in args["remove"] or []:
        manifest.remove_flag(_flag_name(flag), container)
    for name, value in _flag_values(args).items():
        if not args["replace"] and _kept_as_is(manifest, name, value, container, path):
            continue
        if value is None:
            manifest.remove_flag(name, container)
        else:
            manifest.set_flag(name, value, container)
    for flag, elements in (args["add_to_list"] or {}).items():
        manifest.edit_list_flag(_flag_name(flag), add=_elements(elements), container=container)
    for flag, elements in (args["remove_from_list"] or {}).items():
        manifest.edit_list_flag(_flag_name(flag), remove=_elements(elements),
                                container=container)
    for name in args["remove_volumes"] or []:
        manifest.remove_volume(str(name), container)
    for volume in _volumes(args):
        host = facts.file(volume["host_path"])
        manifest.ensure_volume(volume["name"], volume["host_path"],
                               volume.get("mount_path") or volume["host_path"],
                               bool(volume.get("read_only", True)),
                               volume.get("type") or _volume_type(volume, host), container)
    if args["config_hash_files"]:
        manifest.set_annotation(config_hash_annotation(args["config_hash_files"]),
                                _config_hash(args, facts))


def _kept_as_is(manifest: Manifest, name: str, wanted: str | None, container: str | None,
                path: str) -> bool:
    """replace: false. True when the flag already has the wanted value (it is left exactly as
    written); fails when it has another one, removal included; False when it is absent."""
    current = manifest.flags(container)
    if name not in current:
        return False
    value = "true" if current[name] is None else current[name]     # bare --flag means true
    if value == wanted:
        return True
    raise TaskFailed(f"static_pod: {path}: --{name} is already {value!r}, the task wants "
                     f"{'it removed' if wanted is None else repr(wanted)}; replace: false "
                     "refuses to change it (check which value is right, then edit the manifest "
                     "or drop replace: false)")


def config_hash_annotation(files: list[str]) -> str:
    """One annotation per config set (named after its first file), so two tasks hashing
    different files (audit policy, admission config) never overwrite each other's hash."""
    stem = posixpath.basename(sorted(files)[0]).split(".")[0]
    slug = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).strip("-_.")[:40] or "files"
    return CONFIG_HASH_PREFIX + slug


def _volume_type(volume: dict, host) -> str:
    if host is not None:
        return "File" if host.kind == "file" else "DirectoryOrCreate"
    if volume["host_path"].endswith("/"):
        return "DirectoryOrCreate"
    raise TaskFailed(f"static_pod: volume '{volume['name']}': {volume['host_path']} does not "
                     "exist on this host; create it first or give type: DirectoryOrCreate")


def _config_hash(args: dict, facts: Facts) -> str:
    digest = hashlib.sha256()
    for path in sorted(args["config_hash_files"]):
        state = facts.file(path, content=True)
        if state is None or state.kind != "file":
            raise TaskFailed(f"static_pod: config_hash_files: {path} is not a file on this host")
        digest.update(f"{path}\0{state.sha256}\n".encode())
    return digest.hexdigest()[:32]


def _check_references(manifest: Manifest, args: dict, facts: Facts,
                      container: str | None) -> None:
    """Refuse flags naming files the container cannot see."""
    for name, value in _flag_values(args).items():
        if value is None or not value.startswith("/"):
            continue
        if name in FILE_FLAGS:
            host = manifest.host_path_of(value, container)
            if host is None:
                raise TaskFailed(f"static_pod: --{name}={value} is not inside any volumeMount "
                                 f"of the container; add a hostPath volume for it")
            state = facts.file(host)
            if state is None:
                raise TaskFailed(f"static_pod: --{name}={value}: {host} does not exist on this "
                                 f"host; write it before pointing the component at it")
        elif name in OUTPUT_FLAGS and value != "-":
            if manifest.host_path_of(posixpath.dirname(value) or "/", container) is None:
                raise TaskFailed(f"static_pod: --{name}={value}: its directory is not inside "
                                 f"any volumeMount of the container")
    for volume in _volumes(args):
        if volume.get("type") in ("File", "Directory") and facts.file(volume["host_path"]) \
                is None:
            raise TaskFailed(f"static_pod: volume '{volume['name']}' (type {volume['type']}): "
                             f"{volume['host_path']} does not exist on this host")


def _check_exclusive(manifest: Manifest, container: str | None) -> None:
    for enable, disable in EXCLUSIVE_LISTS:
        both = set(manifest.list_flag(enable, container)) & \
            set(manifest.list_flag(disable, container))
        if both:
            raise TaskFailed(f"static_pod: {', '.join(sorted(both))} would be in both "
                             f"--{enable} and --{disable}; the component refuses to start")


MODULE = StaticPodModule()
