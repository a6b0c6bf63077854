"""The kubeadm configuration a new cluster starts hardened from: `harden kubeadm-config`.

harden.apply.kubeadm_bootstrap says what the playbooks would set; this module turns that into
kubeadm's own shapes and writes the directory `harden lab up --kubeadm-config` and an operator
use: `kubeadm-config.yaml` (InitConfiguration skeleton, ClusterConfiguration, KubeletConfiguration)
and `files/<absolute path>` (audit policy, admission config, encryption config, sysctl file).

kubeadm merges `extraArgs` over its own defaults by name, a user value replacing the default
wholesale, so a list flag the playbooks extend (enable-admission-plugins, authorization-mode)
is written as kubeadm's default plus the additions: setting only `EventRateLimit` would drop
kubeadm's `NodeRestriction`. v1beta3 takes `extraArgs` as a map, v1beta4 (kubeadm >= 1.31) as
a list of {name, value}. Everything kubeadm (or the component it starts) would refuse is
refused here first, naming the setting, and nothing is written.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import shutil
from dataclasses import dataclass, field

import yaml

from harden import __version__
from harden.apply.kubeadm_bootstrap import Hardening, NodeFile
from harden.apply.modules.static_pod import EXCLUSIVE_LISTS, FILE_FLAGS, VOLUME_TYPES
from harden.errors import HardenError, InputError
from harden.kubeadm.cluster_config import KUBEADM_FLAGS, KUBEADM_MOUNTS, SECTIONS

API_VERSIONS = ("v1beta4", "v1beta3")
# kubeadm's own values of the list flags the playbooks extend: an extraArg of the same name
# replaces them.
KUBEADM_LIST_DEFAULTS = {("kube-apiserver", flag): KUBEADM_FLAGS["kube-apiserver"][flag]
                         for flag in ("enable-admission-plugins", "authorization-mode")}
# kubeadm leaves --authorization-mode out when --authorization-config is given.
KUBEADM_OMITS = {("kube-apiserver", "authorization-mode"): "authorization-config"}
KUBEADM_VOLUME_NAMES = {"ca-certs", "etc-ca-certificates", "etc-pki", "k8s-certs",
                        "usr-share-ca-certificates", "usr-local-share-ca-certificates",
                        "flexvolume-dir", "kubeconfig", "etcd-certs", "etcd-data"}
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$|^0$")
# KubeletConfiguration fields' types (kubelet.config.k8s.io/v1beta1), for the keys a playbook
# may set here: kubeadm decodes the document strictly and refuses a value of another type.
KUBELET_TYPES = {
    "readOnlyPort": int, "podPidsLimit": int, "eventRecordQPS": int, "eventBurst": int,
    "port": int, "healthzPort": int, "maxPods": int,
    "authentication.anonymous.enabled": bool, "authentication.webhook.enabled": bool,
    "makeIPTablesUtilChains": bool, "rotateCertificates": bool, "serverTLSBootstrap": bool,
    "protectKernelDefaults": bool, "seccompDefault": bool,
    "authorization.mode": ("AlwaysAllow", "Webhook"),
    "streamingConnectionIdleTimeout": "duration",
    "tlsCipherSuites": list,
}
PLACEHOLDER = "FILL-IN"


@dataclass
class Options:
    api: str = "v1beta4"
    kubernetes_version: str | None = None
    control_plane_endpoint: str | None = None
    advertise_address: str | None = None
    node_name: str | None = None


@dataclass
class ComponentConfig:
    args: dict[str, str] = field(default_factory=dict)      # flag -> value, in task order
    volumes: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- from the playbooks' edits to kubeadm's fields -----------------------------------------

def component_configs(hardening: Hardening) -> dict[str, ComponentConfig]:
    """extraArgs and extraVolumes per component, from the static_pod tasks in order."""
    known = {f.path: f for f in hardening.files}
    out = {}
    for component, edits in hardening.components.items():
        config = ComponentConfig()
        for label, args in edits.edits:
            _apply_edit(component, config, label, args, known)
        _drop_omitted(component, config)
        out[component] = config
    return out


def _apply_edit(component: str, config: ComponentConfig, label: str, args: dict,
                known: dict[str, NodeFile]) -> None:
    skipped = _unless_set(component, config, args)
    for flag in args["remove"] or []:
        config.args.pop(_name(flag), None)
    for flag, value in (args["set"] or {}).items():
        name = _name(flag)
        if name in skipped:
            continue
        if value is None:
            config.args.pop(name, None)
        elif not args["replace"] and name in config.args and \
                config.args[name] != _text(value):
            raise InputError(f"{label}: --{name} is already {config.args[name]!r} from an "
                             f"earlier task, this one wants {_text(value)!r} (replace: false)")
        else:
            config.args[name] = _text(value)
    for key, add in (("add_to_list", True), ("remove_from_list", False)):
        for flag, elements in (args[key] or {}).items():
            if _name(flag) not in skipped:
                _edit_list(component, config, _name(flag), _elements(elements), add)
    for volume in args["volumes"] or []:
        _add_volume(config, _volume(volume, known), label)
    if args["config_set"] and "config" in config.args:
        raise InputError(f"{label}: config_set edits the file --config names "
                         f"({config.args['config']}), which harden kubeadm-config does not write")


def _unless_set(component: str, config: ComponentConfig, args: dict) -> set[str]:
    skipped = set()
    for flag, others in (args["unless_set"] or {}).items():
        if any(_name(o) in config.args for o in _elements(others)):
            skipped.add(_name(flag))
    return skipped


def _edit_list(component: str, config: ComponentConfig, name: str, elements: list[str],
               add: bool) -> None:
    current = config.args.get(name, KUBEADM_LIST_DEFAULTS.get((component, name), ""))
    items = [e.strip() for e in current.split(",") if e.strip()]
    if add:
        items += [e for e in elements if e not in items]
    else:
        items = [e for e in items if e not in elements]
    if items:
        config.args[name] = ",".join(dict.fromkeys(items))
    elif name in config.args:
        del config.args[name]


def _drop_omitted(component: str, config: ComponentConfig) -> None:
    """kubeadm writes no --authorization-mode next to --authorization-config."""
    for (comp, flag), because in KUBEADM_OMITS.items():
        if comp == component and because in config.args and flag in config.args:
            del config.args[flag]
            config.notes.append(f"--{flag} left out: kubeadm omits it with --{because}")


def _volume(spec: dict, known: dict[str, NodeFile]) -> dict:
    host = str(spec["host_path"])
    kind = spec.get("type")
    if kind is None:
        written = known.get(host.rstrip("/") or "/")
        kind = "File" if written is not None and written.content is not None \
            else "DirectoryOrCreate"
    return {"name": str(spec["name"]), "hostPath": host,
            "mountPath": str(spec.get("mount_path") or host),
            "readOnly": bool(spec.get("read_only", True)), "pathType": kind}


def _add_volume(config: ComponentConfig, volume: dict, label: str) -> None:
    for existing in config.volumes:
        if existing["name"] == volume["name"]:
            if existing != volume:
                raise InputError(f"{label}: volume {volume['name']!r} is given twice with "
                                 f"different paths ({existing['hostPath']}, "
                                 f"{volume['hostPath']}); a pod's volume names are unique")
            return
    config.volumes.append(volume)


# --- checks: what kubeadm or the component would refuse ------------------------------------

def check(configs: dict[str, ComponentConfig], kubelet: dict, options: Options,
          kubelet_where: dict | None = None) -> None:
    """InputError naming the first setting kubeadm, the kubelet or a control-plane component
    would refuse."""
    if options.api not in API_VERSIONS:
        raise InputError(f"--kubeadm-api {options.api}: kubeadm reads "
                         f"{' or '.join(API_VERSIONS)}")
    _check_version(options)
    _check_endpoint(options.control_plane_endpoint)
    _check_node(options)
    for component, config in configs.items():
        _check_component(component, config)
    for key, value in kubelet.items():
        _check_kubelet_value(key, value, (kubelet_where or {}).get(key, (None, None)))


def _check_version(options: Options) -> None:
    if options.kubernetes_version is None:
        return
    match = _VERSION.match(options.kubernetes_version)
    if not match:
        raise InputError(f"--kubernetes-version {options.kubernetes_version!r}: kubeadm "
                         "wants a version such as v1.33.2")
    if options.api == "v1beta4" and (int(match[1]), int(match[2])) < (1, 31):
        raise InputError(f"--kubernetes-version {options.kubernetes_version}: kubeadm before "
                         "v1.31 does not read kubeadm.k8s.io/v1beta4; give --kubeadm-api v1beta3")


def _check_endpoint(endpoint: str | None) -> None:
    if endpoint is None:
        return
    host, _, port = endpoint.rpartition(":") if endpoint.count(":") == 1 or \
        endpoint.startswith("[") else (endpoint, "", "")
    if not host.strip("[]") or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise InputError(f"--control-plane-endpoint {endpoint!r}: kubeadm wants HOST or "
                         "HOST:PORT (controlPlaneEndpoint: endpoint is not valid)")


def _check_node(options: Options) -> None:
    """kubeadm's checks of the InitConfiguration values given as options."""
    if options.advertise_address is not None:
        try:
            ipaddress.ip_address(options.advertise_address)
        except ValueError:
            raise InputError(f"--advertise-address {options.advertise_address!r}: "
                             "localAPIEndpoint.advertiseAddress: ip address is not valid") \
                from None
    name = options.node_name
    if name is not None and (len(name) > 253 or not all(
            _DNS_LABEL.match(part) for part in name.split("."))):
        raise InputError(f"--node-name {name!r}: nodeRegistration.name must be a lower-case "
                         "DNS subdomain (letters, digits, '-', '.')")


def _check_component(component: str, config: ComponentConfig) -> None:
    where = ".".join(SECTIONS[component])
    for name in config.args:
        if not name or "=" in name or any(c.isspace() for c in name):
            raise InputError(f"{where}.extraArgs: {name!r} is not a flag name "
                             "(kubeadm: argument has no name)")
    for first, second in EXCLUSIVE_LISTS:
        both = set(_elements(config.args.get(first, ""))) & \
            set(_elements(config.args.get(second, "")))
        if both:
            raise InputError(f"{where}.extraArgs: {', '.join(sorted(both))} both in --{first} "
                             f"and --{second}; {component} refuses to start ("
                             f"plugins ... overlapped)")
    mounts = [*KUBEADM_MOUNTS[component], *(v["mountPath"] for v in config.volumes)]
    for volume in config.volumes:
        _check_volume(where, volume)
    for name, value in config.args.items():
        if name in FILE_FLAGS and value.startswith("/") and not _visible(value, mounts):
            raise InputError(f"{where}.extraArgs: --{name}={value} is not inside any volume "
                             f"of {component} ({', '.join(mounts)}): the component would not "
                             "find it in its container and would not start")


def _check_volume(where: str, volume: dict) -> None:
    if not _DNS_LABEL.match(volume["name"]) or len(volume["name"]) > 63:
        raise InputError(f"{where}.extraVolumes: name {volume['name']!r} is not a DNS label "
                         "(lower-case letters, digits, '-'): the kubelet refuses the pod")
    if volume["name"] in KUBEADM_VOLUME_NAMES:
        raise InputError(f"{where}.extraVolumes: name {volume['name']!r} is one of kubeadm's "
                         "own volumes, which it would replace")
    for key in ("hostPath", "mountPath"):
        if not posixpath.isabs(volume[key]):
            raise InputError(f"{where}.extraVolumes {volume['name']}: {key} "
                             f"{volume[key]!r} is not an absolute path")
    if volume["pathType"] not in VOLUME_TYPES:
        raise InputError(f"{where}.extraVolumes {volume['name']}: pathType "
                         f"{volume['pathType']!r} is not one of {', '.join(VOLUME_TYPES)}")


def _visible(path: str, mounts: list[str]) -> bool:
    return any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts)


def _check_kubelet_value(key: str, value, where_set: tuple) -> None:
    want = KUBELET_TYPES.get(key)
    where = f"KubeletConfiguration {key}"
    if want is None:
        return
    if isinstance(want, tuple):
        ok = value in want
        expected = " or ".join(want)
    elif want == "duration":
        ok = isinstance(value, str) and bool(_DURATION.match(value))
        expected = "a duration such as 5m0s"
    elif want is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        expected = "an integer"
    else:
        ok = isinstance(value, want)
        expected = {bool: "true or false", list: "a list"}[want]
    if not ok:
        raise InputError(f"{where}: {value!r} is not {expected} (kubeadm decodes the "
                         "KubeletConfiguration strictly and refuses it)", *where_set)


# --- the documents -------------------------------------------------------------------------

def cluster_configuration(configs: dict[str, ComponentConfig], options: Options) -> dict:
    doc: dict = {"apiVersion": f"kubeadm.k8s.io/{options.api}", "kind": "ClusterConfiguration"}
    if options.kubernetes_version:
        doc["kubernetesVersion"] = options.kubernetes_version
    if options.control_plane_endpoint:
        doc["controlPlaneEndpoint"] = options.control_plane_endpoint
    for component in SECTIONS:
        config = configs.get(component)
        if config is None or not (config.args or config.volumes):
            continue
        *parents, leaf = SECTIONS[component]
        target = doc
        for parent in parents:
            target = target.setdefault(parent, {})
        section = target.setdefault(leaf, {})
        if config.args:
            section["extraArgs"] = _extra_args(config.args, options.api)
        if config.volumes:
            section["extraVolumes"] = [dict(v) for v in config.volumes]
    return doc


def _extra_args(args: dict[str, str], api: str):
    if api == "v1beta3":
        return dict(args)
    return [{"name": name, "value": value} for name, value in args.items()]


def kubelet_configuration(kubelet: dict) -> dict:
    doc: dict = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration"}
    for dotted, value in kubelet.items():
        *parents, leaf = dotted.split(".")
        target = doc
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return doc


def init_configuration(options: Options) -> tuple[dict, list[str]]:
    """The InitConfiguration skeleton: node-specific values the user fills in (kubeadm refuses
    the placeholders), unless given as options."""
    address = options.advertise_address or f"{PLACEHOLDER}-advertise-address"
    name = options.node_name or f"{PLACEHOLDER}-node-name"
    doc = {"apiVersion": f"kubeadm.k8s.io/{options.api}", "kind": "InitConfiguration",
           "localAPIEndpoint": {"advertiseAddress": address, "bindPort": 6443},
           "nodeRegistration": {"name": name}}
    todo = [f for f, v in (("localAPIEndpoint.advertiseAddress", options.advertise_address),
                           ("nodeRegistration.name", options.node_name)) if v is None]
    return doc, todo


def _dump(doc: dict) -> str:
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False, width=100)


def render(hardening: Hardening, configs: dict[str, ComponentConfig], options: Options,
           sources: list[str]) -> str:
    """kubeadm-config.yaml: a commented header, then the three documents."""
    init, todo = init_configuration(options)
    header = [f"# Written by harden kubeadm-config (harden {__version__}) from "
              f"{', '.join(os.path.basename(s) for s in sources)}.",
              "# Before `kubeadm init --config kubeadm-config.yaml`: copy files/ to the same",
              "# absolute paths on EVERY control plane (files/etc/kubernetes/enc holds the",
              "# encryption key: a secret, mode 0600; every control plane needs the same file",
              "# before `kubeadm join --control-plane`), and files/etc/sysctl.d to every node",
              "# followed by `sysctl --system` (the kubelet refuses to start without them)."]
    if todo:
        header.append(f"# FILL IN in InitConfiguration below: {', '.join(todo)} "
                      f"(values starting with {PLACEHOLDER}; kubeadm refuses them as they are).")
    notes = [n for c in configs.values() for n in c.notes]
    header += [f"# Note: {n}" for n in notes]
    docs = [_dump(init), _dump(cluster_configuration(configs, options)),
            _dump(kubelet_configuration(hardening.kubelet))]
    return "\n".join(header) + "\n---\n" + "---\n".join(docs)


# --- writing the directory -----------------------------------------------------------------

def write(out_dir: str, text: str, files: list[NodeFile]) -> list[str]:
    """DIR/kubeadm-config.yaml and DIR/files/<path>, DIR 0700 (it holds a key). Refuses a
    DIR that exists and is not empty: an encryption key must never be overwritten."""
    if os.path.exists(out_dir) and (not os.path.isdir(out_dir) or os.listdir(out_dir)):
        raise HardenError(f"{out_dir} exists and is not an empty directory; harden "
                          "kubeadm-config writes a new one (it would replace an encryption "
                          "key someone may still need)")
    created = not os.path.exists(out_dir)
    os.makedirs(out_dir, mode=0o700, exist_ok=True)
    os.chmod(out_dir, 0o700)
    try:
        return _write_tree(out_dir, text, files)
    except OSError as exc:          # no half-written directory (with a key) left behind
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise HardenError(f"cannot write {out_dir}: {exc}") from None


def _write_tree(out_dir: str, text: str, files: list[NodeFile]) -> list[str]:
    written = [_write_file(os.path.join(out_dir, "kubeadm-config.yaml"), text.encode(), 0o600)]
    root = os.path.join(out_dir, "files")
    for item in sorted(files, key=lambda f: (f.content is not None, f.path)):
        target = os.path.join(root, item.path.lstrip("/"))
        if item.content is None:
            os.makedirs(target, exist_ok=True)
            os.chmod(target, item.mode)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            written.append(_write_file(target, item.content, item.mode))
    return written


def _write_file(path: str, content: bytes, mode: int) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    os.chmod(path, mode)
    return path


def _name(flag) -> str:
    return str(flag).lstrip("-")


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return str(value)


def _elements(value) -> list[str]:
    if isinstance(value, str):
        return [e.strip() for e in value.split(",") if e.strip()]
    return [str(e) for e in value or []]


# --- the command ---------------------------------------------------------------------------

@dataclass
class Result:
    out_dir: str
    written: list[str]
    todo: list[str]
    secret_files: list[str]
    node_files: list[str]


def generate(out_dir: str, inventories: list[str] | None, extra_vars: dict, options: Options,
             playbooks: list[str] | None = None, host: str | None = None) -> Result:
    """Evaluate the playbooks, check, and write DIR; nothing is written when a check fails."""
    from harden.apply.kubeadm_bootstrap import DEFAULT_PLAYBOOKS, derive

    sources = list(playbooks or DEFAULT_PLAYBOOKS)
    hardening = derive(inventories, extra_vars, sources, host)
    configs = component_configs(hardening)
    check(configs, hardening.kubelet, options, hardening.kubelet_where)
    text = render(hardening, configs, options, sources)
    files = [*hardening.files, *hardening.sysctl_files]
    written = write(out_dir, text, files)
    _, todo = init_configuration(options)
    return Result(out_dir, written, todo,
                  [f.path for f in files if f.secret],
                  [f.path for f in hardening.sysctl_files])
