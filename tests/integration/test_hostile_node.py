"""A node that sends back too much or the wrong kind of file (issue 8, point 5): `check` and
`apply` name the host, the file and the limit, quickly and with bounded controller memory, and
`apply` writes nothing."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.lab

DROPIN = "/etc/systemd/system/kubelet.service.d/99-huge.conf"
TARGET_DIR = "/etc/kubernetes/harden-hostile"


@pytest.fixture(scope="module")
def lab(lab_factory):
    with lab_factory.running(control_planes=1, workers=0) as running:
        yield running


def harden(state_dir, *args: str) -> tuple[subprocess.CompletedProcess, float, float]:
    """(result, seconds, peak RSS of the harden process in MB)."""
    environ = {**os.environ, "HARDEN_STATE_DIR": str(state_dir), "COLUMNS": "200"}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "harden.cli", *args], env=environ,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=280)
    seconds = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)     # the largest child so far
    return (subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr),
            seconds, usage.ru_maxrss / 1024)


def test_a_256_mib_file_is_reported_in_seconds_with_bounded_memory(lab, tmp_path):
    baseline, base_seconds, base_rss = harden(tmp_path, "check", "-i", str(lab.inventory))
    assert baseline.returncode in (0, 2), baseline.stdout + baseline.stderr
    lab.ssh("cp1", f"truncate -s 256M {DROPIN}")
    try:
        result, seconds, rss = harden(tmp_path, "check", "-i", str(lab.inventory))
    finally:
        lab.ssh("cp1", f"rm -f {DROPIN}")
    print(f"check, 256 MiB file: exit {result.returncode} in {seconds:.1f}s, "
          f"peak RSS {rss:.0f} MB (baseline: {base_seconds:.1f}s, {base_rss:.0f} MB)")
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"cp1" in result.stdout and f"{DROPIN} is 268435456 bytes, over the 4194304-byte " \
        "limit" in " ".join(result.stdout.split())
    assert seconds < max(10.0, base_seconds * 1.5)     # 10 s, unless the machine is so busy
    assert rss - base_rss < 100                         # that a plain check takes longer


def copy_play(dest: str) -> str:
    return f"""
- hosts: cp1
  become: true
  tasks:
    - name: a file next to the odd one
      copy: {{dest: {TARGET_DIR}/new.conf, content: "x\\n"}}
    - name: the odd one
      copy: {{dest: {dest}, content: "small\\n"}}
"""


@pytest.mark.parametrize("make, says", [
    ("truncate -s 256M {path}", "{path} is 268435456 bytes, over the 4194304-byte limit"),
    ("mkfifo {path}", "{path} is a fifo, not a regular file"),
    ("mknod {path} c 1 3", "{path} is a character special file, not a regular file"),
], ids=["huge", "fifo", "device"])
def test_apply_refuses_an_odd_file_naming_host_and_file_and_writes_nothing(lab, tmp_path, make,
                                                                          says):
    path = f"{TARGET_DIR}/odd.conf"
    lab.ssh("cp1", f"rm -rf {TARGET_DIR} && mkdir -p {TARGET_DIR} && "
                   + make.format(path=path))
    playbook = tmp_path / "odd.yml"
    playbook.write_text(copy_play(path))
    try:
        result, seconds, rss = harden(tmp_path, "apply", "-i", str(lab.inventory), str(playbook))
        listing = lab.ssh("cp1", f"ls -A {TARGET_DIR}").stdout.split()
    finally:
        lab.ssh("cp1", f"rm -rf {TARGET_DIR}")
    assert result.returncode == 4, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    assert "cp1" in output and says.format(path=path) in output, result.stdout
    assert "internal error" not in output
    print(f"apply, {make.split()[0]}: exit {result.returncode} in {seconds:.1f}s, "
          f"peak RSS so far {rss:.0f} MB")
    assert seconds < 10 and rss < 150                  # a Python controller is ~50 MB
    assert listing == ["odd.conf"]                     # nothing written, no temp file left
