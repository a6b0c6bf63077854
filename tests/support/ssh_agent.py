"""A test's own ssh-agent: started on a short socket path, waited for, stopped afterwards; and
`ssh-add` for keys with or without a passphrase (answered through SSH_ASKPASS)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def wait_for_agent(process: subprocess.Popen, env: dict[str, str]) -> None:
    """Until the agent answers: `ssh-add -l` exits 0 (keys) or 1 (none) once it listens,
    2 while it cannot be reached (the socket file can exist before the agent accepts)."""
    deadline = time.monotonic() + 10
    while True:
        listed = subprocess.run(["ssh-add", "-l"], env=env, capture_output=True, timeout=10,
                                stdin=subprocess.DEVNULL)
        if listed.returncode in (0, 1):
            return
        assert process.poll() is None, f"ssh-agent exited (rc {process.returncode})"
        assert time.monotonic() < deadline, f"ssh-agent does not answer: {listed.stderr!r}"
        time.sleep(0.02)


@contextmanager
def running_agent(*options: str):
    """An ssh-agent (`ssh-agent -D -a SOCK *options`); yields its socket path. The socket
    lives in a short mkdtemp() directory: a Unix socket path has at most 108 bytes, which
    pytest's tmp_path can exceed."""
    directory = tempfile.mkdtemp(prefix="hfa")
    sock = os.path.join(directory, "agent.sock")
    process = subprocess.Popen(["ssh-agent", "-D", "-a", sock, *options],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_agent(process, {**os.environ, "SSH_AUTH_SOCK": sock})
        yield sock
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


def add_key(sock: str, key: Path, passphrase: str | None = None, **env: str) -> None:
    """`ssh-add KEY` (which also adds `KEY-cert.pub` when it is there), answering a
    passphrase prompt through SSH_ASKPASS with a script beside the key."""
    environ = {**os.environ, "SSH_AUTH_SOCK": sock, **env}
    if passphrase is not None:
        askpass = key.with_name(key.name + ".askpass")
        askpass.write_text(f"#!/bin/sh\necho '{passphrase}'\n")
        askpass.chmod(0o700)
        environ.update(SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force")
    subprocess.run(["ssh-add", str(key)], env=environ, check=True, capture_output=True,
                   timeout=30, stdin=subprocess.DEVNULL)
