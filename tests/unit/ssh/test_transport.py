"""The parts of the SSH layer that need no server: the sudo wrapper and bounded parallelism."""

from __future__ import annotations

import subprocess
import threading
import time
from types import SimpleNamespace

from harden.ssh.parallel import for_each_host
from harden.ssh.transport import BecomeFailed, Unreachable, sudo_command


def test_sudo_wrapper_keeps_the_command_intact_through_two_shells(tmp_path):
    """Run the wrapped line with a fake `sudo` that just drops its own options."""
    fake = tmp_path / "sudo"
    fake.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done; shift; exec "$@"\n')
    fake.chmod(0o755)
    command = "printf '%s|' \"it's\" \"$HOME\" '$x' && cat"
    line = sudo_command(command, "root", "MARK-1", "[p] password: ")
    assert "-S -p '[p] password: '" in line and "-u root" in line
    out = subprocess.run(["sh", "-c", line], input=b"stdin-data",
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin", "HOME": "/h"},
                         capture_output=True, check=True).stdout
    assert out == b"MARK-1\nit's|/h|$x|stdin-data"


def test_sudo_without_password_never_waits():
    assert " -n " in sudo_command("id", "etcd", "M", None)
    assert "-S" not in sudo_command("id", "etcd", "M", None)


def hosts(*names):
    return [SimpleNamespace(name=n) for n in names]


def test_one_failing_host_does_not_stop_the_others():
    def work(host):
        if host.name == "b":
            raise Unreachable("b", "connection refused")
        if host.name == "c":
            raise BecomeFailed("c", "sudo password was rejected")
        if host.name == "d":
            raise ValueError("boom")
        return host.name.upper()

    outcomes = for_each_host(hosts("a", "b", "c", "d", "e"), work, forks=2)
    assert list(outcomes) == ["a", "b", "c", "d", "e"]
    assert [o.kind for o in outcomes.values()] == ["ok", "unreachable", "become failed",
                                                   "error", "ok"]
    assert outcomes["e"].value == "E"
    assert outcomes["b"].message == "connection refused"
    assert outcomes["d"].message == "internal error: ValueError: boom"


def test_parallelism_is_bounded_by_forks():
    lock, running, peak = threading.Lock(), [0], [0]

    def work(_host):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    for_each_host(hosts(*"abcdefghij"), work, forks=3)
    assert peak[0] == 3


def test_no_hosts_no_work():
    assert for_each_host([], lambda h: 1, forks=5) == {}
