"""The apply benchmark's node state: what bench/ansible/site.yml touches, read and put back from
the controller side (a lab node's files live under DIR/nodes/<name>/root on this machine).

Every timed apply must start from the same unhardened nodes, so the state is restored before
each run (outside the timed window), and read after it: both tools must leave the same state,
or the comparison would not be of the same work.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from bench.tools import Lab

# Everything site.yml may change, per node role; `None` content in a snapshot means absent.
EVERY_NODE = ("usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
              "etc/kubernetes/kubelet.conf", "etc/kubernetes/pki/ca.crt",
              "var/lib/kubelet/config.yaml", "etc/sysctl.d/90-kubelet.conf")
CONTROL_PLANE = tuple(f"etc/kubernetes/manifests/{m}" for m in (
    "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml", "etcd.yaml")) + \
    tuple(f"etc/kubernetes/{c}" for c in ("admin.conf", "super-admin.conf", "scheduler.conf",
                                          "controller-manager.conf", "audit-policy.yaml")) + \
    tuple(f"etc/kubernetes/pki/{k}" for k in ("ca.key", "apiserver.key",
                                              "apiserver-kubelet-client.key", "sa.key",
                                              "front-proxy-ca.key"))


def paths(lab: Lab, node: str) -> list[Path]:
    root = lab.dir / "nodes" / node / "root"
    control = (root / "etc/kubernetes/manifests/kube-apiserver.yaml").exists() or \
        (root / "etc/kubernetes/admin.conf").exists()
    return [root / p for p in EVERY_NODE + (CONTROL_PLANE if control else ())]


def read_state(lab: Lab) -> dict[str, tuple]:
    """path -> (mode, uid, gid, content) or None when absent."""
    state = {}
    for node in lab.addresses:
        for path in paths(lab, node):
            try:
                st = path.stat()
            except FileNotFoundError:
                state[str(path)] = None
                continue
            state[str(path)] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                                path.read_bytes())
    return state


def restore_state(state: dict[str, tuple]) -> None:
    """Put every path back as `state` has it (content, mode, owner), absent ones removed."""
    for name, value in state.items():
        path = Path(name)
        if value is None:
            path.unlink(missing_ok=True)
            continue
        mode, uid, gid, content = value
        if path.read_bytes() != content:
            path.write_bytes(content)
        os.chown(path, uid, gid)
        os.chmod(path, mode)


def changed_paths(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return sorted(name for name in before if before[name] != after.get(name))


def digest(state: dict[str, tuple]) -> str:
    """One sha256 over the whole state, to tell whether two runs left the same nodes."""
    sha = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        sha.update(name.encode() + b"\0" + (b"absent" if value is None else
                   repr(value[:3]).encode() + hashlib.sha256(value[3]).digest()))
    return sha.hexdigest()
