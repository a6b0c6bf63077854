"""Where ansible-playbook is (beside this interpreter: the test extras install it into the
project's venv, else on PATH) and the environment every parity test runs it with. Tests compare
harden with the real thing."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

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
