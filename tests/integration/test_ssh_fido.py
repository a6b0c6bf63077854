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
import time
from pathlib import Path

import pytest

from tests.support import fido
from tests.support.lab_cli import harden

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


def fido_logins(lab, key: Path, mark: int) -> int:
    """sshd's "Accepted publickey ... ED25519-SK <fingerprint>" lines since `mark`."""
    log = (lab.dir / "nodes" / NODE / "sshd.log").read_bytes()[mark:].decode(errors="replace")
    wanted = f"ED25519-SK {fido.fingerprint(key.with_name(key.name + '.pub'))}"
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
def agent(keys, tmp_path):
    """An ssh-agent of the test's own holding the enrolled key, signing through the provider
    (ssh-agent loads only providers its -P patterns allow); stopped after the test."""
    _, provider, key, _ = keys
    sock = tmp_path / "agent.sock"
    process = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock), "-P", str(provider)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert process.poll() is None and time.monotonic() < deadline, "no ssh-agent"
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock), "SSH_SK_PROVIDER": str(provider)}
        subprocess.run(["ssh-add", str(key)], env=env, check=True, capture_output=True,
                       timeout=30, stdin=subprocess.DEVNULL)
        yield str(sock)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize("transport", ["openssh", "paramiko"])
@pytest.mark.parametrize("key_file", [False, True], ids=["agent-only", "key-file-in-agent"])
def test_a_fido_key_in_ssh_agent_logs_in_with_either_transport(keys, agent, tmp_path, transport,
                                                               key_file):
    # with the key file named and IdentitiesOnly, the agent's copy of that key signs (as ssh
    # does); no SecurityKeyProvider is given: the agent has the middleware
    lab, _, key, _ = keys
    mark = log_mark(lab)
    inv = str(inventory(tmp_path, lab, key if key_file else None))
    ping = run(tmp_path, "ping", "-i", inv, "--transport", transport, SSH_AUTH_SOCK=agent)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert fido_logins(lab, key, mark) == 1
