"""`harden ping` against a lab of real OpenSSH nodes: who answers, as whom, and why not."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from harden.ssh.settings import RunOptions, Secret, connection_spec
from harden.inventory.loader import load_inventory
from harden.ssh.ping import ping_host, run_ping

pytestmark = pytest.mark.lab


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def ping(inventory, **kwargs) -> tuple[int, str]:
    """run_ping with its table captured (wide, so no reason is cut)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=250, soft_wrap=True)
    code = run_ping([str(inventory)], console=console, **kwargs)
    return code, buffer.getvalue()


def rows(output: str) -> dict[str, list[str]]:
    """host -> [route, status, detail, time] from the table's body lines."""
    found = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 5:
            found[cells[0]] = cells[1:]
    return found


def lab_inventory(lab, path: Path, extra_hosts: str = "", user: str = "root",
                  key: Path | None = None, known_hosts: Path | None = None) -> Path:
    """An inventory of the lab's nodes (plus `extra_hosts` lines) with chosen credentials."""
    hosts = "\n".join(f"{name} ansible_host={address}" for name, address in lab.nodes.items())
    path.write_text(
        f"[nodes]\n{hosts}\n{extra_hosts}\n\n[nodes:vars]\nansible_user={user}\n"
        f"ansible_ssh_private_key_file={key or lab.key}\n"
        f"ansible_ssh_common_args='-o UserKnownHostsFile={known_hosts or lab.known_hosts} "
        "-o IdentitiesOnly=yes'\n")
    return path


# Files the lab's own emulated components rewrite all the time, ping or not.
EMULATOR_STATE = ("var/log/kubernetes/lab/", "var/log/pods/", "var/lib/etcd/", "var/lib/kubelet/harden-lab-pods")


def snapshot(root: Path) -> dict[str, tuple]:
    """path -> (size, mtime_ns, mode) of every file under a node's private root; directories
    by mode only (their mtime moves when an emulator renames its state file), so a file
    created, changed or re-moded by ping shows up."""
    out: dict[str, tuple] = {}
    for dirpath, _dirs, files in os.walk(root):
        if (os.path.relpath(dirpath, root) + "/").startswith(EMULATOR_STATE):
            continue
        out[dirpath] = (os.lstat(dirpath).st_mode,)
        for name in files:
            path = os.path.join(dirpath, name)
            if not os.path.relpath(path, root).startswith(EMULATOR_STATE):
                st = os.lstat(path)
                out[path] = (st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def test_ping_as_root_reaches_every_node_and_writes_nothing(lab3):
    before = {node: snapshot(lab3.node_root(node)) for node in lab3.nodes}
    time.sleep(0.05)   # so a write during ping gets a different mtime
    result = cli("ping", "-i", str(lab3.inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert set(table) == set(lab3.nodes)
    for node, (route, status, detail, _time) in table.items():
        assert (route, status, detail) == (f"root@{lab3.nodes[node]}:22", "ok", "as root")
    assert "3 ok, 0 failed" in result.stdout
    for node in lab3.nodes:
        after = snapshot(lab3.node_root(node))
        changed = sorted(p for p in set(after) | set(before[node])
                         if after.get(p) != before[node].get(p))
        assert changed == []


def test_ping_as_sudo_user_becomes_root(lab3):
    password = lab3.become_password
    result = cli("ping", "-i", str(lab3.sudo_inventory),
                 env={"HARDEN_BECOME_PASSWORD": (lab3.dir / "become-password").read_text()})
    assert result.returncode == 0, result.stdout + result.stderr
    table = rows(result.stdout)
    assert set(table) == set(lab3.nodes)
    assert all(r[0].startswith("labops@") and r[1:3] == ["ok", "as root"] for r in table.values())
    assert password not in result.stdout + result.stderr


def test_wrong_sudo_password_is_reported_as_such(lab3, monkeypatch, capsys):
    monkeypatch.setenv("HARDEN_BECOME_PASSWORD", "not-the-password-42")
    started = time.monotonic()
    code, output = ping(lab3.sudo_inventory, limit="cp1")
    assert code == 4
    assert time.monotonic() - started < 15   # detected from sudo's re-prompt, not a timeout
    assert rows(output)["cp1"][1] == "become failed"
    assert "cp1: become failed: sudo password was rejected" in output
    assert "not-the-password-42" not in output + capsys.readouterr().err


def test_sudo_without_any_password_says_how_to_give_one(lab3, monkeypatch):
    monkeypatch.delenv("HARDEN_BECOME_PASSWORD", raising=False)
    code, output = ping(lab3.sudo_inventory, limit="w1")
    assert code == 4
    assert "w1: become failed: sudo needs a password for labops" in output
    assert "HARDEN_BECOME_PASSWORD" in output


def test_one_ssh_exec_per_host(lab3, monkeypatch):
    root_hosts = load_inventory([str(lab3.inventory)]).select(None)
    for host in root_hosts:
        assert ping_host(connection_spec(host, RunOptions())) == ("root", 1)
    options = RunOptions(become_password=Secret(lab3.become_password))
    for host in load_inventory([str(lab3.sudo_inventory)]).select(None):
        assert ping_host(connection_spec(host, options)) == ("root", 1)


def test_stopped_and_silent_nodes_are_unreachable_within_the_timeout(lab3, tmp_path):
    """An unused address of the lab's /24 refuses at once; a listener that never speaks SSH
    times out; both within --timeout while the real nodes answer."""
    silent = socket.socket()
    silent.bind((f"{lab3.net}.98", 22))
    silent.listen(8)
    try:
        inventory = lab_inventory(lab3, tmp_path / "inv.ini",
                                  f"stopped ansible_host={lab3.net}.99\n"
                                  f"silent ansible_host={lab3.net}.98")
        started = time.monotonic()
        code, output = ping(inventory, connect_timeout=2.0)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    table = rows(output)
    assert code == 4
    assert [table[n][1] for n in lab3.nodes] == ["ok"] * 3
    assert table["stopped"][1] == table["silent"][1] == "unreachable"
    assert f"stopped: unreachable: connection to {lab3.net}.99:22 refused" in output
    assert re.search(r"silent: unreachable: SSH handshake with .* timed out after 2s", output)
    assert float(table["stopped"][3].rstrip("s")) < 2.0
    assert 2.0 <= float(table["silent"][3].rstrip("s")) < 3.0
    assert elapsed < 4.0


def test_missing_key_file_stops_before_any_connection(lab3, tmp_path):
    missing = tmp_path / "keys" / "id_missing"
    inventory = lab_inventory(lab3, tmp_path / "inv.ini",
                              f"broken ansible_host={lab3.net}.11 "
                              f"ansible_ssh_private_key_file={missing}")
    logs = {n: lab3.dir / "nodes" / n / "sshd.log" for n in lab3.nodes}
    sizes = {n: log.stat().st_size for n, log in logs.items()}
    result = cli("ping", "-i", str(inventory))
    assert result.returncode == 1
    assert (f"host broken (ansible_ssh_private_key_file): private key file {missing} "
            "does not exist") in result.stderr
    for node, log in logs.items():
        assert "Connection from" not in log.read_text()[sizes[node]:]


def test_unknown_limit_pattern_is_bad_input(lab3):
    result = cli("ping", "-i", str(lab3.inventory), "-l", "no-such-host")
    assert result.returncode == 1
    assert "no-such-host" in result.stderr
