"""Driving the harden command line against a lab, with a state directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys


APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def harden(state_dir, *args: str, timeout: float = 280,
           env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "HARDEN_STATE_DIR": str(state_dir), "COLUMNS": "200",
               **(env or {})}
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=environ)
