"""What the paramiko and OpenSSH transports share: the error classes, retrying connection
establishment (and nothing else), and `HostSession`, which runs a command with become, stdin
and a timeout over whatever exec stream a transport opens.

Become is sudo with `-S`, a per-session random prompt and a start marker: the marker on stdout
proves sudo let the command start; a second prompt proves the password was rejected (sudo
re-asks instead of failing), so a wrong password is detected without waiting for a timeout.
"""

from __future__ import annotations

import random
import re
import secrets
import shlex
import threading
import time
from typing import Callable, TypeVar

from harden.errors import HostError
from harden.ssh.session import CommandResult
from harden.ssh.settings import ConnectionSpec

# What ssh or a proxy (usually `ssh -W` to a bastion) says when trying again may help.
RETRIED = re.compile(r"Connection refused|Connection reset|timed out|"
                     r"kex_exchange_identification|Connection closed by|"
                     r"Network is unreachable|No route to host", re.I)

BECOME_HANDSHAKE_TIMEOUT = 30.0   # sudo's own pause after a wrong password is ~2 s
T = TypeVar("T")


class Unreachable(HostError):
    """No SSH session could be established (refused, timed out, reset, lost)."""

    kind = "unreachable"


class AuthenticationFailed(HostError):
    """The server refused every key and password offered for the user."""

    kind = "auth failed"


class BecomeFailed(HostError):
    """sudo did not let the command run: wrong or missing password, not allowed, no sudo."""

    kind = "become failed"


class CommandTimeout(HostError):
    """A command did not finish in time; its channel was closed (it is not re-run)."""

    kind = "timeout"


class OutputTooLarge(HostError):
    """A command printed more than node.limits.MAX_OUTPUT_BYTES; its channel was closed."""

    kind = "output too large"


def bounded_output(host: str, stdout: bytearray, stderr: bytearray, limit: int,
                   close: Callable[[], None]) -> None:
    """Stop reading a node that sends more than any harden command prints (a hostile or
    broken node must not exhaust the controller's memory): close, then OutputTooLarge."""
    if len(stdout) + len(stderr) > limit:
        close()
        raise OutputTooLarge(host, f"a command's output passed the {limit}-byte limit "
                                   "(MAX_OUTPUT_BYTES); it was stopped")


class NetworkError(Exception):
    """A connection-establishment failure worth another attempt."""


def with_retries(spec: ConnectionSpec, attempt: Callable[[], T]) -> T:
    """Run a connection attempt again on network errors, within the connect timeout.

    The whole budget is the connect timeout: a refused or reset connection is tried again
    after a short jittered backoff, but a host is reported unreachable after about
    ConnectTimeout seconds, never several multiples of it. Nothing else is retried.

    The first attempt runs before tenacity is imported: almost every connection succeeds at
    once, and a check would otherwise pay tenacity's import (~9 ms) before its first login.
    The later attempts keep the schedule one Retrying over all of them had: attempt n+1
    after a wait drawn from [0, min(2, 0.25 * 2**(n-1))] s, none started after the budget.
    """
    started = time.monotonic()
    try:
        return attempt()
    except NetworkError as exc:
        if spec.retries < 1 or time.monotonic() - started >= spec.connect_timeout:
            raise Unreachable(spec.host, str(exc)) from None
    from tenacity import (Retrying, retry_if_exception_type, stop_after_attempt,
                          stop_after_delay, wait_random_exponential)

    time.sleep(random.uniform(0, 0.25))             # the wait after attempt 1
    retrying = Retrying(
        stop=stop_after_attempt(spec.retries)
        | stop_after_delay(max(0.0, spec.connect_timeout - (time.monotonic() - started))),
        wait=wait_random_exponential(multiplier=0.5, max=2.0),   # after attempt 2, 3, ...
        retry=retry_if_exception_type(NetworkError),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except NetworkError as exc:
        raise Unreachable(spec.host, str(exc)) from None


SCRIPT_COMMAND = "sh -s"      # how every node-side script is run: its text on stdin


def whole_script(script: bytes) -> bytes:
    """`script` as one brace group, so the node's sh runs none of it until all has arrived.

    sh executes stdin as it reads it. A script cut short (harden killed, the connection lost
    while sending) would run its first part, down to a write whose here-document stops
    mid-content: dash and bash both run a command whose here-document ends at end of input,
    so a manifest or encryption config would be replaced by a truncated one. A brace group is
    parsed whole before anything in it runs; cut, it is a syntax error that changes nothing."""
    return b"{\n" + script + (b"" if script.endswith(b"\n") else b"\n") + b"}\n"


class HostSession:
    """What both transports share, implementing harden.ssh.session.Session: become, stdin and
    timeouts work the same over either (`run` is here); subclasses open exec streams and TCP
    tunnels."""

    spec: ConnectionSpec
    host: str
    exec_count: int

    def __init__(self, spec: ConnectionSpec):
        self.spec = spec
        self.host = spec.host
        self.exec_count = 0
        self._lock = threading.Lock()
        self._token = secrets.token_hex(8)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.host} {self.spec.route} execs={self.exec_count}>"

    def run(self, command: str, *, become: bool | None = None, stdin: bytes | None = None,
            timeout: float | None = None) -> CommandResult:
        """Run one command (one exec channel); become=None follows the host's ansible_become.
        A script for `sh -s` is sent whole or not run at all (`whole_script`)."""
        deadline = time.monotonic() + timeout if timeout else None
        if command == SCRIPT_COMMAND and stdin:
            stdin = whole_script(stdin)
        if self._needs_sudo(self.spec.become if become is None else become):
            return self._run_sudo(command, stdin or b"", deadline, timeout)
        return self._stream(command, deadline, timeout).finish(stdin or b"")

    def open_tcp(self, host: str, port: int, timeout: float | None = None):
        """A TCP connection made *by the node* to host:port (sendall/recv/settimeout/close)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _open_stream(self, command: str, deadline: float | None, timeout: float | None):
        """Start `command` on one exec channel; the stream reads its output (paramiko's
        _Stream, openssh's _ProcessStream: stdout, stderr, ended, pump, send, finish, close)."""
        raise NotImplementedError

    def _stream(self, command: str, deadline: float | None, timeout: float | None):
        with self._lock:
            self.exec_count += 1
        return self._open_stream(command, deadline, timeout)

    def _needs_sudo(self, become: bool) -> bool:
        return become and self.spec.target.user != self.spec.become_user

    def _run_sudo(self, command: str, stdin: bytes, deadline: float | None,
                  timeout: float | None) -> CommandResult:
        prompt = f"[harden-sudo-{self._token}] password: "
        marker = f"HARDEN-BECOME-{self._token}"
        password = self.spec.become_password
        stream = self._stream(sudo_command(command, self.spec.become_user, marker,
                                           prompt if password else None), deadline, timeout)
        handshake_end = time.monotonic() + (timeout or BECOME_HANDSHAKE_TIMEOUT)
        _BecomeHandshake(self, stream, prompt, marker, handshake_end).run()
        return stream.finish(stdin)


def sudo_command(command: str, become_user: str, marker: str, prompt: str | None) -> str:
    """The shell line that runs `command` as `become_user` and first prints `marker`.

    With a prompt, sudo reads the password from stdin (-S) byte by byte, so whatever follows
    the password line on stdin still reaches the command. Without one, -n makes sudo fail at
    once instead of waiting for a password nobody will type.
    """
    auth = f"-S -p {shlex.quote(prompt)}" if prompt else "-n"
    inner = f'echo {marker}; exec /bin/sh -c "$1"'
    return (f"sudo -H {auth} -u {shlex.quote(become_user)} -- /bin/sh -c {shlex.quote(inner)} "
            f"harden {shlex.quote(command)}")


class _BecomeHandshake:
    """Answers sudo's prompt once and waits for the marker; any other ending is a failure."""

    def __init__(self, session: HostSession, stream, prompt: str, marker: str,
                 deadline: float):
        self.session, self.stream = session, stream
        self.prompt, self.marker = prompt.encode(), (marker + "\n").encode()
        self.deadline = deadline
        self.answered = 0

    def run(self) -> None:
        while True:
            stream = self.stream
            end = self._marker_end()
            if end is not None:
                del stream.stdout[:end]
                stream.stderr[:] = stream.stderr.replace(self.prompt, b"", self.answered)
                return
            prompts = stream.stderr.count(self.prompt)
            if prompts > self.answered:
                if self.answered:
                    self._fail("sudo password was rejected", "ansible_become_password")
                self._send_password()
                self.answered = prompts
            if time.monotonic() > self.deadline:
                self._fail("sudo did not start the command in time", "ansible_become")
            if stream.ended:
                self._fail_from_output()
            stream.pump(self.deadline)

    def _marker_end(self) -> int | None:
        """Where the command's own output starts: after the marker line.

        The marker must start a line but need not start stdout: a login shell's rc file
        (~/.bashrc) may print before sudo runs. That text is not the command's, so it is dropped.
        """
        out = self.stream.stdout
        if out.startswith(self.marker):
            return len(self.marker)
        at = out.find(b"\n" + self.marker)
        return None if at < 0 else at + 1 + len(self.marker)

    def _send_password(self) -> None:
        secret = self.session.spec.become_password
        try:
            self.stream.send((secret.reveal() + "\n").encode())
        except OSError as exc:      # streams report a lost connection as OSError
            raise Unreachable(self.session.host, f"connection lost: {exc}") from None

    def _fail_from_output(self) -> None:
        spec = self.session.spec
        text = self.stream.stderr.replace(self.prompt, b"").decode(errors="replace")
        if spec.become_password:
            text = text.replace(spec.become_password.reveal(), "********")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit status {self.stream.exit_status()}"
        if self.answered and "incorrect password" in text:   # sudoers passwd_tries=1
            self._fail("sudo password was rejected", "ansible_become_password")
        if "password is required" in last:
            self._fail(f"sudo needs a password for {spec.target.user}: use --ask-become-pass, "
                       "HARDEN_BECOME_PASSWORD or ansible_become_password",
                       "ansible_become_password")
        if "not found" in last and self.stream.exit_status() == 127:
            self._fail("sudo is not installed on the host", "ansible_become")
        self._fail(f"sudo refused to run the command as {spec.become_user}: {last}",
                   "ansible_become_user")

    def _fail(self, message: str, setting: str) -> None:
        self.stream.close()
        raise BecomeFailed(self.session.host, message, setting)
