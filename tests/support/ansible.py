"""Where ansible-playbook is: beside this interpreter (the test extras install ansible-core
into the project's venv), else on PATH. Tests compare harden with the real thing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


def ansible_playbook() -> str:
    beside = Path(sys.executable).with_name("ansible-playbook")
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        pytest.skip("ansible-playbook is not installed (pip install '.[test]')")
    return found
