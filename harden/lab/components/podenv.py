"""What a lab container knows about its node and pod, passed by the lab kubelet via environment.

The lab shares one network namespace between nodes, so "all addresses" (0.0.0.0) is mapped to
the node's own loopback address; and since a lab
container is an ordinary process, the pod's volume mounts are replayed here to decide what the
container could see.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass

ROOT_ENV = "HARDEN_LAB_ROOT"
NODE_IP_ENV = "HARDEN_LAB_NODE_IP"
NODE_NAME_ENV = "HARDEN_LAB_NODE_NAME"
MOUNTS_ENV = "HARDEN_LAB_POD_MOUNTS"
TIME_SCALE_ENV = "HARDEN_LAB_TIME_SCALE"
DEFAULT_TIME_SCALE = 0.05
TIME_SCALE_FILE = "/var/lib/kubelet/harden-lab-time-scale"
UNSPECIFIED_HOSTS = {"0.0.0.0", "::", ""}


def host_path(path: str) -> str:
    """The real path of node path `path` (tests run a node under a root prefix)."""
    root = os.environ.get(ROOT_ENV, "")
    if not root:
        return path
    return posixpath.join(root, path.lstrip("/"))


def node_ip() -> str | None:
    return os.environ.get(NODE_IP_ENV) or None


def node_host(host: str) -> str:
    """Where a component really binds or connects when the manifest says `host`.

    "All addresses" (and a probe's empty host, i.e. the pod IP) means the node's own address:
    a lab never listens outside its /24 (without a known node address: 127.0.0.1). Loopback
    stays loopback; the lab layout gives each node's loopback listeners their own ports.
    """
    if host.strip("[]") in UNSPECIFIED_HOSTS:
        return node_ip() or "127.0.0.1"
    return host.strip("[]")


def time_scale() -> float:
    """Factor applied to every Kubernetes period (probes, back-off, file checks) in the lab.

    From the environment, else the node's TIME_SCALE_FILE (so a lab or a test can change it
    and restart the kubelet), else DEFAULT_TIME_SCALE (20 s become 1 s).
    """
    raw = os.environ.get(TIME_SCALE_ENV)
    if raw is None:
        try:
            with open(host_path(TIME_SCALE_FILE)) as handle:
                raw = handle.read().strip()
        except OSError:
            raw = ""
    try:
        scale = float(raw)
    except ValueError:
        return DEFAULT_TIME_SCALE
    return scale if scale > 0 else DEFAULT_TIME_SCALE


@dataclass(frozen=True)
class Mount:
    mount_path: str
    host_path: str
    read_only: bool = False


def pod_mounts() -> list[Mount] | None:
    """The container's mounts, or None when not run by the lab kubelet (everything visible)."""
    raw = os.environ.get(MOUNTS_ENV)
    if raw is None:
        return None
    return [Mount(m["mountPath"], m["hostPath"], bool(m.get("readOnly"))) for m in json.loads(raw)]


def visible_host_path(container_path: str, mounts: list[Mount] | None) -> str | None:
    """Host path behind `container_path`, or None when no volume mount makes it visible.

    Longest mountPath prefix wins, like overlapping bind mounts in a real container.
    """
    path = posixpath.normpath(container_path)
    if mounts is None:
        return host_path(path)
    best: Mount | None = None
    for mount in mounts:
        base = posixpath.normpath(mount.mount_path)
        if path == base or path.startswith(base.rstrip("/") + "/"):
            if best is None or len(base) > len(posixpath.normpath(best.mount_path)):
                best = mount
    if best is None:
        return None
    rest = posixpath.relpath(path, posixpath.normpath(best.mount_path))
    return host_path(posixpath.normpath(posixpath.join(best.host_path, rest)))
