"""FIDO security-key logins (issue 17) on a real lab node, without an authenticator: the
project's own test provider (tests/fixtures/sk_provider, compiled by the fixture) plays the
device for the system ssh-keygen, ssh and ssh-agent. A key enrolled through it is authorized
on the node; harden's OpenSSH transport logs in with it as `ssh` does (SecurityKeyProvider in
ansible_ssh_common_args, naming the library or $SSH_SK_PROVIDER); a key the node does not
know is refused; the paramiko transport names the key file and its type instead of failing
as an internal error, but signs through ssh-agent when the key is loaded there (its key file
named or not). sshd's log shows which key got in."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.support import fido
from tests.support.lab_cli import harden
from tests.support.ssh_agent import add_key, running_agent

pytestmark = pytest.mark.lab
NODE = "w1"


@pytest.fixture(scope="module")
def keys(lab_factory, tmp_path_factory):
    """(lab, provider, enrolled key, unenrolled key): one worker whose root accepts the first."""
    directory = tmp_path_factory.mktemp("fido")
    try:
        provider = fido.build_provider(directory)
    except fido.Unavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    enrolled, stranger = directory / "id_sk", directory / "id_sk_unenrolled"
    pub = fido.enroll(provider, enrolled)
    fido.enroll(provider, stranger)
    with lab_factory.running(control_planes=0, workers=1, wait_ready=True) as lab:
        with (lab.dir / "authorized_keys" / "root").open("a") as authorized:
            authorized.write(pub.read_text())
        yield lab, provider, enrolled, stranger


def inventory(tmp_path: Path, lab, key: Path | None, *options: str) -> Path:
    """w1 as root with `key` only (IdentitiesOnly), or with no key file (the agent's keys);
    -F /dev/null keeps the machine's ssh config out."""
    ssh_args = ["-F /dev/null", f"-o UserKnownHostsFile={lab.known_hosts}",
                "-o StrictHostKeyChecking=yes", *options]
    key_vars = ""
    if key is not None:
        ssh_args.append("-o IdentitiesOnly=yes")
        key_vars = f"ansible_ssh_private_key_file={key}\n"
    path = tmp_path / "inventory.ini"
    path.write_text(f"[workers]\n{NODE} ansible_host={lab.nodes[NODE]}\n[workers:vars]\n"
                    f"ansible_user=root\n{key_vars}"
                    f"ansible_ssh_common_args='{' '.join(ssh_args)}'\n")
    return path


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """harden without the caller's agent (SSH_AUTH_SOCK) unless the test gives one."""
    environ = {"SSH_AUTH_SOCK": "", "SSH_SK_PROVIDER": "", **env}
    return harden(tmp_path / "state", *args, env=environ, timeout=120)


def log_mark(lab) -> int:
    return (lab.dir / "nodes" / NODE / "sshd.log").stat().st_size


def fido_logins(lab, key: Path, mark: int, key_type: str = "ED25519-SK") -> int:
    """sshd's "Accepted publickey ... ED25519-SK <fingerprint>" lines since `mark`."""
    log = (lab.dir / "nodes" / NODE / "sshd.log").read_bytes()[mark:].decode(errors="replace")
    wanted = f"{key_type} {fido.fingerprint(key.with_name(key.name + '.pub'))}"
    return sum(1 for line in log.splitlines()
               if line.startswith("Accepted publickey for root") and wanted in line)


def flat(done: subprocess.CompletedProcess) -> str:
    return " ".join((done.stdout + done.stderr).split())


def test_ping_and_check_log_in_with_a_fido_key_through_the_openssh_transport(keys, tmp_path):
    lab, provider, key, _ = keys
    mark = log_mark(lab)
    inv = str(inventory(tmp_path, lab, key, f"-o SecurityKeyProvider={provider}"))
    ping = run(tmp_path, "ping", "-i", inv, "--transport", "openssh")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    # the provider taken from the environment (Debian's ssh reads SSH_SK_PROVIDER only when
    # told to: its own default is its built-in USB support)
    inv = str(inventory(tmp_path, lab, key, "-o SecurityKeyProvider=$SSH_SK_PROVIDER"))
    check = run(tmp_path, "check", "-i", inv, "--transport", "openssh", "--format", "json",
                SSH_SK_PROVIDER=str(provider))
    assert check.returncode == 2, check.stdout + check.stderr        # the lab has FAILs
    report = json.loads(check.stdout)
    assert not report["unreachable"]
    assert any(result["status"] == "PASS" for result in report["results"])
    assert fido_logins(lab, key, mark) == 2                  # ping and check, one login each


def test_a_key_the_node_does_not_know_is_refused_with_ssh_words(keys, tmp_path):
    lab, provider, _, stranger = keys
    mark = log_mark(lab)
    inv = str(inventory(tmp_path, lab, stranger, f"-o SecurityKeyProvider={provider}"))
    ping = run(tmp_path, "ping", "-i", inv, "--transport", "openssh")
    assert ping.returncode == 4, ping.stdout + ping.stderr
    text = flat(ping)
    assert f"{NODE}: auth failed" in text and "Permission denied (publickey)" in text
    assert f"offered {stranger}" in text and "could not sign" not in text
    assert fido_logins(lab, stranger, mark) == 0


def test_without_its_middleware_ssh_cannot_sign_and_harden_says_so(keys, tmp_path):
    lab, _, key, _ = keys
    mark = log_mark(lab)
    inv = str(inventory(tmp_path, lab, key, "-o SecurityKeyProvider=/nonexistent/sk.so"))
    ping = run(tmp_path, "ping", "-i", inv, "--transport", "openssh")
    assert ping.returncode == 4, ping.stdout + ping.stderr
    text = flat(ping)
    assert f"{NODE}: auth failed" in text
    assert f"ssh could not sign with {key} (ED25519-SK)" in text and "SecurityKeyProvider" in text
    assert fido_logins(lab, key, mark) == 0


def test_the_paramiko_transport_names_the_fido_key_file_and_suggests_openssh(keys, tmp_path):
    lab, provider, key, _ = keys
    inv = str(inventory(tmp_path, lab, key, f"-o SecurityKeyProvider={provider}"))
    for command in (["ping"], ["check", "--format", "json"]):
        done = run(tmp_path, *command, "-i", inv, "--transport", "paramiko")
        assert done.returncode == 4, done.stdout + done.stderr
        text = flat(done)
        assert "internal error" not in text and "UnsupportedAlgorithm" not in text
        assert f"Key {key} is a FIDO security key (sk-ssh-ed25519@openssh.com)" in text
        assert "--transport openssh" in text and "ssh-agent" in text


@pytest.fixture
def agent(keys):
    """An ssh-agent of the test's own holding the enrolled key, signing through the provider
    (ssh-agent loads only providers its -P patterns allow); stopped after the test."""
    _, provider, key, _ = keys
    with running_agent("-P", str(provider)) as sock:
        add_key(sock, key, SSH_SK_PROVIDER=str(provider))
        yield sock


def named_key(tmp_path: Path, key: Path, how: str) -> Path | None:
    """The key file the inventory names: none (the agent's keys), the key file itself, or a
    path with only the public key beside it (a resident key loaded with `ssh-add -K` has no
    private key file; ssh then finds the agent's key by the .pub)."""
    if how == "agent-only":
        return None
    if how == "key-file-in-agent":
        return key
    only_pub = tmp_path / "id_resident"
    only_pub.with_name("id_resident.pub").write_text(
        key.with_name(key.name + ".pub").read_text())
    return only_pub


@pytest.mark.parametrize("transport", ["openssh", "paramiko"])
@pytest.mark.parametrize("key_file", ["agent-only", "key-file-in-agent", "only-pub-in-agent"])
def test_a_fido_key_in_ssh_agent_logs_in_with_either_transport(keys, agent, tmp_path, transport,
                                                               key_file):
    # with a key file named and IdentitiesOnly, the agent's copy of that key signs (as ssh
    # does); no SecurityKeyProvider is given: the agent has the middleware
    lab, _, key, _ = keys
    mark = log_mark(lab)
    inv = str(inventory(tmp_path, lab, named_key(tmp_path, key, key_file)))
    ping = run(tmp_path, "ping", "-i", inv, "--transport", transport, SSH_AUTH_SOCK=agent)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert fido_logins(lab, key, mark) == 1


PASSPHRASE = "harden-test-passphrase"


@pytest.fixture(scope="module")
def protected_key(keys, tmp_path_factory) -> Path:
    """A passphrase-protected Ed25519 key the node's root accepts."""
    lab = keys[0]
    key = tmp_path_factory.mktemp("protected") / "id_protected"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", PASSPHRASE, "-f", str(key),
                    "-C", "harden-protected-test"], check=True, capture_output=True, timeout=30,
                   stdin=subprocess.DEVNULL)
    with (lab.dir / "authorized_keys" / "root").open("a") as authorized:
        authorized.write(key.with_name(key.name + ".pub").read_text())
    return key


def test_a_passphrase_protected_key_file_is_named_then_used_through_the_agent_copy(
        keys, protected_key, agent, tmp_path):
    # paramiko cannot ask for a passphrase: without the agent the key is named as
    # passphrase-protected (not an internal error); once ssh-add loaded it, harden uses the
    # agent's copy of the named key under IdentitiesOnly, as ssh does
    lab = keys[0]
    inv = str(inventory(tmp_path, lab, protected_key))
    refused = run(tmp_path, "ping", "-i", inv, "--transport", "paramiko")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    text = flat(refused)
    assert f"key {protected_key} (passphrase-protected" in text and "internal error" not in text
    add_key(agent, protected_key, PASSPHRASE)
    mark = log_mark(lab)
    ping = run(tmp_path, "ping", "-i", inv, "--transport", "paramiko", SSH_AUTH_SOCK=agent)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert fido_logins(lab, protected_key, mark, key_type="ED25519") == 1
