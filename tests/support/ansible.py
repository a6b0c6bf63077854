"""Where ansible-playbook is (beside this interpreter: the test extras install it into the
project's venv, else on PATH) and the environment every parity test runs it with. Tests compare
harden with the real thing."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from support.lab_cli import harden

# ssh's ControlMaster sockets need a short path (108 bytes), which a pytest tmp_path is not;
# one private (0700) directory per test session, removed when the session ends.
_CONTROL_DIR = tempfile.mkdtemp(prefix="hcp-", dir="/tmp")
atexit.register(shutil.rmtree, _CONTROL_DIR, ignore_errors=True)


def ansible_playbook() -> str:
    beside = Path(sys.executable).with_name("ansible-playbook")
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        pytest.skip("ansible-playbook is not installed (pip install '.[test]')")
    return found


def ansible_env(lab, cwd: Path) -> dict:
    """Ansible as a platform team runs it: pipelining on and one ssh master per host
    (ControlPersist), which is also how the bench runs it. Results and files do not depend
    on either; without them every task pays three or four fresh ssh logins, which made the
    parity suites the slowest part of `make test`. Host keys are checked against the lab's."""
    return {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "0", "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
            "ANSIBLE_LOCAL_TEMP": str(cwd / ".ansible"), "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": _CONTROL_DIR,
            "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist=30s "
                                f"-o UserKnownHostsFile={lab.known_hosts}"}


def write_content(root: Path, files: dict) -> Path:
    """A parity test's playbooks, roles and files (relative name -> dedented text) under root."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def ansible_recap(lab, content: Path, node: str, *options: str,
                  playbook: str = "site.yml") -> tuple[dict, str]:
    """ansible-playbook on one node: every count of its recap row, and its output."""
    done = subprocess.run([ansible_playbook(), "-i", str(lab.inventory), "-l", node, *options,
                           str(content / playbook)], capture_output=True, text=True,
                          timeout=300, env=ansible_env(lab, content), cwd=content)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    recap = re.search(rf"^{re.escape(node)}\s*:\s*(.*)$", done.stdout, re.M).group(1)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", recap)}, done.stdout


def ansible_counts(lab, content: Path, node: str, keys: tuple, *options: str) -> dict:
    """ansible-playbook's recap counts (`keys` of them) for content/site.yml on one node."""
    counts, _ = ansible_recap(lab, content, node, *options)
    return {k: counts[k] for k in keys}


def run_ansible(lab, content: Path, node: str, *options: str,
                playbook: str = "site.yml") -> tuple[dict, str]:
    """ok/changed/failed/skipped as harden counts them (it has no Gathering Facts task), and
    ansible-playbook's output."""
    counts, out = ansible_recap(lab, content, node, *options, playbook=playbook)
    gathered = out.count("TASK [Gathering Facts]")
    return {"ok": counts["ok"] - gathered, "changed": counts["changed"],
            "failed": counts["failed"], "skipped": counts["skipped"]}, out


def harden_report(lab, content: Path, node: str, state: Path, *options: str,
                  playbook: str = "site.yml", expect: int = 0) -> dict:
    """`harden apply --format json` of the same playbook on one node, with its exit code checked."""
    done = harden(state, "apply", "-i", str(lab.inventory), "-l", node, *options,
                  str(content / playbook), "--format", "json")
    assert done.returncode == expect, done.stdout[-3000:] + done.stderr[-2000:]
    return json.loads(done.stdout)


def harden_counts(lab, content: Path, node: str, state: Path, keys: tuple, *options: str,
                  expect: int = 0) -> dict:
    """`harden apply`'s counts (`keys` of them) for the same site.yml on another node."""
    report = harden_report(lab, content, node, state, *options, expect=expect)
    return {k: report["hosts"][node][k] for k in keys}


def run_harden(lab, content: Path, node: str, state: Path, *options: str,
               playbook: str = "site.yml", expect: int = 0) -> tuple[dict, dict]:
    """ok/changed/failed, skipped counted per task status, and the whole report."""
    report = harden_report(lab, content, node, state, *options, playbook=playbook,
                           expect=expect)
    counts = {k: report["hosts"][node][k] for k in ("ok", "changed", "failed")}
    counts["skipped"] = sum(t["status"] == "skipped" for t in report["tasks"][node])
    return counts, report


def run_both(lab, content: Path, state: Path, node_view, *options: str) -> tuple[dict, dict]:
    """site.yml by ansible-playbook on the lab's first node and by harden on its second: equal
    counts and an equal `node_view(lab, node)` on both; Ansible's counts and harden's report."""
    by_ansible, by_harden = lab.names()
    (theirs, out), (ours, report) = run_ansible(lab, content, by_ansible, *options), \
        run_harden(lab, content, by_harden, state, *options)
    statuses = [(t["task"], t["status"]) for t in report["tasks"][by_harden]]
    assert theirs == ours, (statuses, out[-3000:])
    assert node_view(lab, by_ansible) == node_view(lab, by_harden)
    return theirs, report
