"""Waiting for a master's control socket: ready when it appears (even if gone again when the
process has already ended), exited, timed out; the same answers when the kernel cannot help
and the wait falls back to looking; no looking while the kernel can tell."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import pytest

from harden.ssh import socket_wait
from harden.ssh.socket_wait import EXITED, READY, TIMED_OUT, wait_for_socket

# what ssh does: bind a temporary name, link it to ControlPath, remove the temporary name
MAKE_SOCKET = """
import os, socket, sys, time
path = sys.argv[1]
time.sleep(float(sys.argv[2]))
s = socket.socket(socket.AF_UNIX)
s.bind(path + ".tmp")
os.link(path + ".tmp", path)
os.unlink(path + ".tmp")
if sys.argv[3] == "vanish":
    os.unlink(path)
    sys.exit(255)
time.sleep(30)
"""


@pytest.fixture(params=["kernel", "looking"])
def mode(request, monkeypatch):
    """Every behaviour holds with inotify + pidfd and with the polling fallback."""
    if request.param == "looking":
        monkeypatch.setattr(socket_wait._Watch, "open", classmethod(lambda cls, p, proc: None))
    elif not socket_wait._load_libc() or not hasattr(os, "pidfd_open"):
        pytest.skip("no inotify here")
    return request.param


def start(tmp_path, delay: float, then: str = "stay") -> tuple[str, subprocess.Popen]:
    path = str(tmp_path / "m")
    return path, subprocess.Popen([sys.executable, "-c", MAKE_SOCKET, path, str(delay), then])


def stop(process: subprocess.Popen) -> None:
    process.kill()
    process.wait()


def test_a_socket_that_appears_is_ready_as_soon_as_it_is_there(tmp_path, mode):
    path, process = start(tmp_path, 0.3)
    try:
        began = time.monotonic()
        assert wait_for_socket(path, process, began + 10) == READY
        assert os.path.exists(path)
        assert time.monotonic() - began < 5
    finally:
        stop(process)


def test_a_process_that_ends_without_a_socket_has_exited(tmp_path, mode):
    process = subprocess.Popen(["sh", "-c", "sleep 0.2; exit 255"])
    assert wait_for_socket(str(tmp_path / "m"), process, time.monotonic() + 10) == EXITED
    assert process.returncode == 255


def test_nothing_by_the_deadline_is_timed_out(tmp_path, mode):
    process = subprocess.Popen(["sleep", "30"])
    try:
        began = time.monotonic()
        assert wait_for_socket(str(tmp_path / "m"), process, began + 0.3) == TIMED_OUT
        assert 0.25 < time.monotonic() - began < 5
    finally:
        stop(process)


def test_a_socket_made_and_removed_before_a_look_still_counts_as_logged_in(tmp_path):
    if not socket_wait._load_libc() or not hasattr(os, "pidfd_open"):
        pytest.skip("no inotify here")
    path, process = start(tmp_path, 0.2, "vanish")
    process.wait()      # made, removed, exited before the wait even starts: the event stays
    # (a reaped process cannot be watched: the wait must fall back, and then sees nothing)
    assert wait_for_socket(path, process, time.monotonic() + 5) == EXITED
    path, process = start(tmp_path, 0.2, "vanish")
    assert wait_for_socket(path, process, time.monotonic() + 10) == READY


def test_the_kernel_wait_spends_no_cpu_looking(tmp_path):
    if not socket_wait._load_libc() or not hasattr(os, "pidfd_open"):
        pytest.skip("no inotify here")
    path, process = start(tmp_path, 1.0)
    try:
        before = resource.getrusage(resource.RUSAGE_THREAD)
        assert wait_for_socket(path, process, time.monotonic() + 10) == READY
        after = resource.getrusage(resource.RUSAGE_THREAD)
    finally:
        stop(process)
    # looking every 10 ms for a second costs ~10 ms of CPU or more; waiting on the kernel ~0
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 0.005


def test_hosts_starting_their_waits_together_all_get_the_kernel_wait(tmp_path, monkeypatch):
    """The first waits of a run start in every host's thread at once: none may see libc as
    'not available' while another thread is still loading it (and fall back to looking)."""
    if not socket_wait._load_libc() or not hasattr(os, "pidfd_open"):
        pytest.skip("no inotify here")
    import ctypes
    import threading

    real_cdll = ctypes.CDLL
    monkeypatch.setattr(ctypes, "CDLL", lambda *a, **k: time.sleep(0.2) or real_cdll(*a, **k))
    monkeypatch.setattr(socket_wait, "_libc", None)
    fallbacks = []
    monkeypatch.setattr(socket_wait, "_poll", lambda *a: fallbacks.append(a) or EXITED)
    processes = [subprocess.Popen(["true"]) for _ in range(16)]
    threads = [threading.Thread(target=wait_for_socket,
                                args=(str(tmp_path / f"m{i}"), p, time.monotonic() + 10))
               for i, p in enumerate(processes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fallbacks == []
