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

from harden.lab import pki as lab_pki

K8S_VERSION = "v1.30.4"
ETCD_IMAGE = "registry.k8s.io/etcd:3.5.12-0"
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

    Flag overrides map a flag name to its value, or to None to drop the flag.
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
                         "kubelet-client-certificate": None, "kubelet-client-key": None},
        controller_manager_flags={"profiling": "true", "use-service-account-credentials": "false"},
        scheduler_flags={"profiling": "true"},
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


# --- static pod manifests ---------------------------------------------------------------------

def _command(binary: str, flags: dict, overrides: dict) -> list[str]:
    """kubeadm's ArgumentsToCommand: one `--name=value` per flag, sorted by name."""
    merged = {**flags, **overrides}
    return [binary] + [f"--{k}={v}" for k, v in sorted(merged.items()) if v is not None]


def _probe(host: str, port: int, path: str, scheme: str, *, failure: int, initial: int | None,
           period: int) -> dict:
    probe = {"failureThreshold": failure,
             "httpGet": {"host": host, "path": path, "port": port, "scheme": scheme},
             "periodSeconds": period, "timeoutSeconds": 15}
    if initial is not None:
        probe["initialDelaySeconds"] = initial
    return probe


def _host_path(name: str, path: str, kind: str, mount: bool, read_only: bool) -> tuple[dict, dict]:
    volume = {"hostPath": {"path": path, "type": kind}, "name": name}
    mount_entry = {"mountPath": path, "name": name}
    if read_only:
        mount_entry["readOnly"] = True
    return volume, mount_entry


_CA_VOLUMES = [("ca-certs", "/etc/ssl/certs"), ("etc-ca-certificates", "/etc/ca-certificates")]
_SHARE_VOLUMES = [("usr-local-share-ca-certificates", "/usr/local/share/ca-certificates"),
                  ("usr-share-ca-certificates", "/usr/share/ca-certificates")]


def _pod(component: str, command: list[str], *, cpu: str, probe_host: str, probe_port: int,
         scheme: str, live: str, start: str, ready: str | None,
         volumes: list[tuple[str, str, str, bool]], image: str, annotations: dict | None = None,
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
    pairs = [_host_path(name, path, kind, True, ro) for name, path, kind, ro in volumes]
    container["volumeMounts"] = sorted((m for _, m in pairs), key=lambda m: m["name"])
    metadata = {"creationTimestamp": None,
                "labels": {"component": component, "tier": "control-plane"},
                "name": component, "namespace": "kube-system"}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [container], "hostNetwork": True,
                     "priority": 2000001000, "priorityClassName": "system-node-critical",
                     "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                     "volumes": sorted((v for v, _ in pairs), key=lambda v: v["name"])},
            "status": {}}


def _ca_volumes(extra: list[tuple[str, str, str, bool]]) -> list[tuple[str, str, str, bool]]:
    common = [(n, p, "DirectoryOrCreate", True) for n, p in _CA_VOLUMES + _SHARE_VOLUMES]
    return common + extra


def apiserver_manifest(node: NodeSpec, profile: Profile) -> dict:
    ip = node.address
    flags = {
        "advertise-address": ip, "allow-privileged": "true", "authorization-mode": "Node,RBAC",
        "bind-address": ip, "client-ca-file": f"{PKI}/ca.crt",
        "enable-admission-plugins": "NodeRestriction", "enable-bootstrap-token-auth": "true",
        "etcd-cafile": f"{PKI}/etcd/ca.crt", "etcd-certfile": f"{PKI}/apiserver-etcd-client.crt",
        "etcd-keyfile": f"{PKI}/apiserver-etcd-client.key", "etcd-servers": f"https://{ip}:2379",
        "kubelet-client-certificate": f"{PKI}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{PKI}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "proxy-client-cert-file": f"{PKI}/front-proxy-client.crt",
        "proxy-client-key-file": f"{PKI}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User", "secure-port": "6443",
        "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
        "service-account-key-file": f"{PKI}/sa.pub",
        "service-account-signing-key-file": f"{PKI}/sa.key",
        "service-cluster-ip-range": SERVICE_CIDR,
        "tls-cert-file": f"{PKI}/apiserver.crt", "tls-private-key-file": f"{PKI}/apiserver.key",
    }
    return _pod("kube-apiserver", _command("kube-apiserver", flags, profile.apiserver_flags),
                cpu="250m", probe_host=ip, probe_port=6443, scheme="HTTPS", live="/livez",
                start="/livez", ready="/readyz",
                volumes=_ca_volumes([("k8s-certs", PKI, "DirectoryOrCreate", True)]),
                image=f"registry.k8s.io/kube-apiserver:{K8S_VERSION}",
                annotations={"kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint":
                             f"{ip}:6443"})


def _loopback_or_node(node: NodeSpec, profile: Profile) -> str:
    return "127.0.0.1" if profile.components_on_loopback else node.address


def _port_flag(port: int, default: int) -> dict:
    return {} if port == default else {"secure-port": str(port)}


def controller_manager_manifest(node: NodeSpec, profile: Profile) -> dict:
    host = _loopback_or_node(node, profile)
    conf = "/etc/kubernetes/controller-manager.conf"
    flags = {
        "allocate-node-cidrs": "true", "authentication-kubeconfig": conf,
        "authorization-kubeconfig": conf, "bind-address": host,
        "client-ca-file": f"{PKI}/ca.crt", "cluster-cidr": POD_CIDR, "cluster-name": "kubernetes",
        "cluster-signing-cert-file": f"{PKI}/ca.crt", "cluster-signing-key-file": f"{PKI}/ca.key",
        "controllers": "*,bootstrapsigner,tokencleaner", "kubeconfig": conf,
        "leader-elect": "true", "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt",
        "root-ca-file": f"{PKI}/ca.crt", "service-account-private-key-file": f"{PKI}/sa.key",
        "service-cluster-ip-range": SERVICE_CIDR, "use-service-account-credentials": "true",
        **_port_flag(node.controller_manager_port, 10257),
    }
    volumes = _ca_volumes([
        ("flexvolume-dir", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec",
         "DirectoryOrCreate", False),
        ("k8s-certs", PKI, "DirectoryOrCreate", True),
        ("kubeconfig", conf, "FileOrCreate", True)])
    return _pod("kube-controller-manager",
                _command("kube-controller-manager", flags, profile.controller_manager_flags),
                cpu="200m", probe_host=host, probe_port=node.controller_manager_port,
                scheme="HTTPS", live="/healthz", start="/healthz", ready=None, volumes=volumes,
                image=f"registry.k8s.io/kube-controller-manager:{K8S_VERSION}")


def scheduler_manifest(node: NodeSpec, profile: Profile) -> dict:
    host = _loopback_or_node(node, profile)
    conf = "/etc/kubernetes/scheduler.conf"
    flags = {"authentication-kubeconfig": conf, "authorization-kubeconfig": conf,
             "bind-address": host, "kubeconfig": conf, "leader-elect": "true",
             **_port_flag(node.scheduler_port, 10259)}
    return _pod("kube-scheduler", _command("kube-scheduler", flags, profile.scheduler_flags),
                cpu="100m", probe_host=host, probe_port=node.scheduler_port, scheme="HTTPS",
                live="/healthz", start="/healthz", ready=None,
                volumes=[("kubeconfig", conf, "FileOrCreate", True)],
                image=f"registry.k8s.io/kube-scheduler:{K8S_VERSION}")


def etcd_manifest(node: NodeSpec, profile: Profile) -> dict:
    ip, name, etcd_pki = node.address, node.name, f"{PKI}/etcd"
    flags = {
        "advertise-client-urls": f"https://{ip}:2379", "cert-file": f"{etcd_pki}/server.crt",
        "client-cert-auth": "true", "data-dir": "/var/lib/etcd",
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
               ("etcd-data", "/var/lib/etcd", "DirectoryOrCreate", False)]
    return _pod("etcd", _command("etcd", flags, profile.etcd_flags), cpu="100m", memory="100Mi",
                probe_host=ip, probe_port=2381, scheme="HTTP",
                live="/health?exclude=NOSPACE&serializable=true",
                start="/health?serializable=false", ready=None, volumes=volumes,
                image=ETCD_IMAGE,
                annotations={"kubeadm.kubernetes.io/etcd.advertise-client-urls":
                             f"https://{ip}:2379"})


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

def _merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = (_merge(out[key], value) if isinstance(value, dict)
                    and isinstance(out.get(key), dict) else value)
    return out


def kubelet_config(node: NodeSpec, profile: Profile) -> dict:
    """KubeletConfiguration as kubeadm writes it (zero durations included), plus the node's
    own `address`/`healthzBindAddress` so that nodes sharing one network don't collide."""
    base = {
        "address": node.address,
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {"anonymous": {"enabled": False},
                           "webhook": {"cacheTTL": "0s", "enabled": True},
                           "x509": {"clientCAFile": f"{PKI}/ca.crt"}},
        "authorization": {"mode": "Webhook",
                          "webhook": {"cacheAuthorizedTTL": "0s", "cacheUnauthorizedTTL": "0s"}},
        "cgroupDriver": "systemd", "clusterDNS": ["10.96.0.10"], "clusterDomain": "cluster.local",
        "containerRuntimeEndpoint": "", "cpuManagerReconcilePeriod": "0s",
        "evictionPressureTransitionPeriod": "0s", "fileCheckFrequency": "0s",
        "healthzBindAddress": node.address, "healthzPort": 10248, "httpCheckFrequency": "0s",
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
    return _merge(base, profile.kubelet_config)


def kubeadm_flags_env(node: NodeSpec) -> bytes:
    return (f'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint='
            f'unix:///var/run/containerd/containerd.sock --node-ip={node.address} '
            f'--pod-infra-container-image={PAUSE_IMAGE}"\n').encode()


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
               api_server: str, labops_uid: int) -> tuple[dict[str, Dir], dict[str, File]]:
    """Every directory and file the lab writes on `node`, keyed by absolute node path."""
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
        for name, build in (("kube-apiserver", apiserver_manifest),
                            ("kube-controller-manager", controller_manager_manifest),
                            ("kube-scheduler", scheduler_manifest), ("etcd", etcd_manifest)):
            files[f"{MANIFESTS}/{name}.yaml"] = File(kube_yaml(build(node, profile)),
                                                     profile.manifest_mode)
    else:
        files[f"{PKI}/ca.crt"] = File(cluster.ca.cert_pem, 0o644, pki_uid, pki_uid)
    current = "/var/lib/kubelet/pki/kubelet-client-current.pem"
    files["/etc/kubernetes/kubelet.conf"] = File(kubeconfig(
        api_server, cluster.ca.cert_pem, f"system:node:{node.name}",
        {"client-certificate": current, "client-key": current}), kc_mode)
    for name, content in _kubelet_pki(node, cluster).items():
        files[f"/var/lib/kubelet/pki/{name}"] = File(
            content, 0o644 if name.endswith(".crt") else 0o600)
    files["/var/lib/kubelet/config.yaml"] = File(kube_yaml(kubelet_config(node, profile)),
                                                 profile.kubelet_config_mode)
    files["/var/lib/kubelet/kubeadm-flags.env"] = File(kubeadm_flags_env(node), 0o644)
    files[f"{DROPIN_DIR}/10-kubeadm.conf"] = File(dropin_text(), profile.dropin_mode)
    files["/etc/default/kubelet"] = File(
        f"KUBELET_EXTRA_ARGS={profile.kubelet_extra_args}\n".encode(), 0o644)
    return dirs, files
