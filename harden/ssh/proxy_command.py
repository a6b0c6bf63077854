"""A ProxyCommand for the paramiko transport, started the way ssh 9.2 starts it.

paramiko's own ProxyCommand shlex-splits the command and execs it without a shell, so `$VAR`,
`~`, `2>/dev/null` and `||` in a command that works with ssh did nothing or broke it, and the
proxy's stderr was never read. ssh runs `exec COMMAND` through the user's shell ($SHELL, else
/bin/sh: sshconnect.c) and lets the proxy's stderr reach the user; harden keeps its last lines
for the error that names the host.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import threading
import time
from collections import deque

from harden.ssh.deferred_invoke import defer_invoke

defer_invoke()
import paramiko  # noqa: E402

_TAIL_LINES = 5
_LINE_MAX = 300
_READER_WAIT = 1.0      # seconds to collect what a proxy printed before it was ended
_END_WAIT = 2.0         # seconds a proxy has to exit after SIGTERM before SIGKILL


def user_shell() -> str:
    """ssh's choice: $SHELL when set and not empty, else /bin/sh."""
    return os.environ.get("SHELL") or "/bin/sh"


class ShellProxy(paramiko.ProxyCommand):
    """paramiko's socket-like ProxyCommand around `$SHELL -c 'exec COMMAND'`, keeping the
    proxy's last stderr lines (a reader thread, so a chatty proxy cannot block on a full
    pipe)."""

    def __init__(self, command: str):
        # not super().__init__: that shlex-splits and execs the command without a shell
        self.cmd = [user_shell(), "-c", f"exec {command}"]
        self.process = subprocess.Popen(self.cmd, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        bufsize=0)
        self.timeout = None
        self._ended_by_us = False
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True,
                                         name="proxy-stderr")
        self._reader.start()

    def _read_stderr(self) -> None:
        for raw in iter(self.process.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").strip()
            if line:
                self._tail.append(line[:_LINE_MAX])

    def recv(self, size: int) -> bytes:
        """paramiko's recv, but an exited proxy is end of file at once (paramiko's loops on
        an empty read until the handshake times out, hiding why)."""
        buffer = b""
        start = time.monotonic()
        while len(buffer) < size:
            wait = None
            if self.timeout is not None:
                wait = self.timeout - (time.monotonic() - start)
                if wait <= 0:
                    if buffer:
                        return buffer
                    raise socket.timeout()
            ready, _, _ = select.select([self.process.stdout], [], [], wait)
            if ready:
                chunk = os.read(self.process.stdout.fileno(), size - len(buffer))
                if not chunk:
                    return buffer
                buffer += chunk
        return buffer

    def close(self) -> None:
        """End the proxy unless it has already exited (SIGTERM, as paramiko does, then
        SIGKILL), reap it and close its pipes: a long fleet run leaves no zombie or fd."""
        if self.process.poll() is None:
            self._ended_by_us = True
            try:
                self.process.terminate()
                self.process.wait(timeout=_END_WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            except OSError:
                pass
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        self._reader.join(_READER_WAIT)       # it ends at EOF on stderr, then closes it
        if not self._reader.is_alive():
            self.process.stderr.close()

    def failure(self) -> tuple[bool, str]:
        """(whether the proxy exited by itself, what went wrong with it in words: its exit
        status or that it was still running, and its last stderr lines). Ends the proxy."""
        try:    # a proxy that closed its stdout is usually exiting: let it finish
            self.process.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            pass
        self.close()
        status = None if self._ended_by_us else self.process.returncode
        said = " | ".join(self._tail)
        state = (f"ProxyCommand exited with status {status}" if status is not None
                 else "ProxyCommand was still running")
        return status is not None, (f"{state}; its stderr: {said}" if said
                                    else f"{state}, printing nothing on stderr")

    def said(self) -> str:
        """The proxy's last stderr lines, one string."""
        return " | ".join(self._tail)
