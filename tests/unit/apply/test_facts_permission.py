"""A path the fact script cannot see is "permission denied as user X", never "absent": the
script is run here with the local `sh` as an unprivileged user (setpriv), so that a directory
it may not search hides a file that exists."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harden.apply.facts import FILE, GLOB, FactRequest, build_script, parse_output

NOBODY = 65534


def _as_nobody(script: str) -> str:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the script as another user")
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "sh", "-s"], input=script, text=True, capture_output=True,
                          check=True).stdout


@pytest.fixture
def private_dir():
    """Under /tmp (pytest's own tmp dirs are root-only all the way down)."""
    tmp_path = Path(tempfile.mkdtemp(prefix="harden-facts-", dir="/tmp"))
    tmp_path.chmod(0o755)
    hidden = tmp_path / "manifests"
    hidden.mkdir(mode=0o700)
    (hidden / "kube-scheduler.yaml").write_text("kind: Pod\n")
    readable = tmp_path / "open"
    readable.mkdir(mode=0o755)
    (readable / "secret.conf").write_text("x\n")
    (readable / "secret.conf").chmod(0o600)
    yield tmp_path
    shutil.rmtree(tmp_path)


@pytest.mark.parametrize("request_of, why", [
    (lambda d: FactRequest(FILE, f"{d}/manifests/kube-scheduler.yaml", content=True),
     "a directory on the way cannot be searched"),
    (lambda d: FactRequest(GLOB, f"{d}/manifests/*.yaml"),
     "a directory on the way cannot be searched"),
    (lambda d: FactRequest(FILE, f"{d}/open/secret.conf", content=True),
     "it exists but cannot be read"),
])
def test_an_unseen_path_is_permission_denied_naming_the_user(private_dir, request_of, why):
    requests = [request_of(private_dir)]
    output = _as_nobody(build_script(requests))
    with pytest.raises(ValueError) as caught:
        parse_output(requests, output)
    user = subprocess.run(["id", "-nu", str(NOBODY)], capture_output=True, text=True).stdout
    assert f"permission denied as user {user.strip() or NOBODY}" in str(caught.value)
    assert why in str(caught.value)
    assert "add `become: true` to the play or task" in str(caught.value)


def test_a_missing_path_in_a_searchable_directory_is_still_absent(private_dir):
    requests = [FactRequest(FILE, f"{private_dir}/open/nothing-here", content=True)]
    facts = parse_output(requests, _as_nobody(build_script(requests)))
    assert facts.file(f"{private_dir}/open/nothing-here") is None
