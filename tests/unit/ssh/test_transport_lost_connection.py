"""Session.run against an in-process paramiko server over a socket pair (no network).

Covers what a real sshd cannot be made to do on cue: drop the connection in the middle of a
command, and print login-shell noise before sudo's start marker."""

from __future__ import annotations

import queue
import socket
import threading
import time

import paramiko
import pytest

from harden.ssh.settings import ConnectionSpec, Endpoint
from harden.ssh.transport import ParamikoSession, Unreachable


class _Server(paramiko.ServerInterface):
    def __init__(self, handler):
        self.handler = handler

    def get_allowed_auths(self, username):
        return "none"

    def check_auth_none(self, username):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        threading.Thread(target=self._answer, args=(channel, command.decode()),
                         daemon=True).start()
        return True

    def _answer(self, channel, command):
        time.sleep(0.2)      # let the exec request's success reply reach the client first
        self.handler(channel, command)


@pytest.fixture(scope="module")
def host_key():
    return paramiko.ECDSAKey.generate()


@pytest.fixture
def serve(host_key):
    """serve(handler, become=False) -> (Session, server transport); both closed afterwards."""
    opened = []

    def start(handler, become=False):
        client_sock, server_sock = socket.socketpair()
        server = paramiko.Transport(server_sock)
        server.add_server_key(host_key)
        # with an event, start_server returns at once and negotiates while the client starts
        server.start_server(threading.Event(),
                            server=_Server(lambda ch, cmd: handler(ch, cmd, server)))
        client = paramiko.Transport(client_sock)
        opened.extend([client, server])
        client.start_client(timeout=10)
        client.auth_none("ops")
        spec = ConnectionSpec("node1", Endpoint("node1", "127.0.0.1", 22, "ops"), become=become)
        return ParamikoSession(spec, [client]), server

    yield start
    for transport in reversed(opened):
        transport.close()


def test_connection_lost_mid_command_raises_unreachable(serve):
    def handler(channel, command, server):
        channel.sendall(b"partial output\n")
        server.close()       # the connection dies; no exit status, no EOF

    session, _ = serve(handler)
    with pytest.raises(Unreachable, match="connection lost while the command ran"):
        session.run("sleep 100", timeout=10)


def test_command_that_finishes_reports_its_exit_status(serve):
    def handler(channel, command, server):
        channel.sendall(b"out:" + command.encode())
        channel.sendall_stderr(b"err")
        channel.send_exit_status(3)
        channel.shutdown_write()
        channel.close()

    session, _ = serve(handler)
    result = session.run("echo hi", timeout=10)
    assert (result.rc, result.stdout, result.stderr) == (3, b"out:echo hi", b"err")


def test_become_marker_after_shell_rc_noise_is_found(serve):
    """~/.bashrc printing before sudo runs must not hide the start marker."""
    seen: queue.Queue = queue.Queue()

    def handler(channel, command, server):
        seen.put(command)
        marker = command.split("echo ", 1)[1].split(";", 1)[0]
        channel.sendall(b"Welcome from .bashrc\nno newline yet " + b"\n" + marker.encode()
                        + b"\nroot\n")
        channel.send_exit_status(0)
        channel.shutdown_write()
        channel.close()

    session, _ = serve(handler, become=True)
    result = session.run("id -un", timeout=10)
    assert "sudo" in seen.get(timeout=5)
    assert (result.rc, result.stdout) == (0, b"root\n")


def test_marker_text_inside_a_line_is_not_the_marker(serve):
    def handler(channel, command, server):
        marker = command.split("echo ", 1)[1].split(";", 1)[0]
        channel.sendall(b"motd mentions " + marker.encode() + b"\n")
        channel.sendall_stderr(b"sudo: a password is required\n")
        channel.send_exit_status(1)
        channel.shutdown_write()
        channel.close()

    from harden.ssh.transport import BecomeFailed

    session, _ = serve(handler, become=True)
    with pytest.raises(BecomeFailed, match="needs a password"):
        session.run("id -un", timeout=10)


def test_ping_gives_up_on_a_command_that_hangs(serve, monkeypatch):
    import harden.ssh.ping
    from harden.ssh.transport import CommandTimeout

    hung = threading.Event()

    def handler(channel, command, server):
        if hung.wait(3):     # `id -un` hangs (and answers late, so a ping without timeout ends)
            return
        channel.sendall(b"root\n")
        channel.send_exit_status(0)
        channel.close()

    session, _ = serve(handler)
    monkeypatch.setattr(harden.ssh.ping, "connect", lambda spec, jumps=None, one_exec=False: session)
    monkeypatch.setattr(harden.ssh.ping, "PING_TIMEOUT", 0.5)
    try:
        with pytest.raises(CommandTimeout):
            harden.ssh.ping.ping_host(session.spec)
    finally:
        hung.set()
