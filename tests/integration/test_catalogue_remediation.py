"""Every `remediate:` of the catalogue is true: applying the named playbook (with its tags) on
the weak lab makes that check pass on every host it is evaluated on. One weak lab, one run per
playbook (encryption-at-rest: its two phases), in site.yml's order, each followed by a check."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harden.cis.catalogue import load_catalogue

pytestmark = pytest.mark.lab

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ORDER = ("cis-control-plane", "audit", "pod-security", "kubelet", "cis-worker",
         "encryption-at-rest")
KEY = base64.b64encode(bytes(range(32))).decode()


def harden(state_dir, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARDEN_STATE_DIR": str(state_dir), "COLUMNS": "250"}
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=600, env=env)


def check(lab, state_dir) -> dict[str, dict[str, str]]:
    """{check id: {host: status}}"""
    done = harden(state_dir, "check", "-i", str(lab.inventory), "--format", "json")
    assert done.returncode in (0, 2), done.stderr
    out: dict[str, dict[str, str]] = {}
    for r in json.loads(done.stdout)["results"]:
        out.setdefault(r["id"], {})[r["host"]] = r["status"]
    return out


def test_catalogue_names_only_playbooks_that_ship():
    named = {c.remediate["playbook"] for c in load_catalogue().checks if c.remediate}
    assert named == set(ORDER)


@pytest.mark.timeout(1500)
def test_every_remediating_playbook_fixes_its_checks_on_the_weak_lab(lab_factory, tmp_path):
    catalogue = load_catalogue()
    wanted = {name: [c for c in catalogue.checks if c.remediate and
                     c.remediate["playbook"] == name] for name in ORDER}
    with lab_factory.running(control_planes=1, workers=1, profile="weak",
                             wait_ready=True) as lab:
        not_fixed = []
        for name in ORDER:
            runs = [()] if name != "encryption-at-rest" else \
                [("-e", f"encryption_key={KEY}"),
                 ("-e", f"encryption_key={KEY}", "-e", "encryption_phase=enable")]
            tags = sorted({t for c in wanted[name] for t in c.remediate.get("tags") or []})
            for extra in runs:
                done = harden(tmp_path, "apply", "-i", str(lab.inventory),
                              str(PLAYBOOKS / f"{name}.yml"), "-t", ",".join(tags),
                              "-e", "harden_wait_interval=0.5", *extra)
                assert done.returncode == 0, f"{name}:\n{done.stdout[-4000:]}\n{done.stderr}"
            lab.wait_ready(60)
            statuses = check(lab, tmp_path)
            for item in wanted[name]:
                bad = {h: s for h, s in statuses.get(item.id, {}).items() if s != "PASS"}
                if bad or item.id not in statuses:
                    not_fixed.append(f"{item.id} ({name}): {bad or 'not evaluated'}")
        assert not_fixed == [], "\n".join(not_fixed)
