"""The files a kubeadm node has, per node role and lab profile, as {absolute node path: File}.

Content is built as data and emitted the way kubeadm emits it (sigs.k8s.io/yaml: sorted keys,
sequences not indented under their key, no line folding, double quotes only where needed), so a
module that changes one flag produces a one-line diff, exactly as on a real kubeadm node.

Deviations from a single-machine kubeadm node, all forced by many nodes sharing one network
namespace (see docs/lab.md): every component listens on the node's own address instead of
0.0.0.0; etcd drops its 127.0.0.1 client URL and serves metrics on the node address (the
control planes' etcd members still form one stacked cluster, as kubeadm HA); controller-manager and scheduler keep
`--bind-address=127.0.0.1` (CIS 1.3.7/1.4.2) but get a per-node `--secure-port`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from importlib import resources

import yaml

from harden.lab import kubeadm_config
from harden.lab import pki as lab_pki
from harden.lab.kubeadm_config import ClusterConfig, Component

K8S_VERSION = kubeadm_config.DEFAULT_VERSION
ETCD_IMAGE = f"registry.k8s.io/etcd:{kubeadm_config.DEFAULT_ETCD_TAG}"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
SERVICE_CIDR = "10.96.0.0/12"
POD_CIDR = "10.244.0.0/16"
MANIFESTS = "/etc/kubernetes/manifests"
PKI = "/etc/kubernetes/pki"
DROPIN_DIR = "/usr/lib/systemd/system/kubelet.service.d"


@dataclass(frozen=True)
class File:
    """One file on a node: content, mode and numeric owner (root unless a profile says not)."""

    content: bytes
    mode: int
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class Dir:
    mode: int
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True)
class NodeSpec:
    """Where a node lives: its name, role, address and the 127.0.0.1 ports it alone may use."""

    name: str
    role: str                      # "control-plane" | "worker"
    address: str
    controller_manager_port: int = 10257
    scheduler_port: int = 10259
    # (name, address) of every control plane: their etcd members form one stacked cluster, as
    # kubeadm HA builds it (empty: a one-member cluster of this node alone)
    etcd_members: tuple[tuple[str, str], ...] = ()

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"


@dataclass(frozen=True)
class Profile:
    """How a lab's files differ from kubeadm's defaults. `kubeadm` is the baseline (no changes).

    The four flag maps are the components' `extraArgs` in the seeded ClusterConfiguration, as a
    kubeadm user would have set them (kubeadm cannot drop a default flag, only replace its value).
    """

    name: str
    manifest_mode: int = 0o600
    manifest_dir_mode: int = 0o700
    kubeconfig_mode: int = 0o600
    kubelet_config_mode: int = 0o644
    dropin_mode: int = 0o644
    key_mode: int = 0o600
    etcd_data_mode: int = 0o700
    pki_owned_by_labops: bool = False
    components_on_loopback: bool = True      # cm/scheduler --bind-address=127.0.0.1
    apiserver_flags: dict = field(default_factory=dict)
    controller_manager_flags: dict = field(default_factory=dict)
    scheduler_flags: dict = field(default_factory=dict)
    etcd_flags: dict = field(default_factory=dict)
    kubelet_config: dict = field(default_factory=dict)
    kubelet_extra_args: str = ""


PROFILES = {
    "kubeadm": Profile("kubeadm"),
    "weak": Profile(
        "weak",
        manifest_mode=0o644,
        manifest_dir_mode=0o755,
        kubeconfig_mode=0o644,
        kubelet_config_mode=0o666,
        dropin_mode=0o666,
        key_mode=0o644,
        etcd_data_mode=0o755,
        pki_owned_by_labops=True,
        components_on_loopback=False,
        apiserver_flags={"authorization-mode": "AlwaysAllow", "anonymous-auth": "true",
                         "profiling": "true", "enable-admission-plugins": "AlwaysAdmit",
                         "kubelet-client-certificate": "", "kubelet-client-key": ""},
        controller_manager_flags={"bind-address": "0.0.0.0", "profiling": "true",
                                  "use-service-account-credentials": "false"},
        scheduler_flags={"bind-address": "0.0.0.0", "profiling": "true"},
        etcd_flags={"client-cert-auth": "false", "peer-client-cert-auth": "false"},
        kubelet_config={"authentication": {"anonymous": {"enabled": True},
                                           "webhook": {"cacheTTL": "0s", "enabled": False}},
                        "authorization": {"mode": "AlwaysAllow"},
                        "readOnlyPort": 10255,
                        "rotateCertificates": False,
                        "makeIPTablesUtilChains": False},
        kubelet_extra_args="--read-only-port=10255",
    ),
}


# --- YAML in kubeadm's style ------------------------------------------------------------------

class _KubeDumper(yaml.SafeDumper):
    """PyYAML tuned to print what sigs.k8s.io/yaml prints for the same data."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    resolved = dumper.resolve(yaml.ScalarNode, value, (True, False))
    needs_quotes = (value == "" or resolved != "tag:yaml.org,2002:str"
                    or value[0] in "*&!|>%@`'\"{}[],#?" or value != value.strip())
    return dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                   style='"' if needs_quotes else None)


_KubeDumper.add_representer(str, _represent_str)


def kube_yaml(data: dict) -> bytes:
    return yaml.dump(data, Dumper=_KubeDumper, default_flow_style=False, sort_keys=True,
                     width=1 << 30).encode()


# --- the ClusterConfiguration a profile stands for ----------------------------------------------

def cluster_document(profile: Profile, api_version: str = "v1beta4") -> dict:
    """The full ClusterConfiguration `lab up` seeds into kube-system/kubeadm-config: kubeadm's
    defaults plus the profile's flags as `extraArgs`."""
    return kubeadm_config.document(
        api_version, api_server=profile.apiserver_flags,
        controller_manager=profile.controller_manager_flags,
        scheduler=profile.scheduler_flags, etcd=profile.etcd_flags)


def cluster_config(profile: Profile, api_version: str = "v1beta4") -> ClusterConfig:
    """The profile's ClusterConfiguration decoded, exactly as `kubeadm upgrade` decodes it."""
    return kubeadm_config.from_document(cluster_document(profile, api_version))


# --- static pod manifests ---------------------------------------------------------------------

_ANY_ADDRESS = ("0.0.0.0", "::")


def _command(binary: str, base: list[tuple[str, str]], component: Component) -> list[str]:
    """kubeadm's ArgumentsToCommand: a user arg replaces every default arg of its name; the
    result is sorted by name, then value, one `--name=value` each."""
    overridden = component.arg_names()
    args = list(component.args) + [a for a in base if a[0] not in overridden]
    return [binary] + [f"--{k}={v}" for k, v in sorted(args)]


def _on_node(command: list[str], node: NodeSpec) -> list[str]:
    """Lab deviation: "all interfaces" means the node's own address (nodes share one network)."""
    return [f"--bind-address={node.address}"
            if arg.split("=", 1)[0] == "--bind-address" and arg.split("=", 1)[1] in _ANY_ADDRESS
            else arg for arg in command]


def _flag(command: list[str], name: str, default: str) -> str:
    values = [a.split("=", 1)[1] for a in command[1:] if a.split("=", 1)[0] == f"--{name}"]
    return values[-1] if values else default


def _probe(host: str, port: int, path: str, scheme: str, *, failure: int, initial: int | None,
           period: int) -> dict:
    probe = {"failureThreshold": failure,
             "httpGet": {"host": host, "path": path, "port": port, "scheme": scheme},
             "periodSeconds": period, "timeoutSeconds": 15}
    if initial is not None:
        probe["initialDelaySeconds"] = initial
    return probe


def _host_path(name: str, path: str, kind: str, mount_path: str,
               read_only: bool) -> tuple[dict, dict]:
    volume = {"hostPath": {"path": path, "type": kind}, "name": name}
    mount_entry = {"mountPath": mount_path, "name": name}
    if read_only:
        mount_entry["readOnly"] = True
    return volume, mount_entry


_CA_VOLUMES = [("ca-certs", "/etc/ssl/certs"), ("etc-ca-certificates", "/etc/ca-certificates")]
_SHARE_VOLUMES = [("usr-local-share-ca-certificates", "/usr/local/share/ca-certificates"),
                  ("usr-share-ca-certificates", "/usr/share/ca-certificates")]


def _volume_pairs(volumes: list[tuple[str, str, str, bool]],
                  component: Component) -> list[tuple[dict, dict]]:
    """kubeadm's per-component volume map: defaults, then extraVolumes (same name replaces)."""
    pairs = {name: _host_path(name, path, kind, path, ro) for name, path, kind, ro in volumes}
    for extra in component.volumes:
        pairs[extra.name] = _host_path(extra.name, extra.host_path, extra.path_type,
                                       extra.mount_path, extra.read_only)
    return [pairs[name] for name in sorted(pairs)]


def _pod(component: str, command: list[str], *, cpu: str, probe_host: str, probe_port: int,
         scheme: str, live: str, start: str, ready: str | None,
         volumes: list[tuple[dict, dict]], image: str, annotations: dict | None = None,
         memory: str | None = None) -> dict:
    """A kubeadm static pod: hostNetwork, probes, hostPath volumes sorted by name as kubeadm does."""
    container = {
        "command": command, "image": image, "imagePullPolicy": "IfNotPresent",
        "livenessProbe": _probe(probe_host, probe_port, live, scheme, failure=8, initial=10,
                                period=10),
        "name": component,
        "resources": {"requests": {"cpu": cpu, **({"memory": memory} if memory else {})}},
        "startupProbe": _probe(probe_host, probe_port, start, scheme, failure=24, initial=10,
                               period=10),
    }
    if ready:
        container["readinessProbe"] = _probe(probe_host, probe_port, ready, scheme, failure=3,
                                             initial=None, period=1)
    container["volumeMounts"] = [m for _, m in volumes]
    metadata = {"creationTimestamp": None,
                "labels": {"component": component, "tier": "control-plane"},
                "name": component, "namespace": "kube-system"}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [container], "hostNetwork": True,
                     "priority": 2000001000, "priorityClassName": "system-node-critical",
                     "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                     "volumes": [v for v, _ in volumes]},
            "status": {}}


def _ca_volumes(extra: list[tuple[str, str, str, bool]]) -> list[tuple[str, str, str, bool]]:
    common = [(n, p, "DirectoryOrCreate", True) for n, p in _CA_VOLUMES + _SHARE_VOLUMES]
    return common + extra


def apiserver_manifest(node: NodeSpec, config: ClusterConfig) -> dict:
    ip, pki = node.address, config.certificates_dir
    flags = {
        "advertise-address": ip, "allow-privileged": "true", "authorization-mode": "Node,RBAC",
        "bind-address": ip, "client-ca-file": f"{pki}/ca.crt",
        "enable-admission-plugins": "NodeRestriction", "enable-bootstrap-token-auth": "true",
        "etcd-cafile": f"{pki}/etcd/ca.crt", "etcd-certfile": f"{pki}/apiserver-etcd-client.crt",
        "etcd-keyfile": f"{pki}/apiserver-etcd-client.key", "etcd-servers": f"https://{ip}:2379",
        "kubelet-client-certificate": f"{pki}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{pki}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{pki}/front-proxy-client.crt",
        "proxy-client-key-file": f"{pki}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User", "secure-port": "6443",
        "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
        "service-account-key-file": f"{pki}/sa.pub",
        "service-account-signing-key-file": f"{pki}/sa.key",
        "service-cluster-ip-range": config.service_subnet,
        "tls-cert-file": f"{pki}/apiserver.crt", "tls-private-key-file": f"{pki}/apiserver.key",
    }
    if "authorization-config" in config.api_server.arg_names():
        del flags["authorization-mode"]     # kubeadm: the two flags are mutually exclusive
    command = _on_node(_command("kube-apiserver", list(flags.items()), config.api_server), node)
    return _pod("kube-apiserver", command,
                cpu="250m", probe_host=ip, probe_port=6443, scheme="HTTPS", live="/livez",
                start="/livez", ready="/readyz",
                volumes=_volume_pairs(_ca_volumes([("k8s-certs", pki, "DirectoryOrCreate", True)]),
                                      config.api_server),
                image=config.image("kube-apiserver"),
                annotations={"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint":
                             f"{ip}:6443"})


def _port_flag(port: int, default: int) -> dict:
    return {} if port == default else {"secure-port": str(port)}


def _probe_host(command: list[str]) -> str:
    """kubeadm probes a component at its --bind-address (127.0.0.1 when it binds everything)."""
    host = _flag(command, "bind-address", "127.0.0.1")
    return "127.0.0.1" if host in _ANY_ADDRESS else host


def controller_manager_manifest(node: NodeSpec, config: ClusterConfig) -> dict:
    pki, conf = config.certificates_dir, "/etc/kubernetes/controller-manager.conf"
    flags = {
        "authentication-kubeconfig": conf,
        "authorization-kubeconfig": conf, "bind-address": "127.0.0.1",
        "client-ca-file": f"{pki}/ca.crt", "cluster-name": config.cluster_name,
        "cluster-signing-cert-file": f"{pki}/ca.crt", "cluster-signing-key-file": f"{pki}/ca.key",
        "controllers": "*,bootstrapsigner,tokencleaner", "kubeconfig": conf,
        "leader-elect": "true", "requestheader-client-ca-file": f"{pki}/front-proxy-ca.crt",
        "root-ca-file": f"{pki}/ca.crt", "service-account-private-key-file": f"{pki}/sa.key",
        "service-cluster-ip-range": config.service_subnet,
        "use-service-account-credentials": "true",
        **_port_flag(node.controller_manager_port, 10257),
    }
    if config.pod_subnet:
        flags.update({"allocate-node-cidrs": "true", "cluster-cidr": config.pod_subnet})
    command = _on_node(_command("kube-controller-manager", list(flags.items()),
                                config.controller_manager), node)
    volumes = _ca_volumes([
        ("flexvolume-dir", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
         "DirectoryOrCreate", False),
        ("k8s-certs", pki, "DirectoryOrCreate", True),
        ("kubeconfig", conf, "FileOrCreate", True)])
    return _pod("kube-controller-manager", command,
                cpu="200m", probe_host=_probe_host(command),
                probe_port=int(_flag(command, "secure-port", "10257")),
                scheme="HTTPS", live="/healthz", start="/healthz", ready=None,
                volumes=_volume_pairs(volumes, config.controller_manager),
                image=config.image("kube-controller-manager"))


def scheduler_manifest(node: NodeSpec, config: ClusterConfig) -> dict:
    conf = "/etc/kubernetes/scheduler.conf"
    flags = {"authentication-kubeconfig": conf, "authorization-kubeconfig": conf,
             "bind-address": "127.0.0.1", "kubeconfig": conf, "leader-elect": "true",
             **_port_flag(node.scheduler_port, 10259)}
    command = _on_node(_command("kube-scheduler", list(flags.items()), config.scheduler), node)
    return _pod("kube-scheduler", command,
                cpu="100m", probe_host=_probe_host(command),
                probe_port=int(_flag(command, "secure-port", "10259")), scheme="HTTPS",
                live="/healthz", start="/healthz", ready=None,
                volumes=_volume_pairs([("kubeconfig", conf, "FileOrCreate", True)],
                                      config.scheduler),
                image=config.image("kube-scheduler"))


def etcd_manifest(node: NodeSpec, config: ClusterConfig) -> dict:
    ip, name, etcd_pki = node.address, node.name, f"{config.certificates_dir}/etcd"
    data = config.etcd_data_dir
    flags = {
        "advertise-client-urls": f"https://{ip}:2379", "cert-file": f"{etcd_pki}/server.crt",
        "client-cert-auth": "true", "data-dir": data,
        "experimental-initial-corrupt-check": "true",
        "experimental-watch-progress-notify-interval": "5s",
        "initial-advertise-peer-urls": f"https://{ip}:2380",
        "initial-cluster": ",".join(f"{n}=https://{a}:2380"
                                    for n, a in node.etcd_members or ((name, ip),)),
        "initial-cluster-state": "new", "key-file": f"{etcd_pki}/server.key",
        "listen-client-urls": f"https://{ip}:2379", "listen-metrics-urls": f"http://{ip}:2381",
        "listen-peer-urls": f"https://{ip}:2380", "name": name,
        "peer-cert-file": f"{etcd_pki}/peer.crt", "peer-client-cert-auth": "true",
        "peer-key-file": f"{etcd_pki}/peer.key", "peer-trusted-ca-file": f"{etcd_pki}/ca.crt",
        "snapshot-count": "10000", "trusted-ca-file": f"{etcd_pki}/ca.crt",
    }
    volumes = [("etcd-certs", etcd_pki, "DirectoryOrCreate", False),
               ("etcd-data", data, "DirectoryOrCreate", False)]
    return _pod("etcd", _command("etcd", list(flags.items()), config.etcd), cpu="100m",
                memory="100Mi", probe_host=ip, probe_port=2381, scheme="HTTP",
                live="/health?exclude=NOSPACE&serializable=true",
                start="/health?serializable=false", ready=None,
                volumes=_volume_pairs(volumes, Component()),
                image=config.etcd_image,
                annotations={"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                             f"https://{ip}:2379"})


CONTROL_PLANE_MANIFESTS = (("etcd", etcd_manifest), ("kube-apiserver", apiserver_manifest),
                           ("kube-controller-manager", controller_manager_manifest),
                           ("kube-scheduler", scheduler_manifest))


def manifests(node: NodeSpec, config: ClusterConfig) -> dict[str, bytes]:
    """{component: manifest text} of a control plane, in kubeadm's upgrade order (etcd first)."""
    return {name: kube_yaml(build(node, config)) for name, build in CONTROL_PLANE_MANIFESTS}


# --- kubeconfigs ------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(server: str, ca_pem: bytes, user: str, client: dict) -> bytes:
    """A kubeconfig as clientcmd writes it: one cluster `kubernetes`, one user, one context."""
    context = f"{user}@kubernetes"
    return kube_yaml({
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": _b64(ca_pem), "server": server},
                      "name": "kubernetes"}],
        "contexts": [{"context": {"cluster": "kubernetes", "user": user}, "name": context}],
        "current-context": context, "kind": "Config", "preferences": {},
        "users": [{"name": user, "user": client}],
    })


def _embedded(pair: lab_pki.KeyPair) -> dict:
    return {"client-certificate-data": _b64(pair.cert_pem),
            "client-key-data": _b64(pair.key_pem)}


def control_plane_kubeconfigs(node: NodeSpec, cluster: lab_pki.ClusterPKI) -> dict[str, bytes]:
    server, ca = f"https://{node.address}:6443", cluster.ca
    issue = lab_pki.issue
    return {
        "admin.conf": kubeconfig(server, ca.cert_pem, "kubernetes-admin", _embedded(
            issue(ca, "kubernetes-admin", organization="kubeadm:cluster-admins", client=True))),
        "super-admin.conf": kubeconfig(server, ca.cert_pem, "kubernetes-super-admin", _embedded(
            issue(ca, "kubernetes-super-admin", organization="system:masters", client=True))),
        "controller-manager.conf": kubeconfig(
            server, ca.cert_pem, "system:kube-controller-manager",
            _embedded(issue(ca, "system:kube-controller-manager", client=True))),
        "scheduler.conf": kubeconfig(server, ca.cert_pem, "system:kube-scheduler", _embedded(
            issue(ca, "system:kube-scheduler", client=True))),
    }


# --- kubelet ----------------------------------------------------------------------------------

def deep_merge(base: dict, overrides: dict) -> dict:
    """`overrides` over `base`, mappings merged key by key (how kubeadm defaults a config)."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = (deep_merge(out[key], value) if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


def kubelet_cluster_config(profile: Profile) -> dict:
    """The cluster-wide KubeletConfiguration (kube-system/kubelet-config) as kubeadm writes it,
    zero durations included."""
    base = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {"anonymous": {"enabled": False},
                           "webhook": {"cacheTTL": "0s", "enabled": True},
                           "x509": {"clientCAFile": f"{PKI}/ca.crt"}},
        "authorization": {"mode": "Webhook",
                          "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
        "cgroupDriver": "systemd", "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local",
        "containerRuntimeEndpoint": "", "cpuManagerReconcilePeriod": "0s",
        "evictionPressureTransitionPeriod": "0s", "fileCheckFrequency": "0s",
        "healthzPort": 10248, "httpCheckFrequency": "0s",
        "imageMaximumGCAge": "0s", "imageMinimumGCAge": "0s", "kind": "KubeletConfiguration",
        "logging": {"flushFrequency": 0,
                    "options": {"json": {"infoBufferSize": "0"},
                                "text": {"infoBufferSize": "0"}},
                    "verbosity": 0},
        "memorySwap": {}, "nodeStatusReportFrequency": "0s", "nodeStatusUpdateFrequency": "0s",
        "rotateCertificates": True, "runtimeRequestTimeout": "0s", "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s", "staticPodPath": MANIFESTS,
        "streamingConnectionIdleTimeout": "0s", "syncFrequency": "0s",
        "volumeStatsAggPeriod": "0s",
    }
    return deep_merge(base, profile.kubelet_config)


def kubelet_node_config(cluster_wide: dict, node: NodeSpec) -> bytes:
    """/var/lib/kubelet/config.yaml of `node`: the cluster-wide document plus the node's own
    `address`/`healthzBindAddress` (lab deviation: nodes share one network namespace)."""
    return kube_yaml({**cluster_wide, "address": node.address,
                      "healthzBindAddress": node.address})


def kubelet_config(node: NodeSpec, profile: Profile) -> dict:
    """The node's kubelet config as a dict (cluster-wide settings plus the node's addresses)."""
    return yaml.safe_load(kubelet_node_config(kubelet_cluster_config(profile), node))


def kubeadm_flags_env(node: NodeSpec, extra_args: tuple[tuple[str, str], ...] = ()) -> bytes:
    """kubeadm-flags.env: kubeadm's node flags, `nodeRegistration.kubeletExtraArgs` merged in
    by the same rule as the control-plane flags."""
    base = [("container-runtime-endpoint", "unix:///var/run/containerd/containerd.sock"),
            ("node-ip", node.address), ("pod-infra-container-image", PAUSE_IMAGE)]
    flags = _command("", base, Component(args=tuple(extra_args)))[1:]
    return f'KUBELET_KUBEADM_ARGS="{" ".join(flags)}"\n'.encode()


def dropin_text() -> bytes:
    """The 10-kubeadm.conf that the kubeadm packages install, verbatim."""
    return resources.files("harden.lab").joinpath("templates/10-kubeadm.conf").read_bytes()


def _kubelet_pki(node: NodeSpec, cluster: lab_pki.ClusterPKI) -> dict[str, bytes]:
    client = lab_pki.issue(cluster.ca, f"system:node:{node.name}", organization="system:nodes",
                           client=True)
    self_ca = lab_pki.new_ca(f"{node.name}-ca")
    serving = lab_pki.issue(self_ca, node.name, server=True, dns_names=(node.name,),
                            ips=(node.address,))
    return {"kubelet-client-current.pem": client.cert_pem + client.key_pem,
            "kubelet.crt": serving.cert_pem + self_ca.cert_pem, "kubelet.key": serving.key_pem}


# --- the whole node ---------------------------------------------------------------------------

def node_files(node: NodeSpec, profile: Profile, cluster: lab_pki.ClusterPKI, *,
               api_server: str, labops_uid: int, config: ClusterConfig | None = None,
               kubelet: dict | None = None,
               kubelet_args: tuple[tuple[str, str], ...] = ()) -> tuple[dict[str, Dir],
                                                                       dict[str, File]]:
    """Every directory and file the lab writes on `node`, keyed by absolute node path.

    `config` and `kubelet` are the ClusterConfiguration and KubeletConfiguration the lab seeds
    (the profile's when not given): manifests and config.yaml are generated from exactly what
    `kubeadm upgrade` will later read back from the ConfigMaps.
    """
    config = config or cluster_config(profile)
    kubelet = kubelet if kubelet is not None else kubelet_cluster_config(profile)
    pki_uid = labops_uid if profile.pki_owned_by_labops else 0
    dirs = {"/etc/kubernetes": Dir(0o755), MANIFESTS: Dir(profile.manifest_dir_mode),
            PKI: Dir(0o755, pki_uid, pki_uid), "/var/lib/kubelet": Dir(0o700),
            "/var/lib/kubelet/pki": Dir(0o755), DROPIN_DIR: Dir(0o755),
            "/etc/systemd/system/kubelet.service.d": Dir(0o755),
            "/var/log/kubernetes": Dir(0o755), "/var/log/pods": Dir(0o755),
            "/var/lib/harden": Dir(0o700),
            "/etc/sysctl.d": Dir(0o755), "/var/lib/etcd": Dir(profile.etcd_data_mode)}
    files: dict[str, File] = {}
    kc_mode = profile.kubeconfig_mode
    if node.is_control_plane:
        dirs[f"{PKI}/etcd"] = Dir(0o755, pki_uid, pki_uid)
        for name, content in lab_pki.control_plane_files(cluster, node.name, node.address).items():
            mode = profile.key_mode if name.endswith(".key") else 0o644
            files[f"{PKI}/{name}"] = File(content, mode, pki_uid, pki_uid)
        for name, content in control_plane_kubeconfigs(node, cluster).items():
            files[f"/etc/kubernetes/{name}"] = File(content, kc_mode)
        for name, content in manifests(node, config).items():
            files[f"{MANIFESTS}/{name}.yaml"] = File(content, profile.manifest_mode)
    else:
        files[f"{PKI}/ca.crt"] = File(cluster.ca.cert_pem, 0o644, pki_uid, pki_uid)
    current = "/var/lib/kubelet/pki/kubelet-client-current.pem"
    files["/etc/kubernetes/kubelet.conf"] = File(kubeconfig(
        api_server, cluster.ca.cert_pem, f"system:node:{node.name}",
        {"client-certificate": current, "client-key": current}), kc_mode)
    for name, content in _kubelet_pki(node, cluster).items():
        files[f"/var/lib/kubelet/pki/{name}"] = File(
            content, 0o644 if name.endswith(".crt") else 0o600)
    files["/var/lib/kubelet/config.yaml"] = File(kubelet_node_config(kubelet, node),
                                                 profile.kubelet_config_mode)
    files["/var/lib/kubelet/kubeadm-flags.env"] = File(kubeadm_flags_env(node, kubelet_args),
                                                       0o644)
    files[f"{DROPIN_DIR}/10-kubeadm.conf"] = File(dropin_text(), profile.dropin_mode)
    files["/etc/default/kubelet"] = File(
        f"KUBELET_EXTRA_ARGS={profile.kubelet_extra_args}\n".encode(), 0o644)
    return dirs, files
