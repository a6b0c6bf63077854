"""The shipped site.yml on both lab profiles, judged by harden check: what the README and
`make demo` promise (hardening fixes the automatable CIS items, a second run changes nothing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

SITE = str(Path(__file__).resolve().parents[2] / "playbooks" / "site.yml")
LAB_VARS = ("-e", "harden_wait_interval=0.5")
# Scored FAILs site.yml leaves on purpose, per profile (see docs/playbooks.md): etcd's owner
# (kubeadm runs etcd as root), kubelet serving certs (1.2.5), token lifetimes (1.2.30, may break
# old clients), the secrets etcd still holds in plaintext (1.2.28e: site.yml only prepares
# encryption; the enable run encrypts and rewrites), and on the weak profile what it cannot
# fix safely without the operator.
LEFT = {"kubeadm": {"1.1.12", "1.2.5", "1.2.28e", "1.2.30"},
        "weak": {"1.1.12", "1.2.4", "1.2.5", "1.2.28e", "1.2.30", "1.3.7", "1.4.2"}}


def harden(state_dir, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARDEN_STATE_DIR": str(state_dir)}
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env)


def scored_fails(lab, state_dir) -> dict[str, set[str]]:
    done = harden(state_dir, "check", "-i", str(lab.inventory), "--format", "json")
    assert done.returncode in (0, 2), done.stderr
    fails: dict[str, set[str]] = {host: set() for host in lab.nodes}
    for r in json.loads(done.stdout)["results"]:
        if r["scored"] and r["status"] == "FAIL":
            fails[r["host"]].add(r["id"])
    return fails


@pytest.mark.timeout(600)
@pytest.mark.parametrize("profile", ["kubeadm", "weak"])
def test_site_yml_hardens_and_is_idempotent(lab_factory, tmp_path, profile):
    lab = lab_factory.start(control_planes=1, workers=1, profile=profile)
    try:
        lab.wait_ready()
        before = scored_fails(lab, tmp_path)
        first = harden(tmp_path, "apply", "-i", str(lab.inventory), SITE,
                       *LAB_VARS, "--format", "json")
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr
        assert all(h["changed"] > 0 for h in json.loads(first.stdout)["hosts"].values())
        second = harden(tmp_path, "apply", "-i", str(lab.inventory), SITE,
                        *LAB_VARS, "--format", "json")
        assert second.returncode == 0, second.stderr
        assert {h: c["changed"] for h, c in json.loads(second.stdout)["hosts"].items()} == \
            {h: 0 for h in lab.nodes}
        lab.wait_ready()
        after = scored_fails(lab, tmp_path)
        for host, role in lab.roles.items():
            left = LEFT[profile] if role == "control-plane" else set()
            assert after[host] == left & before[host], (host, after[host])
            assert before[host] > after[host]
    finally:
        lab.down()
