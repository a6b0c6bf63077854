"""Encryption-key rotation on a lab: keys, phases, and the key order every control plane holds."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import yaml

from support.lab_cli import harden


PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ROTATE = str(PLAYBOOKS / "rotate-encryption-key.yml")
ENC = "etc/kubernetes/enc/encryption-config.yaml"
OLD = base64.b64encode(bytes(range(100, 132))).decode()
NEW = base64.b64encode(bytes(range(150, 182))).decode()
OTHER = base64.b64encode(bytes(range(200, 232))).decode()
LAB_VARS = ("-e", "harden_wait_interval=0.5")


def rotate(lab, state_dir: Path, key_file: Path, phase: str, *extra: str):
    return harden(state_dir, "apply", "-i", str(lab.inventory), ROTATE, "-e", f"@{key_file}",
                  "-e", f"rotation_phase={phase}", *LAB_VARS, *extra, timeout=600)


def key_order(lab) -> dict[str, list[str]]:
    """Per node, the secretbox key names in order, and "(reads only)" while identity writes."""
    out = {}
    for node in lab.nodes:
        found = providers(lab, node)
        box = next(p["secretbox"] for p in found if "secretbox" in p)
        out[node] = [k["name"] for k in box["keys"]] + \
            (["(reads only)"] if "identity" in found[0] else [])
    return out


def providers(lab, node: str) -> list[dict]:
    return yaml.safe_load((lab.node_root(node) / ENC).read_bytes())["resources"][0]["providers"]


def kubectl(lab, *args, stdin: str | None = None, node: str = "cp1"):
    """The distribution's kubectl against one control plane's API server (its admin.conf)."""
    conf = lab.node_root(node) / "etc/kubernetes/admin.conf"
    return subprocess.run(["kubectl", f"--kubeconfig={conf}", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def etcd(lab, *args, stdin: bytes | None = None):
    """Plain etcdctl on cp1's etcd member, with the API server's client certificate."""
    pki = lab.node_root("cp1") / "etc/kubernetes/pki"
    return subprocess.run(["etcdctl", f"--endpoints=https://{lab.nodes['cp1']}:2379",
                           f"--cacert={pki}/etcd/ca.crt", f"--cert={pki}/apiserver-etcd-client.crt",
                           f"--key={pki}/apiserver-etcd-client.key", *args], input=stdin,
                          capture_output=True, env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
                          timeout=60)


def secret_data(lab, node: str = "cp1") -> dict[str, str]:
    """namespace/name -> digest of the data of every secret, as kubectl reads it back through
    `node`'s API server."""
    listed = kubectl(lab, "get", "secrets", "-A", "-o", "json", node=node)
    assert listed.returncode == 0, listed.stderr
    return {f"{s['metadata']['namespace']}/{s['metadata']['name']}":
            hashlib.sha256(json.dumps(s.get("data"), sort_keys=True).encode()).hexdigest()
            for s in json.loads(listed.stdout)["items"]}


def stored_prefixes(lab) -> dict[str, int]:
    """Plain etcdctl on the node's etcd: every secret value's `provider:key`, or plaintext."""
    out = etcd(lab, "get", "--prefix", "/registry/secrets/", "-w", "json")
    assert out.returncode == 0, out.stderr
    found: dict[str, int] = {}
    for kv in json.loads(out.stdout).get("kvs", []):
        value = base64.b64decode(kv["value"])
        tag = b":".join(value.split(b":")[2:5:2]).decode() \
            if value.startswith(b"k8s:enc:") else "plaintext"
        found[tag] = found.get(tag, 0) + 1
    return found
