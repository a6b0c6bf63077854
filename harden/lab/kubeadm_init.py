"""`harden lab up --kubeadm-config DIR`: a lab started from a kubeadm config, as `kubeadm init
--config` / `kubeadm join --config` would start the nodes.

DIR holds `kubeadm-config.yaml` (multi-document: ClusterConfiguration, KubeletConfiguration,
optionally InitConfiguration for the first control plane and JoinConfiguration for the other
nodes, KubeProxyConfiguration accepted and unused) and optionally `files/`, a tree copied to the
same absolute paths on every control plane before its manifests are written (audit policy,
encryption config, ... as an operator copies them before init/join).

Everything is read and checked before anything is written or started: a document kubeadm would
refuse is an InputError naming the file and the document's line. Per-node fields of
Init/JoinConfiguration (node name, advertise address, bind port, CRI socket) are the lab's; the
lab honours `nodeRegistration.kubeletExtraArgs` (into kubeadm-flags.env).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harden.errors import InputError
from harden.lab import kubeadm_config, layout
from harden.lab.kubeadm_config import ClusterConfig, KubeadmConfigError

CONFIG_FILE = "kubeadm-config.yaml"
FILES_DIR = "files"
KUBELET_GV = "kubelet.config.k8s.io/v1beta1"
_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)


@dataclass
class InitPlan:
    """What a lab started from a kubeadm config is made of."""

    api_version: str
    cluster_text: str                      # seeded into kube-system/kubeadm-config
    config: ClusterConfig
    kubelet: dict                          # the cluster-wide KubeletConfiguration
    init_kubelet_args: tuple = ()          # nodeRegistration.kubeletExtraArgs of cp1
    join_kubelet_args: tuple = ()          # ... of every other node
    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)   # node path -> (content, mode)
    dirs: dict[str, int] = field(default_factory=dict)     # node path -> mode, as files/ has them


def _documents(path: Path) -> list[tuple[int, object]]:
    """(first line, parsed document) of every non-empty document, YAML errors at file:line."""
    text = path.read_text()
    found, start = [], 0
    pieces = _SEPARATOR.split(text)
    for piece in pieces:
        line = start + 1
        start += piece.count("\n") + 1
        if not piece.strip():
            continue
        try:
            doc = kubeadm_config.load_yaml(piece, str(path))
        except KubeadmConfigError as err:
            inner = re.search(r"line (\d+): ", str(err))
            message = re.sub(r"line \d+: ", "", str(err).split(": ", 1)[1])
            raise InputError(message, str(path),
                             line + int(inner.group(1)) - 1 if inner else line) from None
        if doc is not None:
            found.append((line, doc))
    return found


def _kubelet_args(doc: dict, api_version: str, where: str) -> tuple[tuple[str, str], ...]:
    registration = doc.get("nodeRegistration") or {}
    if not isinstance(registration, dict):
        raise KubeadmConfigError(f"{where}: json: cannot unmarshal into Go struct field "
                                 f"{doc.get('kind')}.nodeRegistration of type "
                                 "NodeRegistrationOptions")
    return kubeadm_config.parse_args(registration.get("kubeletExtraArgs"), api_version,
                                     "nodeRegistration.kubeletExtraArgs", "NodeRegistrationOptions")


def _check_node_config(doc: dict, api_version: str) -> tuple[tuple[str, str], ...]:
    patches = doc.get("patches") or {}
    if isinstance(patches, dict) and patches.get("directory"):
        raise KubeadmConfigError(
            "patches.directory: the lab does not apply patches at `lab up`; give them to "
            "`kubeadm upgrade apply|node --patches DIR` on the nodes instead")
    return _kubelet_args(doc, api_version, doc.get("kind", ""))


@dataclass
class _Found:
    """The documents met so far, by role."""

    seen: dict = field(default_factory=dict)      # (apiVersion, kind) -> first line
    cluster: dict | None = None
    kubelet: dict | None = None
    api_version: str = ""
    init_args: tuple = ()
    join_args: tuple | None = None


def _take(doc, line: int, found: _Found) -> None:
    """File one document, or raise what kubeadm init would say about it."""
    if not isinstance(doc, dict):
        kubeadm_config.check_type(doc, "ClusterConfiguration", "document")
    api, kind = str(doc.get("apiVersion") or ""), str(doc.get("kind") or "")
    if (api, kind) in found.seen and api and kind:
        raise KubeadmConfigError(f'invalid configuration: kind "{kind}" is specified twice in '
                                 f"YAML file (first at line {found.seen[(api, kind)]})")
    found.seen[(api, kind)] = line
    if api == KUBELET_GV and kind == "KubeletConfiguration":
        found.kubelet = doc
    elif kind in ("InitConfiguration", "JoinConfiguration"):
        version = kubeadm_config.check_type(doc, kind, kind)
        args = _check_node_config(doc, version)
        if kind == "InitConfiguration":
            found.init_args = args
        else:
            found.join_args = args
        found.api_version = found.api_version or version
    elif api and kind and not api.startswith(kubeadm_config.GROUP + "/"):
        return      # kubeadm: "WARNING: Ignored YAML document with GroupVersionKind ..."
    else:
        config = kubeadm_config.from_document(doc, "ClusterConfiguration")
        _check_lab_limits(config)
        found.cluster, found.api_version = doc, config.api_version


def read(directory: Path, private_dirs: tuple[str, ...]) -> InitPlan:
    """Read and check DIR; nothing is written. `private_dirs`: the node-private directories
    (the only places files/ may be copied to)."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"no {CONFIG_FILE} in the kubeadm config directory", str(directory))
    found = _Found()
    for line, doc in _documents(path):
        try:
            _take(doc, line, found)
        except KubeadmConfigError as err:
            raise InputError(str(err), str(path), line) from None
    api_version = found.api_version or "v1beta4"
    cluster_text = layout.kube_yaml(_defaulted(found.cluster, api_version)).decode()
    return InitPlan(api_version=api_version, cluster_text=cluster_text,
                    config=kubeadm_config.parse(cluster_text),
                    kubelet=_kubelet_defaulted(found.kubelet), init_kubelet_args=found.init_args,
                    join_kubelet_args=found.init_args if found.join_args is None
                    else found.join_args,
                    files=_files(directory / FILES_DIR, private_dirs),
                    dirs=_dirs(directory / FILES_DIR, private_dirs))


def _check_lab_limits(config: ClusterConfig) -> None:
    """What kubeadm accepts but the lab cannot host: its PKI and etcd data are node-private at
    fixed paths."""
    if config.certificates_dir != kubeadm_config.DEFAULT_PKI:
        raise KubeadmConfigError(f"certificatesDir: the lab keeps certificates in "
                                 f"{kubeadm_config.DEFAULT_PKI}, not {config.certificates_dir}")
    if config.etcd_data_dir != "/var/lib/etcd":
        raise KubeadmConfigError(f"etcd.local.dataDir: the lab's etcd data is node-private at "
                                 f"/var/lib/etcd, not {config.etcd_data_dir}")


def _defaulted(doc: dict | None, api_version: str) -> dict:
    """The ClusterConfiguration kubeadm init uploads: the user's, kubeadm's defaults filled in
    where the user left a field out (extraArgs and extraVolumes stay the user's)."""
    defaults = kubeadm_config.document(api_version)
    if doc is None:
        return defaults
    out = dict(doc)
    for key, value in defaults.items():
        if key not in out or out[key] is None:
            out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict):
            out[key] = {**{k: v for k, v in value.items() if k not in out[key]}, **out[key]}
    out["etcd"]["local"] = {**defaults["etcd"]["local"], **(out["etcd"].get("local") or {})}
    return out


def _kubelet_defaulted(doc: dict | None) -> dict:
    base = layout.kubelet_cluster_config(layout.PROFILES["kubeadm"])
    return layout.deep_merge(base, doc) if doc else base


def _files(root: Path, private_dirs: tuple[str, ...]) -> dict[str, tuple[bytes, int]]:
    """Every file under files/, by the node path it is copied to; only node-private places."""
    found: dict[str, tuple[bytes, int]] = {}
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            local = Path(dirpath) / name
            node_path = "/" + str(local.relative_to(root))
            if local.is_symlink() or not local.is_file():
                raise InputError("only regular files can be copied to the nodes", str(local))
            if not any(node_path.startswith(d.rstrip("/") + "/") for d in private_dirs):
                raise InputError(f"{node_path} is not in a node-private directory of the lab "
                                 f"({', '.join(private_dirs)}); it would land on this machine",
                                 str(local))
            found[node_path] = (local.read_bytes(), local.stat().st_mode & 0o777)
    return found


def _dirs(root: Path, private_dirs: tuple[str, ...]) -> dict[str, int]:
    """The modes of files/' directories inside a node-private directory (an operator's `cp -a`
    keeps them: an empty 0700 audit log directory stays 0700). The private directories
    themselves, and the path components above them, stay as the lab lays them out."""
    found: dict[str, int] = {}
    if not root.exists():
        return found
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        for name in dirnames:
            local = Path(dirpath) / name
            node_path = "/" + str(local.relative_to(root))
            if not local.is_symlink() and any(node_path.startswith(d.rstrip("/") + "/")
                                              for d in private_dirs):
                found[node_path] = local.stat().st_mode & 0o777
    return found
