"""Waiting for an `ssh` master's control socket without polling.

Why: a master (or the ssh that logs in and runs a check's probe) is ready when its control
socket appears, and has failed when the process exits. Looking for both every 10 ms cost
about 90 µs of controller CPU per look, per host, for as long as logins take: on a busy
machine with 20 hosts logging in for ~1 s each that was ~0.2 s of CPU spent looking, and
it grew with the host count times the login time. Here the kernel says when something
happened: inotify reports the socket's directory entry being created (OpenSSH binds a
temporary name and links it to ControlPath, which creates the entry), a pidfd reports the
process's exit, and `select` sleeps on both until then or the deadline.

Linux only (inotify through libc, `os.pidfd_open`); where either is missing or a limit is
reached (`fs.inotify.max_user_instances`), `wait_for_socket` falls back to looking every
POLL seconds, as before. The result is the same either way; only the cost differs.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time

POLL = 0.01                  # seconds between looks when the kernel cannot tell us
READY, EXITED, TIMED_OUT = "ready", "exited", "timed out"

_IN_CREATE, _IN_MOVED_TO = 0x100, 0x80
_libc = None                 # ctypes' libc, loaded at the first wait (False: not available)
_LOADING = threading.Lock()


def wait_for_socket(path: str, process: subprocess.Popen, deadline: float) -> str:
    """READY once `path` exists, EXITED once `process` ended without it, TIMED_OUT at
    `deadline` (time.monotonic()). The process must not have been reaped yet (no poll() that
    saw it exit) when the wait starts, or its pidfd could name another process."""
    watch = _Watch.open(path, process)
    if watch is None:
        return _poll(path, process, deadline)
    try:
        return watch.wait(deadline)
    finally:
        watch.close()


def _poll(path: str, process: subprocess.Popen, deadline: float) -> str:
    while not os.path.exists(path):
        if process.poll() is not None:
            return READY if os.path.exists(path) else EXITED
        if time.monotonic() > deadline:
            return TIMED_OUT
        time.sleep(POLL)
    return READY


class _Watch:
    """An inotify descriptor on the socket's directory and a pidfd of the process."""

    def __init__(self, path: str, process: subprocess.Popen, inotify: int, pidfd: int):
        self.path, self.process, self.inotify, self.pidfd = path, process, inotify, pidfd

    @classmethod
    def open(cls, path: str, process: subprocess.Popen) -> _Watch | None:
        """The watch, or None when the kernel or the platform cannot give one."""
        libc = _load_libc()
        if not libc or not hasattr(os, "pidfd_open") or process.returncode is not None:
            return None
        inotify = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)   # = IN_NONBLOCK | IN_CLOEXEC
        if inotify < 0:
            return None              # e.g. max_user_instances reached: look instead
        directory = os.path.dirname(path) or "."
        if libc.inotify_add_watch(inotify, os.fsencode(directory), _IN_CREATE | _IN_MOVED_TO) < 0:
            os.close(inotify)
            return None
        try:
            pidfd = os.pidfd_open(process.pid)
        except OSError:
            os.close(inotify)
            return None
        return cls(path, process, inotify, pidfd)

    def wait(self, deadline: float) -> str:
        # the watch exists before the first look, so a socket made in between is not missed;
        # one that was made and is gone again (a command that ended at once, its master
        # with it) was still made: the login happened
        made = False
        while not made and not os.path.exists(self.path):
            if self.process.poll() is not None:
                return READY if os.path.exists(self.path) or self._made() else EXITED
            left = deadline - time.monotonic()
            if left <= 0:
                return TIMED_OUT
            readable, _, _ = select.select([self.inotify, self.pidfd], [], [], left)
            if self.inotify in readable:
                made = self._made()
        return READY

    def _made(self) -> bool:
        """Whether the events waiting name the socket (struct inotify_event: wd, mask,
        cookie, len, then len bytes of NUL-padded name)."""
        name, made = os.fsencode(os.path.basename(self.path)), False
        try:
            while chunk := os.read(self.inotify, 65536):
                at = 0
                while at + 16 <= len(chunk):
                    size = int.from_bytes(chunk[at + 12:at + 16], sys.byteorder)
                    made = made or chunk[at + 16:at + 16 + size].rstrip(b"\0") == name
                    at += 16 + size
        except BlockingIOError:
            pass
        return made

    def close(self) -> None:
        os.close(self.inotify)
        os.close(self.pidfd)


def _load_libc():
    """libc with inotify, or False (not Linux, no ctypes): loaded once, on first use, so a
    run that starts no master never pays ctypes' import."""
    global _libc
    with _LOADING:        # hosts' threads start their waits together; one loads, all get it
        if _libc is None:
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)     # the process's own symbols
                libc.inotify_init1.argtypes = [ctypes.c_int]
                libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p,
                                                   ctypes.c_uint32]
                _libc = libc
            except (OSError, AttributeError, ImportError):
                _libc = False
    return _libc
