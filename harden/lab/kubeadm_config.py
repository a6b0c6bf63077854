"""kubeadm's ClusterConfiguration as the lab reads and writes it (kubeadm.k8s.io v1beta3 / v1beta4).

The lab's manifests are generated from a `ClusterConfig` (harden/lab/layout.py), and the same
object is what `kubeadm upgrade` in the lab regenerates them from (harden/lab/kubeadm.py), so a
ConfigMap that says what `lab up` wrote regenerates byte-identical manifests.

Decoding follows kubeadm where users meet it: YAML goes through sigs.k8s.io/yaml into Go structs,
so v1beta4 `extraArgs` must be a list of {name, value}, v1beta3 a map, and every value a string
(`profiling: false` is a bool and refused). Messages imitate kubeadm's so that a user who has seen
the real one recognises it. Pure data and text: no I/O here.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace

import yaml

GROUP = "kubeadm.k8s.io"
API_VERSIONS = ("v1beta3", "v1beta4")
OLD_API_VERSIONS = {"v1beta1": "v1.21", "v1beta2": "v1.22", "v1alpha3": "v1.14"}
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
DEFAULT_VERSION = "v1.30.4"
DEFAULT_ETCD_TAG = "3.5.12-0"
DEFAULT_PKI = "/etc/kubernetes/pki"
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")
_GO_TYPES = {dict: "object", list: "array", bool: "bool", int: "number", float: "number",
             str: "string", type(None): "null"}
_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$")


class KubeadmConfigError(Exception):
    """A configuration kubeadm would refuse; the message reads like kubeadm's."""


@dataclass(frozen=True)
class Volume:
    """One `extraVolumes` entry: kubeadm adds it as a hostPath volume and a container mount."""

    name: str
    host_path: str
    mount_path: str
    read_only: bool = False
    path_type: str = ""


@dataclass(frozen=True)
class Component:
    """A control-plane component's user settings: ordered (name, value) args, extra volumes."""

    args: tuple[tuple[str, str], ...] = ()
    volumes: tuple[Volume, ...] = ()

    def arg_names(self) -> set[str]:
        return {name for name, _ in self.args}


@dataclass(frozen=True)
class ClusterConfig:
    """What of a ClusterConfiguration shapes the static-pod manifests (per-node facts aside)."""

    api_version: str = "v1beta4"
    kubernetes_version: str = DEFAULT_VERSION
    image_repository: str = "registry.k8s.io"
    cluster_name: str = "kubernetes"
    certificates_dir: str = DEFAULT_PKI
    service_subnet: str = "10.96.0.0/12"
    pod_subnet: str = "10.244.0.0/16"
    dns_domain: str = "cluster.local"
    etcd_data_dir: str = "/var/lib/etcd"
    etcd_image_repository: str = ""
    etcd_image_tag: str = DEFAULT_ETCD_TAG
    api_server: Component = field(default_factory=Component)
    controller_manager: Component = field(default_factory=Component)
    scheduler: Component = field(default_factory=Component)
    etcd: Component = field(default_factory=Component)

    def image(self, component: str) -> str:
        return f"{self.image_repository}/{component}:{self.kubernetes_version}"

    @property
    def etcd_image(self) -> str:
        return f"{self.etcd_image_repository or self.image_repository}/etcd:{self.etcd_image_tag}"


# --- writing ----------------------------------------------------------------------------------

def _args_field(args: dict[str, str], api_version: str):
    if api_version == "v1beta3":
        return dict(args)
    return [{"name": k, "value": v} for k, v in args.items()]


def document(api_version: str, *, api_server: dict | None = None,
             controller_manager: dict | None = None, scheduler: dict | None = None,
             etcd: dict | None = None) -> dict:
    """A full ClusterConfiguration as kubeadm stores it in kube-system/kubeadm-config; the
    dicts are extraArgs {flag: value} per component (a kubeadm user's settings)."""
    if api_version not in API_VERSIONS:
        raise KubeadmConfigError(f"unsupported kubeadm API version {api_version!r}; "
                                 f"choose {' or '.join(API_VERSIONS)}")
    defaults = ClusterConfig()

    def component(args: dict | None) -> dict:
        return {"extraArgs": _args_field(args, api_version)} if args else {}

    local = {"dataDir": defaults.etcd_data_dir}
    if etcd:
        local["extraArgs"] = _args_field(etcd, api_version)
    doc = {
        "apiServer": component(api_server),
        "apiVersion": f"{GROUP}/{api_version}",
        "certificatesDir": defaults.certificates_dir,
        "clusterName": defaults.cluster_name,
        "controllerManager": component(controller_manager),
        "dns": {},
        "etcd": {"local": local},
        "imageRepository": defaults.image_repository,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": defaults.kubernetes_version,
        "networking": {"dnsDomain": defaults.dns_domain, "podSubnet": defaults.pod_subnet,
                       "serviceSubnet": defaults.service_subnet},
        "scheduler": component(scheduler),
    }
    if api_version == "v1beta4":
        doc.update(caCertificateValidityPeriod="87600h0m0s",
                   certificateValidityPeriod="8760h0m0s", encryptionAlgorithm="RSA-2048",
                   proxy={})
    else:
        doc["apiServer"]["timeoutForControlPlane"] = "4m0s"
    return doc


# --- reading ----------------------------------------------------------------------------------

def load_yaml(text: str, source: str) -> object:
    """YAML as kubeadm's decoder reports it: `error converting YAML to JSON: yaml: line N: ...`."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise KubeadmConfigError(f"{source}: error converting YAML to JSON: yaml: {line}"
                                 f"{problem}") from None


def _type_error(value, go_type: str, path: str, struct: str) -> KubeadmConfigError:
    return KubeadmConfigError(
        f"json: cannot unmarshal {_GO_TYPES.get(type(value), 'value')} into Go struct field "
        f"{struct}.{path} of type {go_type}")


def _string(value, path: str, struct: str) -> str:
    if not isinstance(value, str):
        raise _type_error(value, "string", path, struct)
    return value


def parse_args(raw, api_version: str, path: str, struct: str) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if api_version == "v1beta3":
        if not isinstance(raw, dict):
            raise _type_error(raw, "map[string]string", path, struct)
        # kubeadm converts the v1beta3 map into its internal list sorted by name
        return tuple(sorted((str(k), _string(v, path, struct)) for k, v in raw.items()))
    if not isinstance(raw, list):
        raise _type_error(raw, "[]v1beta4.Arg", path, struct)
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _type_error(item, "v1beta4.Arg", path, struct)
        name = _string(item.get("name", ""), f"{path}.name", struct)
        value = _string(item.get("value", ""), f"{path}.value", struct)
        if not name:
            raise KubeadmConfigError(f"{path}[{i}].name: Required value: argument name is "
                                     "required")
        out.append((name, value))
    return tuple(out)


def _volumes(raw, api_version: str, path: str, struct: str) -> tuple[Volume, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _type_error(raw, f"[]{api_version}.HostPathMount", path, struct)
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _type_error(item, "HostPathMount", path, struct)
        where = f"{path}[{i}]"
        values = {k: _string(item.get(k, ""), f"{path}.{k}", struct)
                  for k in ("name", "hostPath", "mountPath", "pathType")}
        read_only = item.get("readOnly", False)
        if not isinstance(read_only, bool):
            raise _type_error(read_only, "bool", f"{path}.readOnly", struct)
        for key in ("name", "hostPath", "mountPath"):
            if not values[key]:
                raise KubeadmConfigError(f"{where}.{key}: Required value")
        if values["pathType"] not in HOST_PATH_TYPES:
            raise KubeadmConfigError(f'{where}.pathType: Unsupported value: '
                                     f'"{values["pathType"]}": supported values: '
                                     + ", ".join(f'"{t}"' for t in HOST_PATH_TYPES))
        out.append(Volume(values["name"], values["hostPath"], values["mountPath"], read_only,
                          values["pathType"]))
    return tuple(out)


def _mapping(raw, path: str, struct: str) -> dict:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _type_error(raw, struct.split(".")[0], path, struct)
    return raw


_GO_STRUCTS = {"apiServer": "APIServer", "controllerManager": "ControlPlaneComponent",
               "scheduler": "ControlPlaneComponent"}


def _component(doc: dict, key: str, api_version: str) -> Component:
    struct = _GO_STRUCTS[key]      # Go names the struct type, then the field's JSON path
    raw = _mapping(doc.get(key), key, "ClusterConfiguration")
    if raw.get("extraEnvs"):
        raise KubeadmConfigError(f"{key}.extraEnvs: the lab's kubeadm does not emulate extraEnvs")
    return Component(parse_args(raw.get("extraArgs"), api_version, f"{key}.extraArgs", struct),
                     _volumes(raw.get("extraVolumes"), api_version, f"{key}.extraVolumes",
                              struct))


def check_type(doc, kind: str, source: str) -> str:
    """The API version of a kubeadm document of `kind`, or kubeadm's refusal."""
    if not isinstance(doc, dict):
        raise KubeadmConfigError(f"{source}: json: cannot unmarshal {_GO_TYPES.get(type(doc), 'value')}"
                                 f" into Go value of type struct")
    api = doc.get("apiVersion")
    group, _, version = str(api or "").partition("/")
    if not api or not doc.get("kind"):
        raise KubeadmConfigError(f"{source}: Object 'Kind' is missing in '{_brief(doc)}'"
                                 if not doc.get("kind") else
                                 f"{source}: Object 'apiVersion' is missing in '{_brief(doc)}'")
    if group == GROUP and version in OLD_API_VERSIONS:
        raise KubeadmConfigError(
            f'{source}: your configuration file uses an old API spec: "{api}" (kind: '
            f'"{doc["kind"]}"). Please use kubeadm {OLD_API_VERSIONS[version]} instead and run '
            "'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will "
            "write the new, similar spec using a newer API version.")
    if group != GROUP or version not in API_VERSIONS or doc["kind"] != kind:
        raise KubeadmConfigError(
            f'{source}: no kind "{doc["kind"]}" is registered for version "{api}" in scheme '
            '"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31"')
    return version


def _brief(doc: dict) -> str:
    return yaml.safe_dump(doc, default_flow_style=True, width=1 << 20).strip()[:120]


def _cidr(value: str, path: str) -> str:
    for part in value.split(","):
        try:
            ipaddress.ip_network(part.strip(), strict=False)
        except ValueError:
            raise KubeadmConfigError(f'{path}: Invalid value: "{value}": couldn\'t parse subnet')
    return value


def from_document(doc, source: str = "ClusterConfiguration") -> ClusterConfig:
    """Decode and validate a ClusterConfiguration document (already parsed YAML)."""
    api_version = check_type(doc, "ClusterConfiguration", source)
    try:
        return _decode(doc, api_version)
    except KubeadmConfigError as err:
        raise KubeadmConfigError(f"{source}: {err}") from None


def _decode(doc: dict, api_version: str) -> ClusterConfig:
    struct = "ClusterConfiguration"
    etcd = _mapping(doc.get("etcd"), "etcd", struct)
    if etcd.get("external"):
        raise KubeadmConfigError("etcd.external: the lab runs stacked (local) etcd only")
    local = _mapping(etcd.get("local"), "etcd.local", "Etcd")
    networking = _mapping(doc.get("networking"), "networking", struct)
    defaults = ClusterConfig()

    def text(mapping: dict, key: str, default: str, path: str) -> str:
        value = mapping.get(key)
        return default if value in (None, "") else _string(value, path, struct)

    version = text(doc, "kubernetesVersion", defaults.kubernetes_version, "kubernetesVersion")
    if not _VERSION.match(version):
        raise KubeadmConfigError(f'kubernetesVersion: Invalid value: "{version}": '
                                 "must be a semantic version such as v1.30.4")
    if not version.startswith("v"):
        version = "v" + version
    etcd_local = Component(parse_args(local.get("extraArgs"), api_version, "etcd.local.extraArgs",
                                 "LocalEtcd"))
    if local.get("extraEnvs"):
        raise KubeadmConfigError("etcd.local.extraEnvs: the lab's kubeadm does not emulate "
                                 "extraEnvs")
    return ClusterConfig(
        api_version=api_version, kubernetes_version=version,
        image_repository=text(doc, "imageRepository", defaults.image_repository,
                              "imageRepository"),
        cluster_name=text(doc, "clusterName", defaults.cluster_name, "clusterName"),
        certificates_dir=text(doc, "certificatesDir", defaults.certificates_dir,
                              "certificatesDir"),
        service_subnet=_cidr(text(networking, "serviceSubnet", defaults.service_subnet,
                                  "networking.serviceSubnet"), "networking.serviceSubnet"),
        pod_subnet=_cidr(text(networking, "podSubnet", "", "networking.podSubnet"),
                         "networking.podSubnet") if networking.get("podSubnet") else "",
        dns_domain=text(networking, "dnsDomain", defaults.dns_domain, "networking.dnsDomain"),
        etcd_data_dir=text(local, "dataDir", defaults.etcd_data_dir, "etcd.local.dataDir"),
        etcd_image_repository=text(local, "imageRepository", "", "etcd.local.imageRepository"),
        etcd_image_tag=text(local, "imageTag", defaults.etcd_image_tag, "etcd.local.imageTag"),
        api_server=_component(doc, "apiServer", api_version),
        controller_manager=_component(doc, "controllerManager", api_version),
        scheduler=_component(doc, "scheduler", api_version),
        etcd=etcd_local)


def parse(text: str, source: str = "ClusterConfiguration") -> ClusterConfig:
    """A ClusterConfiguration from its YAML text (the ConfigMap's `ClusterConfiguration` key)."""
    return from_document(load_yaml(text, source), source)


def kubelet_configuration(text: str, source: str = "KubeletConfiguration") -> dict:
    """The kubelet-config ConfigMap's `kubelet` document, checked as kubeadm decodes it."""
    doc = load_yaml(text, source)
    if not isinstance(doc, dict):
        raise KubeadmConfigError(f"{source}: json: cannot unmarshal "
                                 f"{_GO_TYPES.get(type(doc), 'value')} into Go value of type "
                                 "v1beta1.KubeletConfiguration")
    if doc.get("apiVersion") != KUBELET_API or doc.get("kind") != "KubeletConfiguration":
        raise KubeadmConfigError(
            f'{source}: no kind "{doc.get("kind")}" is registered for version '
            f'"{doc.get("apiVersion")}" in scheme "pkg/runtime/scheme.go:100"')
    return doc


def is_version(text: str) -> bool:
    return bool(_VERSION.match(text))


def with_version(config: ClusterConfig, version: str) -> ClusterConfig:
    """`kubeadm upgrade apply vX.Y.Z`: the images move to that version."""
    return replace(config, kubernetes_version=version if version.startswith("v") else f"v{version}")
