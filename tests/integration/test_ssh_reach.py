"""Reaching nodes the way `ssh` does (issue 17) on real OpenSSH lab nodes: a host known only
through an ssh config file, user certificates from a lab CA, a modern-only sshd, and the
OpenSSH transport (one ControlMaster per host) with the paramiko transport's behaviour."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harden.inventory.loader import load_inventory
from harden.ssh.common import SCRIPT_COMMAND
from harden.ssh.hostkeys import HostKeyMismatch, HostKeyUnknown
from harden.ssh.settings import RunOptions, Secret, connection_spec
from harden.ssh.transport import (AuthenticationFailed, BecomeFailed, CommandTimeout, Unreachable,
                                  connect)
from tests.support.ssh_agent import add_key, running_agent

pytestmark = pytest.mark.lab
TRANSPORTS = ["paramiko", "openssh"]


def harden(*args: str, state: Path | None = None, env: dict | None = None,
           timeout: float = 240) -> subprocess.CompletedProcess:
    environ = {**os.environ, "COLUMNS": "250", **(env or {})}
    if state is not None:
        environ["HARDEN_STATE_DIR"] = str(state)
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=environ)


def sshd_log(lab, node: str) -> Path:
    return lab.dir / "nodes" / node / "sshd.log"


def logins_since(lab, node: str, mark: int) -> int:
    return sshd_log(lab, node).read_text()[mark:].count("Accepted publickey")


def session_for(inventory: Path, name: str, **options):
    inv = load_inventory([str(inventory)])
    return connect(connection_spec(inv.hosts[name],
                                   RunOptions(inventory_hosts=inv.hosts, **options)))


@pytest.fixture(scope="module")
def calab(lab_factory):
    """One control plane, one worker; every sshd trusts the lab's user CA and presents a host
    certificate from the lab's host CA."""
    with lab_factory.running(control_planes=1, workers=1, user_ca=True, host_ca=True,
                             wait_ready=True) as lab:
        yield lab


@pytest.fixture(scope="module")
def modern(lab_factory):
    """One control plane whose sshd allows only sntrup761/curve25519, chacha20, sha2-512-etm."""
    with lab_factory.running(control_planes=1, workers=0, ssh_algorithms="modern",
                             wait_ready=True) as lab:
        yield lab


def root_inventory(lab, path: Path, node: str, transport: str, ssh_args: str) -> Path:
    """`node` alone, as root with the lab's key, over `transport`, with these ssh args."""
    path.write_text(
        f"[nodes]\n{node} ansible_host={lab.nodes[node]} ansible_user=root "
        f"ansible_ssh_private_key_file={lab.key} harden_transport={transport} "
        f"ansible_ssh_common_args='{ssh_args}'\n")
    return path


# --- a host known only through ~/.ssh/config ------------------------------------------------

def alias_inventory(lab, tmp_path: Path, transport: str) -> Path:
    """`worker-alias` exists only in an ssh config (-F), reached through `bastion-alias` (cp1),
    whose block comes from an Included file."""
    (tmp_path / "bastion.conf").write_text(
        f"Host bastion-alias\n  HostName {lab.nodes['cp1']}\n  User root\n"
        f"  IdentityFile {lab.key}\n  IdentitiesOnly yes\n")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Include {tmp_path / 'bastion.conf'}\n"
        f"Host worker-alias\n  HostName {lab.nodes['w1']}\n  User root\n"
        f"  IdentityFile {lab.key}\n  IdentitiesOnly yes\n  ProxyJump bastion-alias\n"
        f"Host *\n  UserKnownHostsFile {lab.known_hosts}\n  StrictHostKeyChecking yes\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"[workers]\nworker-alias ansible_ssh_common_args='-F {config}' "
                         f"harden_transport={transport}\n")
    return inventory


KUBELET_CONF_PLAY = """
- name: kubelet.conf at most 0600
  hosts: workers
  become: true
  tasks:
    - name: kubelet.conf mode
      file:
        path: /etc/kubernetes/kubelet.conf
        mode_max: "0600"
"""


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_host_known_only_through_ssh_config_is_reached_by_ping_check_and_apply(
        calab, tmp_path, transport):
    inventory = alias_inventory(calab, tmp_path, transport)
    w1, cp1 = calab.nodes["w1"], calab.nodes["cp1"]
    mark = sshd_log(calab, "cp1").stat().st_size
    ping = harden("ping", "-i", str(inventory))
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert f"root@{w1}:22 via root@{cp1}:22" in ping.stdout
    forwarded = re.compile(rf"server_request_direct_tcpip: .*target {re.escape(w1)} port 22")
    assert forwarded.search(sshd_log(calab, "cp1").read_text()[mark:])
    check = harden("check", "-i", str(inventory), "--format", "json")
    assert check.returncode == 2, check.stderr
    report = json.loads(check.stdout)
    assert not report["unreachable"] and {r["host"] for r in report["results"]} == {"worker-alias"}
    calab.ssh("w1", "chmod 0644 /etc/kubernetes/kubelet.conf")
    play = tmp_path / "play.yml"
    play.write_text(KUBELET_CONF_PLAY)
    applied = harden("apply", "-i", str(inventory), str(play), state=tmp_path / "state")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert calab.ssh("w1", "stat -c %a /etc/kubernetes/kubelet.conf").stdout.strip() == "600"
    listed = harden("inventory", "-i", str(inventory), "--list", "--resolve")
    route = json.loads(listed.stdout)["_meta"]["harden_connections"]["worker-alias"]["route"]
    assert route.startswith(f"root@{w1}:22 via root@{cp1}:22")


def test_openssh_hosts_behind_one_bastion_share_its_master(calab, tmp_path):
    """Two inventory hosts reached through cp1: cp1 sees one login, w1 one per host."""
    w1 = calab.nodes["w1"]
    inventory = tmp_path / "inv.ini"
    inventory.write_text(
        f"[nodes]\ncp1 ansible_host={calab.nodes['cp1']}\n"
        f"w1a ansible_host={w1} ansible_ssh_extra_args='-J cp1'\n"
        f"w1b ansible_host={w1} ansible_ssh_extra_args='-J cp1'\n[nodes:vars]\n"
        f"ansible_user=root\nansible_ssh_private_key_file={calab.key}\n"
        f"ansible_ssh_common_args='-o UserKnownHostsFile={calab.known_hosts}'\n")
    marks = {n: sshd_log(calab, n).stat().st_size for n in ("cp1", "w1")}
    done = harden("ping", "-i", str(inventory), "-l", "w1a,w1b", "--transport", "openssh")
    assert done.returncode == 0, done.stdout
    assert logins_since(calab, "cp1", marks["cp1"]) == 1
    assert logins_since(calab, "w1", marks["w1"]) == 2


def test_openssh_transport_honours_a_proxy_command(calab, tmp_path):
    w1, cp1 = calab.nodes["w1"], calab.nodes["cp1"]
    proxy = (f"ssh -F /dev/null -i {calab.key} -o UserKnownHostsFile={calab.known_hosts} "
             f"-o BatchMode=yes -W %h:%p root@{cp1}")
    inventory = tmp_path / "inv.ini"
    inventory.write_text(
        f"w1 ansible_host={w1} ansible_user=root ansible_ssh_private_key_file={calab.key} "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={calab.known_hosts} "
        f"-o ProxyCommand=\"{proxy}\"'\n")
    mark = sshd_log(calab, "cp1").stat().st_size
    with session_for(inventory, "w1", transport="openssh") as session:
        assert session.run("echo via proxy").stdout == b"via proxy\n"
    assert re.search(rf"server_request_direct_tcpip: .*target {re.escape(w1)} ",
                     sshd_log(calab, "cp1").read_text()[mark:])


def _masters_of(parent: int) -> list[int]:
    """The ssh ControlMaster processes `parent` started."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"ControlMaster=yes" in argv:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_masters_a_killed_harden_left_go_away_at_the_next_openssh_run(calab):
    """SIGKILL gives harden no chance to stop its masters (ControlPersist off keeps them up
    while the login lasts); the next harden using the OpenSSH transport stops them."""
    code = ("import sys, time\nfrom harden.inventory.loader import load_inventory\n"
            "from harden.ssh.settings import RunOptions, connection_spec\n"
            "from harden.ssh.transport import connect\n"
            "inv = load_inventory([sys.argv[1]])\n"
            "session = connect(connection_spec(inv.hosts['w1'], RunOptions("
            "inventory_hosts=inv.hosts, transport='openssh')))\n"
            "print('up', flush=True)\ntime.sleep(120)\n")
    killed = subprocess.Popen([sys.executable, "-c", code, str(calab.inventory)],
                              stdout=subprocess.PIPE)
    try:
        assert killed.stdout.readline() == b"up\n"
        masters = _masters_of(killed.pid)
        assert len(masters) == 1
    finally:
        killed.kill()
        killed.wait()
        killed.stdout.close()
    assert _alive(masters[0])                     # outlived the harden that started it
    done = harden("ping", "-i", str(calab.inventory), "-l", "w1", "--transport", "openssh")
    assert done.returncode == 0, done.stdout + done.stderr
    assert not _alive(masters[0])


# --- user certificates ----------------------------------------------------------------------

def certified_key(lab, tmp_path: Path, ca: Path, name: str = "id_cert",
                  passphrase: str = "") -> Path:
    """A new key (not in any authorized_keys) with a certificate for root signed by `ca`."""
    key = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(key)],
                   check=True)
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", f"test-{name}", "-n", "root",
                    "-V", "+1h", f"{key}.pub"], check=True)
    return key


def cert_inventory(lab, tmp_path: Path, key: Path, transport: str, extra: str = "") -> Path:
    inventory = tmp_path / "cert.ini"
    inventory.write_text(
        f"[nodes]\ncp1 ansible_host={lab.nodes['cp1']}\n[nodes:vars]\nansible_user=root\n"
        f"ansible_ssh_private_key_file={key}\nharden_transport={transport}\n"
        f"ansible_ssh_common_args='-o UserKnownHostsFile={lab.known_hosts} "
        f"-o IdentitiesOnly=yes {extra}'\n")
    return inventory


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_certificate_signed_by_the_lab_ca_logs_in(calab, tmp_path, transport):
    key = certified_key(calab, tmp_path, calab.dir / "user_ca")
    done = harden("ping", "-i", str(cert_inventory(calab, tmp_path, key, transport)))
    assert done.returncode == 0, done.stdout
    log = sshd_log(calab, "cp1").read_text()
    assert re.search(r"Accepted publickey for root .* ED25519-CERT .*ID test-id_cert", log)


def test_certificate_file_elsewhere_is_paired_with_its_key(calab, tmp_path):
    key = certified_key(calab, tmp_path, calab.dir / "user_ca")
    elsewhere = tmp_path / "certs"
    elsewhere.mkdir()
    os.rename(f"{key}-cert.pub", elsewhere / "mine-cert.pub")
    inventory = cert_inventory(calab, tmp_path, key, "paramiko",
                               f"-o CertificateFile={elsewhere / 'mine-cert.pub'}")
    assert harden("ping", "-i", str(inventory)).returncode == 0
    bare = cert_inventory(calab, tmp_path, key, "paramiko")
    assert harden("ping", "-i", str(bare)).returncode == 4        # the key alone is not enough


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_passphrase_key_with_its_certificate_logs_in_through_ssh_agent(calab, tmp_path,
                                                                        transport):
    # the usual certificate set-up: a passphrase-protected key, its -cert.pub beside it,
    # `ssh-add` done, IdentitiesOnly: ssh signs with the agent's key and sends the certificate
    key = certified_key(calab, tmp_path, calab.dir / "user_ca", "id_locked", "a passphrase")
    inventory = str(cert_inventory(calab, tmp_path, key, transport))
    with running_agent() as sock:
        add_key(sock, key, "a passphrase")
        mark = sshd_log(calab, "cp1").stat().st_size
        done = harden("ping", "-i", inventory, env={"SSH_AUTH_SOCK": sock})
    assert done.returncode == 0, done.stdout + done.stderr
    log = sshd_log(calab, "cp1").read_text()[mark:]
    assert re.search(r"Accepted publickey for root .* ED25519-CERT .*ID test-id_locked", log)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_agent_named_by_identity_agent_signs_and_none_turns_the_agent_off(calab, tmp_path,
                                                                               transport):
    # the key is only in an agent the ssh config names (1Password, Secretive, gpg-agent);
    # $SSH_AUTH_SOCK points at the same agent for `IdentityAgent none` to switch off
    config = tmp_path / "ssh_config"
    inventory = tmp_path / "agent.ini"
    inventory.write_text(
        f"[nodes]\ncp1 ansible_host={calab.nodes['cp1']}\n[nodes:vars]\nansible_user=root\n"
        f"harden_transport={transport}\nansible_ssh_common_args='-F {config} "
        f"-o UserKnownHostsFile={calab.known_hosts}'\n")
    home = tmp_path / "home"
    home.mkdir()
    with running_agent() as sock:
        add_key(sock, calab.key)
        config.write_text(f"Host *\n  IdentityAgent {sock}\n")
        named = harden("ping", "-i", str(inventory), env={"SSH_AUTH_SOCK": "", "HOME": str(home)})
        config.write_text("Host *\n  IdentityAgent none\n")
        off = harden("ping", "-i", str(inventory), env={"SSH_AUTH_SOCK": sock, "HOME": str(home)})
    assert named.returncode == 0, named.stdout + named.stderr
    assert off.returncode == 4 and "cp1: auth failed" in off.stdout, off.stdout


def test_identities_only_without_a_key_file_logs_in_with_the_default_key(calab, tmp_path):
    # `Host *` + `IdentitiesOnly yes` (common with many agent keys): ssh still tries
    # ~/.ssh/id_ed25519 and its other default key files, so the paramiko transport does too
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(calab.key, home / ".ssh" / "id_ed25519")
    inventory = tmp_path / "defaults.ini"
    inventory.write_text(
        f"[nodes]\ncp1 ansible_host={calab.nodes['cp1']}\n[nodes:vars]\nansible_user=root\n"
        f"harden_transport=paramiko\nansible_ssh_common_args='-F /dev/null "
        f"-o UserKnownHostsFile={calab.known_hosts} -o IdentitiesOnly=yes'\n")
    done = harden("ping", "-i", str(inventory), env={"HOME": str(home), "SSH_AUTH_SOCK": ""})
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_nodes_known_only_through_a_host_ca_are_checked_by_their_certificates(calab, tmp_path,
                                                                             transport):
    # known_hosts holds one `@cert-authority 127.x.y.* KEY` line and nothing is recorded;
    # another CA's line leaves the nodes unknown, with the reason
    known = tmp_path / "known_hosts"
    known.write_text((calab.dir / "known_hosts_ca").read_text())
    inventory = tmp_path / "host-ca.ini"

    def ping() -> subprocess.CompletedProcess:
        inventory.write_text(
            f"[nodes]\ncp1 ansible_host={calab.nodes['cp1']}\nw1 ansible_host={calab.nodes['w1']}\n"
            f"[nodes:vars]\nansible_user=root\nansible_ssh_private_key_file={calab.key}\n"
            f"harden_transport={transport}\nansible_ssh_common_args='-F /dev/null "
            f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes'\n")
        return harden("ping", "-i", str(inventory))

    done = ping()
    assert done.returncode == 0, done.stdout + done.stderr
    assert known.read_text() == (calab.dir / "known_hosts_ca").read_text()
    other = tmp_path / "other_ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known.write_text(f"@cert-authority * {(tmp_path / 'other_ca.pub').read_text()}")
    refused = ping()
    assert refused.returncode == 4 and "cp1: host key unknown" in refused.stdout
    if transport == "paramiko":
        assert "which no @cert-authority line" in refused.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_certificate_from_an_untrusted_ca_is_refused_clearly(calab, tmp_path, transport):
    other_ca = tmp_path / "other_ca"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_ca)],
                   check=True)
    key = certified_key(calab, tmp_path, other_ca)
    done = harden("ping", "-i", str(cert_inventory(calab, tmp_path, key, transport)))
    assert done.returncode == 4
    assert "cp1: auth failed:" in done.stdout
    assert "TrustedUserCAKeys" in done.stdout and str(key) in done.stdout
    if transport == "paramiko":   # names the certificate's CA, to compare with the server's
        fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{other_ca}.pub"], check=True,
                                     capture_output=True, text=True).stdout.split()[1]
        assert fingerprint in done.stdout and "test-id_cert" in done.stdout


# --- a node that allows only modern algorithms -------------------------------------------------

def test_paramiko_names_what_a_modern_only_server_offers_and_suggests_openssh(modern):
    done = harden("ping", "-i", str(modern.inventory), "--timeout", "5")
    assert done.returncode == 4
    text = " ".join(done.stdout.split())
    assert "no common SSH algorithms" in text
    assert "server offers kex sntrup761x25519-sha512@openssh.com,curve25519-sha256" in text
    assert "ciphers chacha20-poly1305@openssh.com" in text
    assert "paramiko" in text and "curve25519-sha256@libssh.org" in text
    assert "--transport openssh" in text


def test_modern_only_node_is_reached_by_ping_check_and_apply_with_openssh(modern, tmp_path):
    inventory = str(modern.inventory)
    mark = sshd_log(modern, "cp1").stat().st_size
    ping = harden("ping", "-i", inventory, "--transport", "openssh")
    assert ping.returncode == 0, ping.stdout
    check = harden("check", "-i", inventory, "--transport", "openssh", "--format", "json")
    assert check.returncode == 2 and not json.loads(check.stdout)["unreachable"]
    assert logins_since(modern, "cp1", mark) == 2                 # one login per command
    play = tmp_path / "play.yml"
    play.write_text("""
- name: profiling off
  hosts: control_plane
  become: true
  tasks:
    - name: apiserver flag
      static_pod:
        manifest: /etc/kubernetes/manifests/kube-apiserver.yaml
        set: {profiling: false}
      notify: wait
  handlers:
    - name: wait
      wait_for_static_pod: {name: kube-apiserver, successes: 2, timeout: 90, interval: 1}
""")
    applied = harden("apply", "-i", inventory, str(play), "--transport", "openssh",
                     state=tmp_path / "state")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "--profiling=false" in modern.ssh("cp1", "cat /etc/kubernetes/manifests/"
                                                    "kube-apiserver.yaml").stdout


# --- the OpenSSH transport behaves as the paramiko one -----------------------------------------

def test_openssh_check_costs_one_exec_and_leaves_no_master_or_socket_dir(calab):
    from harden.cis.probe import gather_facts

    with session_for(calab.inventory, "cp1", transport="openssh") as session:
        gather_facts(session, "cp1")
        assert session.exec_count == 1
        master, directory = session.master.process, os.path.dirname(session.master.socket)
        assert os.stat(directory).st_mode & 0o777 == 0o700
    assert master.poll() is not None and not os.path.exists(directory)


def test_openssh_become_stdin_and_a_wrong_password(calab):
    password = Secret(calab.become_password)
    with session_for(calab.sudo_inventory, "cp1", transport="openssh",
                     become_password=password) as session:
        result = session.run("id -un; cat", stdin=b"after the password\n")
        assert (result.rc, result.stdout) == (0, b"root\nafter the password\n")
    with session_for(calab.sudo_inventory, "cp1", transport="openssh",
                     become_password=Secret("wrong")) as session:
        with pytest.raises(BecomeFailed, match="rejected"):
            session.run("id -un")


def test_openssh_timeout_closes_the_command_and_the_master_stays_usable(calab):
    with session_for(calab.inventory, "w1", transport="openssh") as session:
        with pytest.raises(CommandTimeout):
            session.run("sleep 30", timeout=1)
        assert session.run("echo still", timeout=10).stdout == b"still\n"
        assert session.run("exit 3").rc == 3


def test_openssh_tunnel_reaches_what_the_node_reaches(calab):
    with session_for(calab.inventory, "cp1", transport="openssh") as session:
        tunnel = session.open_tcp(calab.nodes["w1"], 22)
        try:
            assert tunnel.recv(64).startswith(b"SSH-2.0-OpenSSH")
        finally:
            tunnel.close()


def login_error_cases(calab, tmp_path: Path) -> tuple[Path, dict[str, type]]:
    """An inventory of hosts that each fail to log in in one way, and the error each must
    raise: an unknown host key, a changed one, a key the node refuses, nobody listening."""
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    wrong = tmp_path / "wrong_known_hosts"
    other = calab.known_hosts.read_text().splitlines()
    wrong.write_text(f"{calab.nodes['cp1']} {' '.join(other[1].split()[1:3])}\n")
    cases = {
        "unknown": (f"ansible_host={calab.nodes['cp1']} ansible_ssh_common_args="
                    f"'-o UserKnownHostsFile={empty}'", HostKeyUnknown),
        "changed": (f"ansible_host={calab.nodes['cp1']} ansible_ssh_common_args="
                    f"'-o UserKnownHostsFile={wrong}'", HostKeyMismatch),
        "badkey": (f"ansible_host={calab.nodes['cp1']} ansible_ssh_private_key_file={empty} "
                   f"ansible_ssh_common_args='-o UserKnownHostsFile={calab.known_hosts} "
                   "-o IdentitiesOnly=yes'", AuthenticationFailed),
        "nobody": (f"ansible_host={calab.net}.250", Unreachable),
    }
    inventory = tmp_path / "inv.ini"
    inventory.write_text("".join(f"{name} ansible_user=root {extra}\n"
                                 for name, (extra, _) in cases.items()))
    return inventory, {name: error for name, (_, error) in cases.items()}


def test_openssh_errors_have_the_paramiko_classes(calab, tmp_path):
    inventory, cases = login_error_cases(calab, tmp_path)
    for name, error in cases.items():
        with pytest.raises(error) as caught:
            session_for(inventory, name, transport="openssh", connect_timeout=2)
        assert type(caught.value) is error, (name, caught.value)
    assert "MISMATCH" in str(pytest.raises(HostKeyMismatch, session_for, inventory, "changed",
                                           transport="openssh").value)


# --- a session for one exec: the command's own ssh is the master -------------------------------

def one_exec_session(inventory: Path, name: str, **options):
    inv = load_inventory([str(inventory)])
    return connect(connection_spec(inv.hosts[name],
                                   RunOptions(inventory_hosts=inv.hosts, **options)),
                   one_exec=True)


def test_openssh_one_exec_session_logs_in_once_with_its_command_as_the_master(calab):
    from harden.cis.probe import gather_facts

    mark = sshd_log(calab, "w1").stat().st_size
    with one_exec_session(calab.inventory, "w1", transport="openssh") as session:
        assert session.master is None                  # nothing started before the exec
        facts = gather_facts(session, "w1")
        master, directory = session.master, os.path.dirname(session.master.socket)
        assert os.stat(directory).st_mode & 0o777 == 0o700
    assert facts.complete and "kubelet" in facts.processes
    assert "ControlMaster=yes" in master.process.args and "ControlPersist=no" in master.process.args
    assert master.process.args[-1] == SCRIPT_COMMAND            # the probe is the master's
    assert master.process.poll() is not None and not os.path.exists(directory)
    assert logins_since(calab, "w1", mark) == 1


def test_openssh_one_exec_session_keeps_the_commands_status_stderr_and_become(calab):
    with one_exec_session(calab.inventory, "cp1", transport="openssh") as session:
        result = session.run("echo out; echo err >&2; exit 255")
    assert (result.rc, result.stdout, result.stderr) == (255, b"out\n", b"err\n")
    with one_exec_session(calab.sudo_inventory, "cp1", transport="openssh",
                          become_password=Secret(calab.become_password)) as session:
        result = session.run("id -un; cat", stdin=b"after the password\n")
    assert (result.rc, result.stdout) == (0, b"root\nafter the password\n")


def test_openssh_one_exec_session_runs_a_second_command_with_a_second_login(calab):
    mark = sshd_log(calab, "w1").stat().st_size
    with one_exec_session(calab.inventory, "w1", transport="openssh") as session:
        assert session.run("echo first").stdout == b"first\n"
        assert session.run("echo second").stdout == b"second\n"
        tunnel = session.open_tcp(calab.nodes["cp1"], 22)
        try:
            assert tunnel.recv(64).startswith(b"SSH-2.0-OpenSSH")
        finally:
            tunnel.close()
    assert logins_since(calab, "w1", mark) == 2


def test_openssh_one_exec_session_login_errors_have_the_paramiko_classes(calab, tmp_path):
    inventory, cases = login_error_cases(calab, tmp_path)
    for name, error in cases.items():
        with one_exec_session(inventory, name, transport="openssh", connect_timeout=2) as session:
            with pytest.raises(error) as caught:
                session.run("touch /tmp/harden-must-not-run")
            assert type(caught.value) is error, (name, caught.value)
    assert not os.path.exists("/tmp/harden-must-not-run")      # the nodes share this /tmp


def test_openssh_one_exec_session_reports_a_connection_lost_mid_command(calab):
    # the login shell's parent is the node's sshd session process: killing it drops the
    # connection under the running command
    with one_exec_session(calab.inventory, "w1", transport="openssh") as session:
        with pytest.raises(Unreachable, match="connection lost while the command ran"):
            session.run("kill -9 $PPID; sleep 5", timeout=30)


# --- ProxyCommand through the shell, jump hosts' own ProxyJump ------------------------------

@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_proxy_command_with_a_variable_and_a_redirect_reaches_the_node(calab, tmp_path,
                                                                          transport):
    """As ssh runs it: `exec COMMAND` in the user's shell ($PX_KEY expanded, 2> honoured)."""
    proxy = (f"ssh -F /dev/null -i $PX_KEY -o UserKnownHostsFile={calab.known_hosts} "
             "-o BatchMode=yes -W %h:%p root@%h 2>/dev/null")
    inventory = tmp_path / "inv.ini"
    inventory.write_text(
        f"cp1 ansible_host={calab.nodes['cp1']} ansible_user=root "
        f"ansible_ssh_private_key_file={calab.key} harden_transport={transport} "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={calab.known_hosts} "
        f"-o ProxyCommand=\"{proxy}\"'\n")
    done = harden("ping", "-i", str(inventory), env={"PX_KEY": str(calab.key)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "via ProxyCommand" in done.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_jump_hosts_own_proxyjump_from_the_config_is_the_first_hop(calab, tmp_path,
                                                                        transport):
    """-J inner, whose config block says ProxyJump outer: w1 (outer) -> cp1 (inner) -> w1."""
    cp1, w1 = calab.nodes["cp1"], calab.nodes["w1"]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host outer\n  HostName {w1}\n  User root\nHost inner\n  HostName {cp1}\n  User root\n"
        f"  ProxyJump outer\nHost *\n  IdentityFile {calab.key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {calab.known_hosts}\n")
    inventory = tmp_path / "inv.ini"
    inventory.write_text(f"w1 ansible_host={w1} ansible_user=root harden_transport={transport} "
                         f"ansible_ssh_common_args='-F {config} -J inner'\n")
    mark = sshd_log(calab, "w1").stat().st_size
    done = harden("ping", "-i", str(inventory))
    assert done.returncode == 0, done.stdout + done.stderr
    listed = harden("inventory", "-i", str(inventory), "--list", "--resolve")
    route = json.loads(listed.stdout)["_meta"]["harden_connections"]["w1"]["route"]
    assert route.startswith(f"root@{w1}:22 via root@{w1}:22 -> root@{cp1}:22"), route
    outer_log = sshd_log(calab, "w1").read_text()[mark:]
    assert re.search(rf"server_request_direct_tcpip: .*target {re.escape(cp1)} port 22",
                     outer_log), outer_log[-2000:]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_proxy_command_that_fails_shows_its_stderr_in_the_error(calab, tmp_path, transport):
    inventory = tmp_path / "inv.ini"
    inventory.write_text(
        f"w1 ansible_host={calab.nodes['w1']} ansible_user=root "
        f"ansible_ssh_private_key_file={calab.key} "
        f"ansible_ssh_common_args='-o UserKnownHostsFile={calab.known_hosts} "
        "-o ProxyCommand=\"sh -c \\\"echo bastion says no $((40+2)) >&2; exit 3\\\"\"'\n")
    with pytest.raises(Unreachable) as err:
        session_for(inventory, "w1", transport=transport).close()
    assert "bastion says no 42" in str(err.value)      # what it printed, not its text


# --- known_hosts files as ssh reads them (UserKnownHostsFile, GlobalKnownHostsFile) -----------

def plain_ssh(lab, node: str, *options: str, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real ssh client with the given -o options (no config file), as a user would run it."""
    argv = ["ssh", "-F", "/dev/null", "-i", str(lab.key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", *[w for o in options for w in ("-o", o)],
            f"root@{lab.nodes[node]}", "true"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=cwd,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_stale_home_known_hosts_line_is_not_read_when_user_known_hosts_file_is_elsewhere(
        calab, tmp_path, transport):
    # ssh reads only UserKnownHostsFile's files: a stale ~/.ssh/known_hosts line for the node
    # (here the lab's user key posing as its host key) must not fail the host
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    stale = calab.key.with_suffix(".pub").read_text().split()[:2]
    (home / ".ssh" / "known_hosts").write_text(f"{calab.nodes['cp1']} {' '.join(stale)}\n")
    options = ("UserKnownHostsFile=/dev/null", "StrictHostKeyChecking=no")
    assert plain_ssh(calab, "cp1", *options, env={"HOME": str(home)}).returncode == 0
    inventory = root_inventory(calab, tmp_path / "elsewhere.ini", "cp1", transport,
                               "-F /dev/null " + " ".join("-o " + o for o in options))
    done = harden("ping", "-i", str(inventory), env={"HOME": str(home)})
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_user_known_hosts_file_none_refuses_a_new_host_key_under_accept_new_as_ssh_does(
        calab, tmp_path, monkeypatch, transport):
    options = ("UserKnownHostsFile=none", "GlobalKnownHostsFile=none",
               "StrictHostKeyChecking=accept-new")
    refused = plain_ssh(calab, "cp1", *options, cwd=tmp_path)
    assert refused.returncode == 255 and "Host key verification failed" in refused.stderr
    inventory = root_inventory(calab, tmp_path / "none.ini", "cp1", transport,
                               "-F /dev/null " + " ".join("-o " + o for o in options))
    monkeypatch.chdir(tmp_path)        # the old code recorded the key in ./none and connected
    with pytest.raises(HostKeyUnknown) as info:
        session_for(inventory, "cp1").close()
    assert "no known_hosts file is read" in str(info.value)
    if transport == "paramiko":
        assert "UserKnownHostsFile is none" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["none.ini"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_jump_host_is_checked_against_its_own_known_hosts_not_the_targets(calab, tmp_path,
                                                                           transport):
    # ssh starts the jump's ssh with its own config and none of the target's -o options: a
    # changed key for the bastion in its own file is a mismatch, while the target's file
    # (given with -o, knowing only the target) let accept-new record the bastion's key
    stale = tmp_path / "bastion_known_hosts"
    wrong = calab.key.with_suffix(".pub").read_text().split()[:2]
    stale.write_text(f"{calab.nodes['cp1']} {' '.join(wrong)}\n")
    target_only = tmp_path / "target_known_hosts"
    target_only.write_text("".join(line for line in calab.known_hosts.read_text().splitlines(True)
                                   if line.startswith(calab.nodes["w1"] + " ")))
    config = tmp_path / "ssh_config"
    config.write_text(f"Host bastion-alias\n  HostName {calab.nodes['cp1']}\n  User root\n"
                      f"  IdentityFile {calab.key}\n  UserKnownHostsFile {stale}\n")
    common = (f"-F {config} -o UserKnownHostsFile={target_only} "
              "-o StrictHostKeyChecking=accept-new -J bastion-alias")
    by_ssh = subprocess.run(["ssh", *common.split(), "-i", str(calab.key), "-o", "BatchMode=yes",
                             f"root@{calab.nodes['w1']}", "true"], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert by_ssh.returncode == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in by_ssh.stderr
    inventory = root_inventory(calab, tmp_path / "jump.ini", "w1", transport, common)
    done = harden("ping", "-i", str(inventory))
    assert done.returncode == 4 and "w1: host key mismatch" in done.stdout, done.stdout
