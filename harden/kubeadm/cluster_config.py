"""kubeadm's ClusterConfiguration: reading and editing a component's `extraArgs` and
`extraVolumes`, keeping every other line of the document as it was.

`kubeadm upgrade apply|node` regenerates each control-plane manifest from kubeadm's own flags,
then the component's `extraArgs` (a user value replaces kubeadm's flag of the same name
wholesale), and mounts its default hostPath volumes plus `extraVolumes`. A flag set in a
manifest by hand (or by harden) and absent from this document is gone after the next upgrade.

Two shapes exist: v1beta3 `extraArgs` is a map {flag: value}; v1beta4 (kubeadm >= 1.31) a list
of {name, value} (a name may repeat). kubeadm refuses the other shape, and so does this model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from yaml.nodes import MappingNode, SequenceNode

from harden.errors import InputError
from harden.kubeadm.yaml_text import YamlText, _construct, _entry

V1BETA3, V1BETA4 = "kubeadm.k8s.io/v1beta3", "kubeadm.k8s.io/v1beta4"
API_VERSIONS = (V1BETA3, V1BETA4)

# static pod → its section of ClusterConfiguration
SECTIONS: dict[str, tuple[str, ...]] = {
    "kube-apiserver": ("apiServer",),
    "kube-controller-manager": ("controllerManager",),
    "kube-scheduler": ("scheduler",),
    "etcd": ("etcd", "local"),
}

# Flags kubeadm writes itself (cmd/kubeadm/app/phases/controlplane/manifests.go, etcd/local.go).
# A value: what kubeadm writes everywhere. None: written with a cluster- or node-specific value
# (addresses, certificate paths) that this model does not reproduce.
KUBEADM_FLAGS: dict[str, dict[str, str | None]] = {
    "kube-apiserver": {
        "advertise-address": None, "allow-privileged": "true",
        "authorization-mode": "Node,RBAC", "client-ca-file": None,
        "enable-admission-plugins": "NodeRestriction", "enable-bootstrap-token-auth": "true",
        "etcd-cafile": None, "etcd-certfile": None, "etcd-keyfile": None, "etcd-servers": None,
        "kubelet-client-certificate": None, "kubelet-client-key": None,
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": None, "proxy-client-key-file": None,
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": None,
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User", "secure-port": None,
        "service-account-issuer": None, "service-account-key-file": None,
        "service-account-signing-key-file": None, "service-cluster-ip-range": None,
        "tls-cert-file": None, "tls-private-key-file": None,
    },
    "kube-controller-manager": {
        "authentication-kubeconfig": None, "authorization-kubeconfig": None,
        "bind-address": "127.0.0.1", "client-ca-file": None, "cluster-name": None,
        "cluster-signing-cert-file": None, "cluster-signing-key-file": None,
        "controllers": "*,bootstrapsigner,tokencleaner", "kubeconfig": None,
        "leader-elect": "true", "requestheader-client-ca-file": None, "root-ca-file": None,
        "service-account-private-key-file": None, "use-service-account-credentials": "true",
        "allocate-node-cidrs": None, "cluster-cidr": None, "service-cluster-ip-range": None,
    },
    "kube-scheduler": {
        "authentication-kubeconfig": None, "authorization-kubeconfig": None,
        "bind-address": "127.0.0.1", "kubeconfig": None, "leader-elect": "true",
    },
    "etcd": {
        "advertise-client-urls": None, "cert-file": None, "client-cert-auth": "true",
        "data-dir": None, "experimental-initial-corrupt-check": "true",
        "experimental-watch-progress-notify-interval": "5s", "initial-advertise-peer-urls": None,
        "initial-cluster": None, "initial-cluster-state": None, "key-file": None,
        "listen-client-urls": None, "listen-metrics-urls": None, "listen-peer-urls": None,
        "name": None, "peer-cert-file": None, "peer-client-cert-auth": "true",
        "peer-key-file": None, "peer-trusted-ca-file": None, "snapshot-count": "10000",
        "trusted-ca-file": None,
    },
}

# Host paths kubeadm mounts itself (controlplane/volumes.go, etcd/local.go): a flag naming a
# file below one of them needs no extraVolume.
KUBEADM_MOUNTS: dict[str, tuple[str, ...]] = {
    "kube-apiserver": ("/etc/kubernetes/pki", "/etc/ssl/certs", "/etc/pki",
                       "/etc/ca-certificates", "/usr/local/share/ca-certificates",
                       "/usr/share/ca-certificates"),
    "kube-controller-manager": ("/etc/kubernetes/pki", "/etc/ssl/certs", "/etc/pki",
                                "/etc/ca-certificates", "/usr/local/share/ca-certificates",
                                "/usr/share/ca-certificates",
                                "/etc/kubernetes/controller-manager.conf",
                                "/usr/libexec/kubernetes/kubelet-plugins/volume/exec"),
    "kube-scheduler": ("/etc/kubernetes/scheduler.conf",),
    "etcd": ("/var/lib/etcd", "/etc/kubernetes/pki/etcd"),
}


class CannotPersist(Exception):
    """A manifest change that ClusterConfiguration cannot express (e.g. dropping a flag kubeadm
    writes itself): the caller says so, never drops it silently."""


@dataclass(frozen=True)
class Volume:
    """One extraVolumes entry, in kubeadm's field names."""

    name: str
    host_path: str
    mount_path: str
    read_only: bool = False
    path_type: str = ""

    def as_yaml(self) -> dict:
        out = {"name": self.name, "hostPath": self.host_path, "mountPath": self.mount_path}
        if self.read_only:
            out["readOnly"] = True
        if self.path_type:
            out["pathType"] = self.path_type
        return out

    @classmethod
    def from_yaml(cls, item: dict) -> "Volume":
        return cls(str(item.get("name", "")), str(item.get("hostPath", "")),
                   str(item.get("mountPath", "")), bool(item.get("readOnly", False)),
                   str(item.get("pathType") or ""))


def flag_text(value) -> str:
    """A flag's value as kubeadm writes it into the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class ClusterConfig(YamlText):
    """One ClusterConfiguration document (`source` names where it came from, for errors)."""

    def __init__(self, text: str, source: str = "ClusterConfiguration"):
        super().__init__(text, source)
        kind, version = self.value(["kind"]), self.value(["apiVersion"])
        if kind != "ClusterConfiguration":
            raise InputError(f"not a kubeadm ClusterConfiguration (kind: {kind!r})", source, 1)
        if version not in API_VERSIONS:
            raise InputError(f"apiVersion {version!r} is not one kubeadm reads for a "
                             f"ClusterConfiguration here ({', '.join(API_VERSIONS)})", source, 1)
        self.version = version
        for component in SECTIONS:
            self.extra_args(component)           # refuse the wrong shape up front
            self.extra_volumes(component)

    # --- reading -------------------------------------------------------------------------
    @property
    def external_etcd(self) -> bool:
        """etcd.external: kubeadm writes no etcd manifest, so etcd flags cannot be kept here."""
        return self.node(["etcd", "external"]) is not None

    def _keys(self, component: str) -> list[str]:
        return list(SECTIONS[component])

    def extra_args(self, component: str) -> list[tuple[str, str]]:
        """(flag, value) in document order; v1beta4 may repeat a flag."""
        node = self.node(self._keys(component) + ["extraArgs"])
        value = None if node is None else _construct(node)
        where = ".".join(self._keys(component) + ["extraArgs"])
        if value is None:
            return []
        if self.version == V1BETA3:
            if not isinstance(value, dict):
                raise self._error(f"{where}: {V1BETA3} takes a map of flag: value (a list of "
                                  f"name/value is {V1BETA4})", node)
            return [(str(k), flag_text(v)) for k, v in value.items()]
        if not isinstance(value, list) or not all(isinstance(i, dict) and "name" in i
                                                  for i in value):
            raise self._error(f"{where}: {V1BETA4} takes a list of {{name, value}} (a map is "
                              f"{V1BETA3})", node)
        return [(str(i["name"]), flag_text(i.get("value", ""))) for i in value]

    def arg(self, component: str, name: str) -> str | None:
        """The value extraArgs gives `name` (the last one when repeated), None when absent."""
        found = [v for k, v in self.extra_args(component) if k == name]
        return found[-1] if found else None

    def generated(self, component: str, name: str) -> tuple[bool, str | None]:
        """What the next upgrade writes for --name: (present, value); value None when kubeadm
        writes a node-specific value this model does not know."""
        value = self.arg(component, name)
        if value is not None:
            return True, value
        defaults = KUBEADM_FLAGS[component]
        if name == "authorization-mode" and self.arg(component, "authorization-config"):
            return False, None                  # kubeadm omits it next to the config file
        if name in defaults:
            return True, defaults[name]
        return False, None

    def extra_volumes(self, component: str) -> list[Volume]:
        node = self.node(self._keys(component) + ["extraVolumes"])
        value = None if node is None else _construct(node)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
            raise self._error(f"{'.'.join(self._keys(component))}.extraVolumes must be a list "
                              "of {name, hostPath, mountPath, readOnly, pathType}", node)
        return [Volume.from_yaml(i) for i in value]

    def mounts_host_path(self, component: str, host_path: str, mount_path: str) -> bool:
        """True when the regenerated pod mounts host_path at mount_path (kubeadm's own
        volumes, or an extraVolume)."""
        for volume in self.extra_volumes(component):
            if volume.host_path.rstrip("/") == host_path.rstrip("/") and \
                    volume.mount_path.rstrip("/") == mount_path.rstrip("/"):
                return True
        return host_path == mount_path and any(
            host_path.rstrip("/") == p or host_path.startswith(p + "/")
            for p in KUBEADM_MOUNTS[component])

    # --- editing -------------------------------------------------------------------------
    def set_arg(self, component: str, name: str, value: str) -> bool:
        """extraArgs gives --name exactly `value` (once). True if the text changed."""
        value = flag_text(value)
        keys = self._keys(component) + ["extraArgs"]
        if self.version == V1BETA3:
            node = self.node(keys)
            if isinstance(node, MappingNode) and not node.value:
                return self.set(keys, {name: value})
            return self.set(keys + [name], value)
        items = self._arg_items(keys, name)
        if len(items) == 1 and flag_text(_construct(items[0]).get("value", "")) == value:
            return False
        entry = {"name": name, "value": value}
        if items:
            self.replace_item(items[0], entry)
            rest = self._arg_items(keys, name)[1:]
            if rest:
                self.delete_items(rest)
            return True
        seq = self.node(keys)
        if isinstance(seq, SequenceNode) and seq.value and not seq.flow_style:
            self.insert_item(seq, entry, sort_key=lambda i: i.get("name")
                             if isinstance(i, dict) else None)
        else:
            current = _construct(seq) if seq is not None else None
            self.set(keys, (current or []) + [entry])
        return True

    def remove_arg(self, component: str, name: str) -> bool:
        """extraArgs no longer names --name. Refused (CannotPersist) when kubeadm writes the
        flag itself: extraArgs can replace a default, never take it away."""
        if name in KUBEADM_FLAGS[component] and not (
                name == "authorization-mode" and self.arg(component, "authorization-config")):
            raise CannotPersist(f"--{name} is a flag kubeadm writes itself into {component}; "
                                "extraArgs cannot remove it (use a kubeadm --patches file, or "
                                "harden_kubeadm_persist: false and re-apply after each upgrade)")
        keys = self._keys(component) + ["extraArgs"]
        if self.version == V1BETA3:
            node = self.node(keys)
            if _entry(node, name) is None:
                return False
            if isinstance(node, MappingNode) and len(node.value) == 1:
                return self.set(keys, {})
            return self.delete(keys + [name])
        items = self._arg_items(keys, name)
        if not items:
            return False
        seq = self.node(keys)
        if len(items) == len(seq.value):
            return self.set(keys, [])
        self.delete_items(items)
        return True

    def _arg_items(self, keys: list[str], name: str) -> list:
        seq = self.node(keys)
        if not isinstance(seq, SequenceNode):
            return []
        return [item for item in seq.value if isinstance(_construct(item), dict)
                and str(_construct(item).get("name")) == name]

    def ensure_volume(self, component: str, volume: Volume) -> bool:
        """extraVolumes holds `volume`: an entry at the same mountPath keeps its own name (an
        operator's config may call it otherwise), else one of the same name is replaced, else
        it is added. True if changed."""
        keys = self._keys(component) + ["extraVolumes"]
        seq = self.node(keys)
        wanted = volume.as_yaml()
        if isinstance(seq, SequenceNode) and seq.value and not seq.flow_style:
            found = [(item, Volume.from_yaml(_construct(item))) for item in seq.value]
            same_mount = [(i, v) for i, v in found
                          if v.mount_path.rstrip("/") == volume.mount_path.rstrip("/")]
            for item, current in same_mount or [(i, v) for i, v in found
                                                if v.name == volume.name]:
                mine = replace(volume, name=current.name)
                if current == mine:
                    return False
                self.replace_item(item, mine.as_yaml())
                return True
            self.insert_item(seq, wanted, sort_key=lambda i: i.get("name")
                             if isinstance(i, dict) else None)
            return True
        current = _construct(seq) if seq is not None else None
        return self.set(keys, (current or []) + [wanted])


def persist(text: str, source: str, component: str, flags: dict[str, str | None],
            volumes: list[Volume]) -> str:
    """The ClusterConfiguration text once `component`'s manifest flags (value None: the flag is
    gone from the manifest) and hostPath volumes are kept for the next upgrade. Unchanged text
    when it already keeps them, kubeadm's own flag values included (they get no extraArgs
    entry). CannotPersist for what extraArgs cannot say."""
    config = ClusterConfig(text, source)
    if component == "etcd" and config.external_etcd:
        raise CannotPersist("etcd is external in ClusterConfiguration (etcd.external); kubeadm "
                            "writes no etcd manifest to keep flags for")
    for name, value in flags.items():
        if value is None:
            config.remove_arg(component, name)
        elif config.generated(component, name) != (True, flag_text(value)):
            config.set_arg(component, name, value)      # kubeadm's own value needs no entry
    for volume in volumes:
        config.ensure_volume(component, volume)
    return config.text


def lost_on_upgrade(config: ClusterConfig, component: str, manifest_flags: dict[str, str | None],
                    watched: list[str], mounts: list[tuple[str, str]]) -> list[str]:
    """What the next `kubeadm upgrade` would take from `component`: each watched flag the
    manifest sets that ClusterConfiguration would not write with the same value, and each
    hostPath mount such a flag's file needs that would not be mounted. `mounts`: the
    manifest's (host path, container path) pairs."""
    lost = []
    for name in watched:
        if name not in manifest_flags:
            continue
        value = "true" if manifest_flags[name] is None else manifest_flags[name]
        present, generated = config.generated(component, name)
        if not present:
            lost.append(f"{component} --{name}={value} is not in ClusterConfiguration")
        elif generated is not None and generated != value:
            lost.append(f"{component} --{name}={value} but ClusterConfiguration gives "
                        f"{generated!r}")
        if value.startswith("/"):
            mount = _covering(mounts, value)
            if mount is not None and not config.mounts_host_path(component, *mount):
                lost.append(f"{component} hostPath volume {mount[0]} (at {mount[1]}, for "
                            f"--{name}) is not in extraVolumes")
    return lost


def _covering(mounts: list[tuple[str, str]], path: str) -> tuple[str, str] | None:
    """The (host, container) mount holding `path`, the deepest one when nested."""
    best = None
    for host, inside in mounts:
        root = inside.rstrip("/") or "/"
        if path == root or path.startswith(root.rstrip("/") + "/"):
            if best is None or len(root) > len(best[1]):
                best = (host, root)
    return best
