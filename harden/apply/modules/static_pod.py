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

Two refusals mirror kube-apiserver start-up errors that would otherwise crash-loop it after the
write: `--authorization-mode` together with `--authorization-config` (mutually exclusive upstream,
pkg/kubeapiserver/options/authorization.go), and an admission plugin that cannot start without
its configuration (EventRateLimit, ImagePolicyWebhook) enabled while --admission-control-config-file
does not configure it. `unless_set` leaves a flag alone where another flag makes it wrong (the
shipped playbook: no --authorization-mode where --authorization-config is used), and `missing_ok`
skips a manifest that is not on this host (etcd outside the node: external etcd).

`config_set` sets keys in the file the container's `--config` names (a KubeSchedulerConfiguration,
say): with `--config`, kube-scheduler ignores flags such as --profiling, so the setting has to
be made in that file. The file's hash goes into the manifest, so the pod restarts and reads it.
"""

from __future__ import annotations

import hashlib
import posixpath
import re

import yaml

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.manifest import Manifest, YamlText
from harden.apply import kubeadm_persist
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write
from harden.kubeadm.cluster_config import SECTIONS, Volume, persist
from harden.node.paths import MANIFEST_DIR

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
# Flags the API server refuses to see together.
EXCLUSIVE_FLAGS = (("authorization-mode", "authorization-config"),)
# Admission plugins whose factory fails without a configuration in --admission-control-config-file
# (plugin/pkg/admission/eventratelimit: "limits: must not be empty"; imagepolicy: "no config
# specified"). PodNodeSelector, PodTolerationRestriction, ResourceQuota start with defaults.
PLUGINS_NEEDING_CONFIG = ("EventRateLimit", "ImagePolicyWebhook")


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
        Arg("unless_set", "dict", default={}),
        Arg("missing_ok", "bool", default=False),
        Arg("config_set", "dict", default={}),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        wanted = [FactRequest(FILE, args["manifest"], content=True)]
        for name, value in _flag_values(args).items():
            if name in FILE_FLAGS and isinstance(value, str) and value.startswith("/"):
                wanted.append(FactRequest(FILE, value))
        for volume in _volumes(args):
            wanted.append(FactRequest(FILE, volume["host_path"]))
        wanted += [FactRequest(FILE, p, content=True) for p in args["config_hash_files"]]
        if _component(args["manifest"]):
            wanted.append(kubeadm_persist.request(kubeadm_persist.KUBEADM_CONFIG))
        return wanted

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        path = args["manifest"]
        state = facts.file(path, content=True)
        if state is None:
            if args["missing_ok"]:
                return []
            raise TaskFailed(f"static_pod: manifest {path} does not exist on this host")
        manifest = Manifest(state.content.decode(), path)
        container = args["container"]
        edits = _without_skipped(args, manifest.flags(container))
        _edit(manifest, edits, facts, container, path)
        _check_references(manifest, args, facts, container)
        _check_exclusive(manifest, container)
        _check_plugin_configs(manifest, facts, container, path)
        config_changes = _config_file_changes(manifest, args, facts, container, path)
        new = manifest.text.encode()
        return config_changes + plan_write(path, new, state, None, None, None, secret=False) \
            + _persisted(manifest, edits, facts, ctx, container, path)

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        """`msg` says what was left alone and why (shown on the task line)."""
        state = facts.file(args["manifest"], content=True)
        if state is None:
            return {"msg": f"skipped: {args['manifest']} is not on this host"} \
                if args["missing_ok"] else {}
        skipped = _skipped(args, Manifest(state.content.decode(), args["manifest"])
                           .flags(args["container"]))
        notes = [f"left --{flag} alone: --{because} is set" for flag, because in skipped.items()]
        kept = kubeadm_persist.outcome(facts, args["manifest"], changes) \
            if _component(args["manifest"]) else {}
        if kept.get("kubeadm_config", "").startswith("node only,"):
            notes.append(kept["kubeadm_config"])
        return {**kept, **({"msg": "; ".join(notes)} if notes else {}),
                **({"skipped_flags": sorted(skipped)} if skipped else {})}


def _component(manifest_path: str) -> str | None:
    """The control-plane component a manifest in kubeadm's static-pod dir runs (kubeadm
    regenerates exactly these four), else None."""
    if posixpath.dirname(posixpath.normpath(manifest_path)) != MANIFEST_DIR:
        return None
    name = posixpath.splitext(posixpath.basename(manifest_path))[0]
    return name if name in SECTIONS else None


def _persisted(manifest: Manifest, edits: dict, facts: Facts, ctx: PlanContext,
               container: str | None, path: str) -> list[Change]:
    """The task's flags and volumes, as the manifest now has them, kept in ClusterConfiguration
    (harden.apply.kubeadm_persist): the next `kubeadm upgrade` writes them again."""
    component = _component(path)
    if component is None:
        return []
    touched = [_flag_name(f) for f in edits["remove"] or []] + list(_flag_values(edits)) + \
        [_flag_name(f) for key in ("add_to_list", "remove_from_list") for f in edits[key] or {}]
    now = manifest.flags(container)
    flags = {name: (("true" if now[name] is None else now[name]) if name in now else None)
             for name in dict.fromkeys(touched)}
    mounts = {m.name: m for m in manifest.mounts(container)}
    volumes = []
    for spec in _volumes(edits):
        host, mount = manifest.volumes().get(spec["name"], {}), mounts.get(spec["name"])
        if host.get("path") and mount is not None:
            volumes.append(Volume(spec["name"], host["path"], mount.mount_path, mount.read_only,
                                  host.get("type") or ""))
    if not flags and not volumes:
        return []
    return kubeadm_persist.plan(
        facts, ctx, kubeadm_persist.KUBEADM_CONFIG, kubeadm_persist.CLUSTER_KEY, path,
        lambda text: persist(text, kubeadm_persist.KUBEADM_CONFIG, component, flags, volumes),
        f"static_pod {path}")


def _config_file_changes(manifest: Manifest, args: dict, facts: Facts, container: str | None,
                         path: str) -> list[Change]:
    """`config_set` in the file --config names (none: nothing to do, the flags apply); its hash
    in the manifest restarts the pod when only the file changed."""
    config = manifest.flags(container).get("config")
    if not args["config_set"] or not config:
        return []
    host = manifest.host_path_of(config, container)
    state = facts.file(host, content=True) if host else None
    if state is None or state.kind != "file":
        raise TaskFailed(f"static_pod: {path}: --config={config} is not a file this host shows "
                         f"the container; config_set cannot be applied")
    doc = YamlText(state.content.decode(), host)
    for key, value in args["config_set"].items():
        doc.set(str(key).split("."), value)
    new = doc.text.encode()
    digest = hashlib.sha256(f"{host}\0{hashlib.sha256(new).hexdigest()}\n".encode())
    manifest.set_annotation(config_hash_annotation([host]), digest.hexdigest()[:32])
    return plan_write(host, new, state, None, None, None, secret=False)


def _skipped(args: dict, current: dict) -> dict[str, str]:
    """{flag: the present flag that makes `unless_set` leave it alone}."""
    out = {}
    for flag, others in (args["unless_set"] or {}).items():
        present = [o for o in _elements(others) if _flag_name(o) in current]
        if present:
            out[_flag_name(flag)] = _flag_name(present[0])
    return out


def _without_skipped(args: dict, current: dict) -> dict:
    """The task's arguments minus every edit of a flag `unless_set` leaves alone."""
    skipped = _skipped(args, current)
    if not skipped:
        return args
    out = dict(args)
    out["set"] = {k: v for k, v in (args["set"] or {}).items() if _flag_name(k) not in skipped}
    out["remove"] = [f for f in args["remove"] or [] if _flag_name(f) not in skipped]
    for key in ("add_to_list", "remove_from_list"):
        out[key] = {k: v for k, v in (args[key] or {}).items() if _flag_name(k) not in skipped}
    return out


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
    flags = manifest.flags(container)
    for first, second in EXCLUSIVE_FLAGS:
        if first in flags and second in flags:
            raise TaskFailed(f"static_pod: --{first} and --{second} would both be set; the "
                             f"component refuses to start (use one; unless_set: {{{first}: "
                             f"[{second}]}} leaves --{first} alone where --{second} is used)")
    for enable, disable in EXCLUSIVE_LISTS:
        both = set(manifest.list_flag(enable, container)) & \
            set(manifest.list_flag(disable, container))
        if both:
            raise TaskFailed(f"static_pod: {', '.join(sorted(both))} would be in both "
                             f"--{enable} and --{disable}; the component refuses to start")


def _check_plugin_configs(manifest: Manifest, facts: Facts, container: str | None,
                          path: str) -> None:
    """Refuse a plugin that needs a configuration the admission config file does not give."""
    needing = [p for p in manifest.list_flag("enable-admission-plugins", container)
               if p in PLUGINS_NEEDING_CONFIG]
    if not needing:
        return
    configured = _admission_plugins_configured(manifest, facts, container)
    missing = [p for p in needing if p not in configured]
    if missing:
        flag = manifest.flags(container).get("admission-control-config-file")
        where = f"--admission-control-config-file={flag} has no entry for it" if flag else \
            "--admission-control-config-file is not set"
        raise TaskFailed(f"static_pod: {path}: admission plugin {', '.join(missing)} needs its "
                         f"configuration and {where}; the API server would exit at start "
                         f"(write the AdmissionConfiguration first: playbooks/pod-security.yml)")


def _admission_plugins_configured(manifest: Manifest, facts: Facts,
                                  container: str | None) -> set[str]:
    """Plugin names listed in the AdmissionConfiguration the manifest names (as planned)."""
    flag = manifest.flags(container).get("admission-control-config-file")
    if not flag:
        return set()
    host = manifest.host_path_of(flag, container) or flag
    state = facts.file(host, content=True)
    if state is None or state.content is None:
        return set()
    try:
        doc = yaml.safe_load(state.content)
    except yaml.YAMLError:
        return set()
    plugins = doc.get("plugins") if isinstance(doc, dict) else None
    return {str(p.get("name")) for p in plugins or [] if isinstance(p, dict)
            and (p.get("configuration") is not None or p.get("path"))}


MODULE = StaticPodModule()
