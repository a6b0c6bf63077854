"""Driving the harden command line against a lab, with a state directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time


APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"


def harden(state_dir, *args: str, timeout: float = 280,
           env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "HARDEN_STATE_DIR": str(state_dir), "COLUMNS": "200",
               **(env or {})}
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=environ)


def wait_for(condition, timeout: float = 40.0) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.3)


def kubectl(lab, *args, node: str = "cp1", stdin: str | None = None):
    """The distribution's kubectl with cp1's admin.conf against `node`'s API server."""
    conf = lab.node_root("cp1") / "etc/kubernetes/admin.conf"
    return subprocess.run(["kubectl", f"--kubeconfig={conf}",
                           f"--server=https://{lab.nodes[node]}:6443", *args],
                          input=stdin, capture_output=True, text=True, timeout=60)
