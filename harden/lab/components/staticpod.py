"""Static pod manifests as the kubelet reads them: decode, validate, prepare hostPath volumes.

Rules follow pkg/kubelet/config (file source): a manifest that does not decode to a valid Pod is
skipped with "Could not process manifest file"; a pod's identity (UID) hashes the node, the file
path and the content, so any content change or rename replaces the pod.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from dataclasses import dataclass, field

import yaml

from harden.lab.components import podenv

HOSTPATH_TYPES = {"", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                  "CharDevice", "BlockDevice"}


class ManifestError(Exception):
    """The file is not a valid static pod; the kubelet skips (and eventually stops) it."""


class MountError(Exception):
    """A volume cannot be set up: the pod stays pending, its containers never start."""


@dataclass
class Probe:
    kind: str             # httpGet | tcpSocket | exec
    action: dict
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int


@dataclass
class Container:
    name: str
    argv: list[str]
    mounts: list[dict]    # [{mountPath, hostPath, readOnly}] for hostPath volumes
    ports: dict[str, int]
    startup: Probe | None = None
    liveness: Probe | None = None
    readiness: Probe | None = None


@dataclass
class PodSpec:
    file: str
    name: str
    namespace: str
    uid: str
    restart_policy: str
    grace_period: float
    host_volumes: dict[str, dict]
    containers: list[Container] = field(default_factory=list)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_uid(node: str, path: str, content: bytes) -> str:
    digest = hashlib.sha256(node.encode() + b"\0" + path.encode() + b"\0" + content)
    return digest.hexdigest()[:32]


def parse_manifest(path: str, content: bytes, node: str = "") -> PodSpec:
    """Decode and validate one manifest; ManifestError says why the kubelet skipped it."""
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError as err:
        raise ManifestError(f"error converting YAML to JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ManifestError("the manifest is not a Pod object")
    if doc.get("kind") != "Pod" or doc.get("apiVersion") != "v1":
        raise ManifestError(f"expected kind Pod, apiVersion v1; got kind {doc.get('kind')!r}, "
                            f"apiVersion {doc.get('apiVersion')!r}")
    meta = _mapping(doc.get("metadata"), "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError("metadata.name: Required value: name or generateName is required")
    spec = _mapping(doc.get("spec"), "spec")
    volumes = _volumes(spec)
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ManifestError("spec.containers: Required value")
    pod = PodSpec(file=path, name=name, namespace=str(meta.get("namespace") or "default"),
                  uid=pod_uid(node, path, content),
                  restart_policy=str(spec.get("restartPolicy") or "Always"),
                  grace_period=float(spec.get("terminationGracePeriodSeconds", 30)),
                  host_volumes=volumes)
    for index, item in enumerate(containers):
        pod.containers.append(_container(_mapping(item, f"spec.containers[{index}]"), index, volumes))
    return pod


def _mapping(value, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ManifestError(f"{where}: expected an object")
    return value


def _volumes(spec: dict) -> dict[str, dict]:
    """hostPath volumes by name; other volume kinds are accepted but give no host files."""
    result: dict[str, dict] = {}
    for index, volume in enumerate(spec.get("volumes") or []):
        volume = _mapping(volume, f"spec.volumes[{index}]")
        name = volume.get("name")
        if not name:
            raise ManifestError(f"spec.volumes[{index}].name: Required value")
        if name in result:
            raise ManifestError(f'spec.volumes[{index}].name: Duplicate value: "{name}"')
        host = volume.get("hostPath")
        if host is None:
            result[name] = {}
            continue
        host = _mapping(host, f"spec.volumes[{index}].hostPath")
        kind = str(host.get("type") or "")
        if not host.get("path"):
            raise ManifestError(f"spec.volumes[{index}].hostPath.path: Required value")
        if kind not in HOSTPATH_TYPES:
            raise ManifestError(f'spec.volumes[{index}].hostPath.type: Unsupported value: "{kind}"')
        result[name] = {"path": str(host["path"]), "type": kind}
    return result


def _container(item: dict, index: int, volumes: dict[str, dict]) -> Container:
    where = f"spec.containers[{index}]"
    if not item.get("name"):
        raise ManifestError(f"{where}.name: Required value")
    if not item.get("image"):
        raise ManifestError(f"{where}.image: Required value")
    command = [str(a) for a in item.get("command") or []]
    args = [str(a) for a in item.get("args") or []]
    if not command:
        command = [str(item["image"]).rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]]
    mounts = []
    for m_index, mount in enumerate(item.get("volumeMounts") or []):
        mount = _mapping(mount, f"{where}.volumeMounts[{m_index}]")
        if mount.get("name") not in volumes:
            raise ManifestError(f'{where}.volumeMounts[{m_index}].name: Not found: "{mount.get("name")}"')
        if not str(mount.get("mountPath") or "").startswith("/"):
            raise ManifestError(f"{where}.volumeMounts[{m_index}].mountPath: must be an absolute path")
        volume = volumes[mount["name"]]
        if volume:
            host = posixpath.join(volume["path"], str(mount.get("subPath") or ""))
            mounts.append({"mountPath": mount["mountPath"], "hostPath": host.rstrip("/") or "/",
                           "readOnly": bool(mount.get("readOnly"))})
    ports = {str(p["name"]): int(p["containerPort"]) for p in item.get("ports") or []
             if isinstance(p, dict) and p.get("name") and p.get("containerPort")}
    return Container(name=str(item["name"]), argv=command + args, mounts=mounts, ports=ports,
                     startup=_probe(item.get("startupProbe"), f"{where}.startupProbe"),
                     liveness=_probe(item.get("livenessProbe"), f"{where}.livenessProbe"),
                     readiness=_probe(item.get("readinessProbe"), f"{where}.readinessProbe"))


def _probe(raw, where: str) -> Probe | None:
    if raw is None:
        return None
    raw = _mapping(raw, where)
    kinds = [k for k in ("httpGet", "tcpSocket", "exec", "grpc") if k in raw]
    if len(kinds) != 1:
        raise ManifestError(f"{where}: must specify exactly one handler type")
    return Probe(kind=kinds[0], action=_mapping(raw[kinds[0]], f"{where}.{kinds[0]}"),
                 initial_delay=float(raw.get("initialDelaySeconds", 0)),
                 period=float(raw.get("periodSeconds", 10)),
                 timeout=float(raw.get("timeoutSeconds", 1)),
                 success_threshold=int(raw.get("successThreshold", 1)),
                 failure_threshold=int(raw.get("failureThreshold", 3)))


def prepare_host_volumes(pod: PodSpec) -> None:
    """Check/create hostPath volumes like the kubelet's hostPath type checker; MountError if not."""
    for name, volume in pod.host_volumes.items():
        if not volume:
            continue
        path, kind = podenv.host_path(volume["path"]), volume["type"]
        shown = volume["path"]
        prefix = f'MountVolume.SetUp failed for volume "{name}" : hostPath type check failed: {shown}'
        if kind == "DirectoryOrCreate":
            os.makedirs(path, mode=0o755, exist_ok=True)
        elif kind == "FileOrCreate" and not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        elif kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice"):
            _check_type(path, kind, prefix)


def _check_type(path: str, kind: str, prefix: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MountError(f"{prefix} does not exist") from None
    wanted = {"Directory": stat.S_ISDIR, "File": stat.S_ISREG, "Socket": stat.S_ISSOCK,
              "CharDevice": stat.S_ISCHR, "BlockDevice": stat.S_ISBLK}[kind]
    if not wanted(mode):
        article = "a directory" if kind == "Directory" else f"a {kind.lower()}"
        raise MountError(f"{prefix} is not {article}")
