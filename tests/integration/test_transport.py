"""The SSH layer against real OpenSSH nodes: jump hosts, host keys, sudo, timeouts."""

from __future__ import annotations

import base64
import io
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest
from rich.console import Console

from harden.ssh.settings import RunOptions, Secret, connection_spec
from harden.ssh.hostkeys import fingerprint
from harden.inventory.loader import Host, load_inventory
from harden.ssh.ping import run_ping
from harden.ssh.transport import (AuthenticationFailed, BecomeFailed, CommandTimeout, Unreachable,
                              connect)

pytestmark = pytest.mark.lab


def write_inventory(path: Path, lab, hosts: dict[str, str], user: str = "root",
                    known_hosts: Path | None = None, key: Path | None = None,
                    common_args: str = "") -> Path:
    """An INI inventory: `hosts` maps a name to its extra `key=value` text."""
    lines = [f"{name} {extra}" for name, extra in hosts.items()]
    path.write_text(
        "[nodes]\n" + "\n".join(lines) + "\n\n[nodes:vars]\n"
        f"ansible_user={user}\nansible_ssh_private_key_file={key or lab.key}\n"
        f"ansible_ssh_common_args='-o UserKnownHostsFile={known_hosts or lab.known_hosts} "
        f"-o IdentitiesOnly=yes {common_args}'\n")
    return path


def session_for(inventory: Path, name: str, options: RunOptions | None = None):
    inv = load_inventory([str(inventory)])
    return connect(connection_spec(inv.hosts[name], options or
                                   RunOptions(inventory_hosts=inv.hosts)))


def ping_output(inventory: Path, **kwargs) -> tuple[int, str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=250, soft_wrap=True)
    code = run_ping([str(inventory)], console=console, **kwargs)
    return code, buffer.getvalue()


def rows_status(output: str) -> dict[str, str]:
    """host -> status column of the ping table."""
    return {cells[0]: cells[2] for cells in
            ([c.strip() for c in line.split("│")[1:-1]] for line in output.splitlines())
            if len(cells) == 5}


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def sshd_log(lab, node: str) -> Path:
    return lab.dir / "nodes" / node / "sshd.log"


def offered_key(lab, node: str) -> tuple[str, str]:
    """(key type, base64) the lab recorded for a node in its known_hosts."""
    for line in lab.known_hosts.read_text().splitlines():
        address, key_type, blob = line.split()[:3]
        if address == lab.nodes[node]:
            return key_type, blob
    raise AssertionError(f"{node} not in {lab.known_hosts}")


def test_jump_host_chain_goes_through_the_bastion(lab3, tmp_path):
    """w1 reached via cp1 (an inventory name) and via `-J root@cp2-address,cp1`: each
    bastion's sshd log shows the forwarded (direct-tcpip) connection to the next hop."""
    cp1, cp2, w1 = lab3.nodes["cp1"], lab3.nodes["cp2"], lab3.nodes["w1"]
    inventory = write_inventory(tmp_path / "inv.ini", lab3, {
        "cp1": f"ansible_host={cp1}",
        "w1-via-cp1": f"ansible_host={w1} ansible_ssh_extra_args='-o ProxyJump=cp1'",
        "w1-via-cp2-cp1": f"ansible_host={w1} ansible_ssh_extra_args='-J root@{cp2}:22,cp1'",
    })
    marks = {n: sshd_log(lab3, n).stat().st_size for n in ("cp1", "cp2")}
    with session_for(inventory, "w1-via-cp1") as session:
        assert session.spec.route == f"root@{w1}:22 via root@{cp1}:22"
        server_side = session.run("echo $SSH_CONNECTION").stdout.decode().split()[2]
    assert server_side == w1
    forwarded = re.compile(rf"server_request_direct_tcpip: .*target {re.escape(w1)} port 22")
    assert forwarded.search(sshd_log(lab3, "cp1").read_text()[marks["cp1"]:])
    with session_for(inventory, "w1-via-cp2-cp1") as session:
        assert session.run("true").rc == 0
    cp2_log = sshd_log(lab3, "cp2").read_text()[marks["cp2"]:]
    assert re.search(rf"server_request_direct_tcpip: .*target {re.escape(cp1)} port 22", cp2_log)


def _sshd_config(directory: Path, name: str, listen: str | None) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(directory / f"{name}_host_key")], check=True)
    config = directory / f"{name}_sshd_config"
    config.write_text("\n".join([
        *([f"ListenAddress {listen}:22"] if listen else []),
        f"HostKey {directory / f'{name}_host_key'}", f"PidFile {directory / f'{name}.pid'}",
        f"AuthorizedKeysFile {directory / 'authorized_keys'}", "UsePAM no",
        "PasswordAuthentication no", "PermitRootLogin prohibit-password", "StrictModes no",
        "LogLevel DEBUG1", "AllowTcpForwarding yes", ""]))
    return config


@pytest.fixture
def hidden_target(lab3, tmp_path):
    """An sshd inside a network namespace of its own (listening on an address of the lab's
    /24 that, outside that namespace, nobody listens on), and a bastion: an sshd started per
    connection (inetd mode) INSIDE that namespace but fed by a socket accepted outside it.
    So the target is reachable only through the bastion."""
    (tmp_path / "authorized_keys").write_text(Path(f"{lab3.key}.pub").read_text())
    target_addr, bastion_addr = f"{lab3.net}.95", f"{lab3.net}.96"
    target_cfg = _sshd_config(tmp_path, "target", target_addr)
    bastion_cfg = _sshd_config(tmp_path, "bastion", None)
    target = subprocess.Popen(
        ["unshare", "-n", "sh", "-c", "ip link set lo up && exec /usr/sbin/sshd -D -f "
         f"{target_cfg} -E {tmp_path / 'target.log'}"])
    listener = socket.create_server((bastion_addr, 22))
    children: list[subprocess.Popen] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                children.append(subprocess.Popen(
                    ["nsenter", "-t", str(target.pid), "-n", "/usr/sbin/sshd", "-i", "-f",
                     str(bastion_cfg), "-E", str(tmp_path / "bastion.log")],
                    stdin=conn.fileno(), stdout=conn.fileno()))

    threading.Thread(target=serve, daemon=True).start()
    try:
        deadline = time.monotonic() + 10
        while "Server listening" not in _read(tmp_path / "target.log"):
            assert time.monotonic() < deadline and target.poll() is None, "target sshd failed"
            time.sleep(0.05)
        known = tmp_path / "known_hosts"
        known.write_text("".join(
            f"{addr} {' '.join((tmp_path / f'{n}_host_key.pub').read_text().split()[:2])}\n"
            for n, addr in (("target", target_addr), ("bastion", bastion_addr))))
        yield tmp_path, target_addr, bastion_addr, known
    finally:
        listener.close()
        for proc in [target, *children]:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=10)


def test_target_in_a_network_namespace_is_reached_only_through_the_bastion(lab3, hidden_target):
    directory, target_addr, bastion_addr, known = hidden_target
    inventory = write_inventory(directory / "inv.ini", lab3, {
        "direct": f"ansible_host={target_addr}",
        "bastion": f"ansible_host={bastion_addr}",
        "hidden": f"ansible_host={target_addr} ansible_ssh_common_args='-o "
                  f"UserKnownHostsFile={known} -o IdentitiesOnly=yes -o ProxyJump=bastion'",
    }, known_hosts=known)
    code, output = ping_output(inventory, connect_timeout=3)
    assert code == 4
    assert f"direct: unreachable: connection to {target_addr}:22 refused" in output
    assert rows_status(output) == {"direct": "unreachable", "bastion": "ok", "hidden": "ok"}
    assert re.search(rf"server_request_direct_tcpip: .*target {re.escape(target_addr)} port 22",
                     _read(directory / "bastion.log"))
    assert "Accepted publickey for root" in _read(directory / "target.log")


def test_jump_host_key_is_checked_too(lab3, tmp_path):
    """A known_hosts that knows only w1 (not the bastion cp1) refuses the path at cp1."""
    key_type, blob = offered_key(lab3, "w1")
    known = tmp_path / "known_hosts"
    known.write_text(f"{lab3.nodes['w1']} {key_type} {blob}\n")
    inventory = write_inventory(tmp_path / "inv.ini", lab3, {
        "cp1": f"ansible_host={lab3.nodes['cp1']}",
        "w1": f"ansible_host={lab3.nodes['w1']} ansible_ssh_extra_args='-J cp1'"},
        known_hosts=known)
    code, output = ping_output(inventory, limit="w1")
    assert code == 4
    assert f"w1: host key unknown: no host key for {lab3.nodes['cp1']} is known" in output


def test_changed_host_key_is_refused_with_a_clear_message(lab3, tmp_path):
    """known_hosts rewritten with another ed25519 key for cp2, as after a reinstall."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    other = paramiko.PKey.from_path(str(tmp_path / "k"))
    real_type, real_blob = offered_key(lab3, "cp2")
    known = tmp_path / "known_hosts"
    known.write_text(lab3.known_hosts.read_text().replace(
        f"{lab3.nodes['cp2']} {real_type} {real_blob}",
        f"{lab3.nodes['cp2']} {other.get_name()} {other.get_base64()}"))
    line = 1 + [ln.split()[0] for ln in known.read_text().splitlines()].index(lab3.nodes["cp2"])
    inventory = write_inventory(tmp_path / "inv.ini", lab3,
                                {n: f"ansible_host={a}" for n, a in lab3.nodes.items()},
                                known_hosts=known)
    before = known.read_text()
    code, output = ping_output(inventory, accept_new_host_keys=True)
    assert code == 4
    offered_fp = fingerprint(base64.b64decode(real_blob))
    message = next(ln for ln in output.splitlines() if ln.startswith("cp2: "))
    assert message.startswith(f"cp2: host key mismatch: HOST KEY MISMATCH for {lab3.nodes['cp2']}")
    assert offered_fp in message and fingerprint(other.asbytes()) in message
    assert f"{known}:{line}" in message
    assert "cp1" not in [ln.split(":")[0] for ln in output.splitlines() if "mismatch" in ln]
    assert known.read_text() == before     # a changed key is never recorded


def test_accept_new_host_keys_records_unknown_hosts_only_when_asked(lab3, tmp_path):
    known = tmp_path / "ssh" / "known_hosts"
    inventory = write_inventory(tmp_path / "inv.ini", lab3,
                                {n: f"ansible_host={a}" for n, a in lab3.nodes.items()},
                                known_hosts=known)
    code, output = ping_output(inventory)
    assert code == 4 and output.count("host key unknown") >= 3 and not known.exists()
    code, output = ping_output(inventory, accept_new_host_keys=True)
    assert code == 0, output
    recorded = sorted(known.read_text().splitlines())
    assert recorded == sorted(" ".join(ln.split()[:3])
                              for ln in lab3.known_hosts.read_text().splitlines())
    code, _ = ping_output(inventory)   # now strict checking passes
    assert code == 0


def test_stdin_reaches_the_command_after_the_sudo_password(lab3):
    options = RunOptions(become_password=Secret(lab3.become_password))
    data = b"line one\n\x00binary\xff\n" + b"x" * 300_000
    with session_for(lab3.sudo_inventory, "cp1", options) as session:
        result = session.run("id -un >&2; cat")
        assert result == type(result)(0, b"", b"root\n")
        result = session.run("cat", stdin=data)
        assert (result.rc, result.stdout) == (0, data)
        assert session.run("id -un", become=False).stdout == b"labops\n"
        assert session.exec_count == 3


def test_become_user_other_than_root(lab3, tmp_path):
    inventory = write_inventory(tmp_path / "inv.ini", lab3, {
        "cp1": f"ansible_host={lab3.nodes['cp1']} ansible_become=true "
               "ansible_become_user=nobody"})
    with session_for(inventory, "cp1") as session:   # root needs no sudo password
        assert session.run("id -un").stdout == b"nobody\n"


def test_wrong_become_password_raises_become_failed_quickly(lab3):
    options = RunOptions(become_password=Secret("wrong-password-x"))
    with session_for(lab3.sudo_inventory, "w1", options) as session:
        started = time.monotonic()
        with pytest.raises(BecomeFailed) as info:
            session.run("id -un")
        assert time.monotonic() - started < 10
        assert str(info.value) == ("host w1 (ansible_become_password): sudo password was "
                                   "rejected")
        assert "wrong-password-x" not in repr(info.value)
        assert session.run("echo still usable", become=False).rc == 0


def test_command_timeout_closes_the_channel_and_is_not_rerun(lab3, tmp_path):
    with session_for(lab3.inventory, "cp2") as session:
        marker = f"/tmp/harden-timeout-{time.monotonic_ns()}"
        started = time.monotonic()
        with pytest.raises(CommandTimeout):
            session.run(f"echo run >> {marker}; sleep 10", timeout=1)
        assert 1 <= time.monotonic() - started < 3
        assert session.run(f"cat {marker}; rm -f {marker}").stdout == b"run\n"
        assert session.exec_count == 2


def test_open_tcp_connects_from_the_node(lab3):
    with session_for(lab3.inventory, "w1") as session:
        channel = session.open_tcp(lab3.nodes["cp1"], 22)
        try:
            channel.settimeout(5)
            assert channel.recv(64).startswith(b"SSH-2.0-OpenSSH")
        finally:
            channel.close()
        assert session.exec_count == 0


def test_wrong_key_is_an_authentication_failure_not_retried(lab3, tmp_path):
    key = tmp_path / "other_key"
    paramiko.ECDSAKey.generate().write_private_key_file(str(key))
    inventory = write_inventory(tmp_path / "inv.ini", lab3,
                                {"cp1": f"ansible_host={lab3.nodes['cp1']}"}, key=key)
    mark = sshd_log(lab3, "cp1").stat().st_size
    with pytest.raises(AuthenticationFailed) as info:
        session_for(inventory, "cp1")
    assert f"root@{lab3.nodes['cp1']}:22 refused authentication (tried key {key})" in str(
        info.value)
    assert sshd_log(lab3, "cp1").read_text()[mark:].count("Failed publickey for root") == 1


def test_password_login_and_a_wrong_password(lab3, tmp_path):
    """Lab nodes refuse passwords, so a login password must fail as auth, never leak."""
    inventory = write_inventory(tmp_path / "inv.ini", lab3, {
        "cp1": f"ansible_host={lab3.nodes['cp1']} ansible_password=hunter2-secret"},
        key=tmp_path / "none", common_args="")
    text = inventory.read_text().replace(f"ansible_ssh_private_key_file={tmp_path / 'none'}\n",
                                         "")
    inventory.write_text(text)
    with pytest.raises(AuthenticationFailed) as info:
        session_for(inventory, "cp1")
    assert "hunter2-secret" not in str(info.value) + repr(info.value)


def test_unreachable_via_jump_names_the_bastion(lab3, tmp_path):
    inventory = write_inventory(tmp_path / "inv.ini", lab3, {
        "cp1": f"ansible_host={lab3.nodes['cp1']}",
        "ghost": f"ansible_host={lab3.net}.97 ansible_ssh_extra_args='-J cp1'"})
    with pytest.raises(Unreachable) as info:
        session_for(inventory, "ghost")
    assert (f"jump host root@{lab3.nodes['cp1']}:22 could not reach {lab3.net}.97:22"
            in str(info.value))


def keyless_inventory(lab, path: Path) -> Path:
    """The lab's nodes with no key file named: only the agent or default keys can log in."""
    path.write_text("[nodes]\n" + "".join(f"{n} ansible_host={a}\n" for n, a in lab.nodes.items())
                    + f"\n[nodes:vars]\nansible_user=root\nansible_ssh_common_args="
                    f"'-o UserKnownHostsFile={lab.known_hosts}'\n")
    return path


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return home


def test_login_with_an_ssh_agent_key(lab3, tmp_path, empty_home, monkeypatch):
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        inventory = keyless_inventory(lab3, tmp_path / "inv.ini")
        code, output = ping_output(inventory, limit="cp1")
        assert code == 4 and "cp1: auth failed" in output and "tried nothing" in output
        deadline = time.monotonic() + 5
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        subprocess.run(["ssh-add", "-q", str(lab3.key)], check=True,
                       env={"SSH_AUTH_SOCK": str(sock), "PATH": "/usr/bin:/bin"})
        code, output = ping_output(inventory)
        assert code == 0, output
    finally:
        agent.terminate()
        agent.wait(timeout=10)


def test_login_with_a_default_key_in_home(lab3, tmp_path, empty_home):
    (empty_home / ".ssh" / "id_ed25519").write_bytes(lab3.key.read_bytes())
    (empty_home / ".ssh" / "id_ed25519").chmod(0o600)
    code, output = ping_output(keyless_inventory(lab3, tmp_path / "inv.ini"))
    assert code == 0, output


@pytest.fixture
def counting_listener():
    """A TCP listener on an ephemeral loopback port; `behaviour` decides what it does with
    each connection ('reset': close at once, 'silent': hold it open saying nothing)."""
    server = socket.create_server(("127.0.0.1", 0))
    state = {"accepted": 0, "behaviour": "reset", "held": []}

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            state["accepted"] += 1
            if state["behaviour"] == "reset":
                conn.close()
            else:
                state["held"].append(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1], state
    finally:
        server.close()
        for conn in state["held"]:
            conn.close()


def spec_to(port: int, timeout: float):
    host = Host("flaky", {"ansible_host": "127.0.0.1", "ansible_port": port,
                          "ansible_ssh_common_args": f"-o ConnectTimeout={timeout} "
                                                     "-o UserKnownHostsFile=/dev/null"}, [])
    return connection_spec(host, RunOptions(retries=2))


def test_connection_resets_are_retried_with_backoff(counting_listener):
    port, state = counting_listener
    started = time.monotonic()
    with pytest.raises(Unreachable, match="SSH handshake with .* failed"):
        connect(spec_to(port, 5))
    assert state["accepted"] == 3          # first attempt + 2 retries
    assert time.monotonic() - started < 5


def test_a_timed_out_attempt_uses_the_whole_budget_and_is_not_repeated(counting_listener):
    port, state = counting_listener
    state["behaviour"] = "silent"
    started = time.monotonic()
    with pytest.raises(Unreachable, match="timed out after 1s"):
        connect(spec_to(port, 1))
    assert state["accepted"] == 1
    assert 1 <= time.monotonic() - started < 2


def test_proxy_command_through_openssh(lab3, tmp_path):
    proxy = (f"ssh -F /dev/null -i {lab3.key} -o UserKnownHostsFile={lab3.known_hosts} "
             f"-o BatchMode=yes -W %h:%p root@{lab3.nodes['cp1']}")
    inventory = write_inventory(tmp_path / "inv.ini", lab3, {
        "w1": f"ansible_host={lab3.nodes['w1']}"}, common_args=f'-o ProxyCommand="{proxy}"')
    mark = sshd_log(lab3, "cp1").stat().st_size
    with session_for(inventory, "w1") as session:
        assert session.run("echo via proxy").stdout == b"via proxy\n"
    assert re.search(rf"server_request_direct_tcpip: .*target {re.escape(lab3.nodes['w1'])} ",
                     sshd_log(lab3, "cp1").read_text()[mark:])


def test_hosts_behind_one_bastion_share_its_connection(lab3, tmp_path):
    """Three sessions through cp1 with a JumpPool: cp1 sees one login, three forwards."""
    cp1 = lab3.nodes["cp1"]
    hosts = {"cp1": f"ansible_host={cp1}"}
    hosts.update({f"via-{n}": f"ansible_host={a} ansible_ssh_extra_args='-J cp1'"
                  for n, a in lab3.nodes.items() if n != "cp1"})
    hosts["via-cp1-itself"] = f"ansible_host={cp1} ansible_ssh_extra_args='-J cp1'"
    inventory = write_inventory(tmp_path / "inv.ini", lab3, hosts)
    mark = sshd_log(lab3, "cp1").stat().st_size
    code, output = ping_output(inventory, limit="via-*")
    assert code == 0, output
    log = sshd_log(lab3, "cp1").read_text()[mark:]
    assert log.count("server_request_direct_tcpip") == 3
    assert log.count("Accepted publickey for root") == 2   # the bastion, and via-cp1-itself


def test_an_unreachable_bastion_is_tried_once_for_all_hosts_behind_it(lab3, tmp_path,
                                                                     counting_listener):
    port, state = counting_listener
    hosts = {"bastion": f"ansible_host=127.0.0.1 ansible_port={port}"}
    hosts.update({f"behind{i}": f"ansible_host={a} ansible_ssh_extra_args='-J bastion'"
                  for i, a in enumerate(lab3.nodes.values())})
    inventory = write_inventory(tmp_path / "inv.ini", lab3, hosts)
    code, output = ping_output(inventory, limit="behind*", forks=3)
    assert code == 4
    assert rows_status(output) == {f"behind{i}": "unreachable" for i in range(3)}
    assert output.count(f"SSH handshake with root@127.0.0.1:{port} failed") == 3
    assert state["accepted"] == 3       # one establishment: first attempt + 2 retries


def test_a_script_cut_in_transit_changes_nothing_on_the_node(lab3):
    """What the node's sh does when a write script's stdin ends early (harden killed or the
    connection lost while sending, as sshd then closes the command's stdin): bare, it writes
    the truncated content; as harden sends it (whole_script), nothing runs."""
    from harden.apply.modules.base import Change, apply_script, write_snippet
    from harden.ssh.common import whole_script

    path = "/etc/kubernetes/harden-test-cut.yaml"
    lab3.ssh("cp1", f"printf 'original\\n' > {path}")
    content = b"apiVersion: v1\n" * 300
    script = apply_script([Change("write", write_snippet(path, content, None, None, None),
                                  path=path)], "20260101T000000Z-c0ffee").encode()
    cut = script.index(b"<<'HARDEN_EOF'\n") + len(b"<<'HARDEN_EOF'\n") + 77 * 3
    try:
        lab3.ssh("cp1", "sh -s", stdin=whole_script(script)[:cut + 2].decode(), check=False)
        assert lab3.ssh("cp1", f"cat {path}").stdout == "original\n"
        lab3.ssh("cp1", "sh -s", stdin=script[:cut].decode(), check=False)
        assert content.startswith(lab3.ssh("cp1", f"cat {path}").stdout.encode()) \
            and len(lab3.ssh("cp1", f"cat {path}").stdout) < len(content)
    finally:
        lab3.ssh("cp1", f"rm -f {path}; rm -rf /var/lib/harden/backups/20260101T000000Z-c0ffee")
