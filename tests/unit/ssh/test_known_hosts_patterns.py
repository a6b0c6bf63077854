"""known_hosts patterns follow OpenSSH, not shell globbing: `[` and `]` are literal."""

from __future__ import annotations

import subprocess

import paramiko
import pytest

from harden.ssh.hostkeys import HostKeyMismatch, known_keys, verify_host_key


@pytest.fixture(scope="module")
def recorded_key():
    return paramiko.ECDSAKey.generate()


@pytest.fixture(scope="module")
def attacker_key():
    return paramiko.ECDSAKey.generate()


def write_known_hosts(tmp_path, patterns: str, key: paramiko.PKey):
    path = tmp_path / "known_hosts"
    path.write_text(f"{patterns} {key.get_name()} {key.get_base64()}\n")
    return path


def ssh_keygen_finds(path, name: str) -> bool:
    """The reference: what OpenSSH itself says matches."""
    result = subprocess.run(["ssh-keygen", "-F", name, "-f", str(path)], capture_output=True,
                            text=True, check=False)
    return result.returncode == 0 and bool(result.stdout.strip())


@pytest.mark.parametrize("patterns,name", [
    ("[10.0.0.*]:2222", "[10.0.0.5]:2222"),
    ("[10.0.0.?]:2222", "[10.0.0.5]:2222"),
    ("[10.0.0.*]:2222", "[10.0.0.5]:22"),
    ("[10.0.0.5]:2222", "[10.0.0.5]:2222"),
    ("[CP1.Example]:2222", "[cp1.example]:2222"),
    ("[a-z]*", "b.example"),
    ("[ab]", "a"),
    ("cp*,!cp2", "cp2"),
    ("cp*,!cp2", "cp1"),
    ("10.0.0.1?", "10.0.0.1"),
])
def test_pattern_verdict_agrees_with_ssh_keygen(tmp_path, recorded_key, patterns, name):
    path = write_known_hosts(tmp_path, patterns, recorded_key)
    ours = bool(known_keys("cp1", name, (str(path),)))
    assert ours == ssh_keygen_finds(path, name)


def test_bracketed_wildcard_entry_refuses_a_different_key_under_accept_new(
        tmp_path, recorded_key, attacker_key):
    path = write_known_hosts(tmp_path, "[10.0.0.*]:2222", recorded_key)
    name = "[10.0.0.5]:2222"
    known = known_keys("cp1", name, (str(path),))
    with pytest.raises(HostKeyMismatch):
        verify_host_key("cp1", name, attacker_key, known, "accept-new", str(path))
    assert attacker_key.get_base64() not in path.read_text()
