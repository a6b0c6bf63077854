"""Encryption-key rotation on a lab: keys, phases, and the key order every control plane holds."""

from __future__ import annotations

import base64
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
