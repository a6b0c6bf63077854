"""known_hosts lookups and verdicts (no network: keys are generated, files are written)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess

import paramiko
import pytest

from harden.ssh.hostkeys import (HostKeyMismatch, HostKeyUnknown, KnownKey, fingerprint, known_keys,
                             lookup_name, preferred_key_types, verify_host_key)


@pytest.fixture(scope="module")
def server_key():
    return paramiko.ECDSAKey.generate()


@pytest.fixture(scope="module")
def other_key():
    return paramiko.ECDSAKey.generate()


def line(name: str, key: paramiko.PKey) -> str:
    return f"{name} {key.get_name()} {key.get_base64()}\n"


def hashed(name: str, salt: bytes = b"0123456789abcdefghij") -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def verify(tmp_path, text, key, name="10.0.0.5", policy="yes", record=None):
    path = tmp_path / "known_hosts"
    path.write_text(text)
    record = record or str(path)
    known = known_keys("cp1", name, (str(tmp_path / "absent"), str(path)))
    verify_host_key("cp1", name, key, known, policy, record)
    return path


def test_lookup_name_uses_brackets_for_other_ports():
    assert lookup_name("10.0.0.5", 22) == "10.0.0.5"
    assert lookup_name("10.0.0.5", 2222) == "[10.0.0.5]:2222"


def test_fingerprint_matches_ssh_keygen(tmp_path, server_key):
    pub = tmp_path / "k.pub"
    pub.write_text(line("x", server_key).split(" ", 1)[1])
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True,
                         check=True).stdout
    assert out.split()[1] == fingerprint(server_key.asbytes())


@pytest.mark.parametrize("names", ["10.0.0.5", "other,10.0.0.5", "10.0.0.*", "10.0.0.?"])
def test_plain_and_pattern_entries_accept_the_right_key(tmp_path, server_key, names):
    verify(tmp_path, "# comment\n\n" + line(names, server_key), server_key)


def test_hashed_bracketed_entry_matches_only_that_port(tmp_path, server_key):
    text = line(hashed("[10.0.0.5]:2222"), server_key)
    verify(tmp_path, text, server_key, name="[10.0.0.5]:2222")
    with pytest.raises(HostKeyUnknown):
        verify(tmp_path, text, server_key, name="10.0.0.5")


def test_negated_pattern_excludes_the_host(tmp_path, server_key):
    with pytest.raises(HostKeyUnknown):
        verify(tmp_path, line("10.0.0.*,!10.0.0.5", server_key), server_key)


def test_changed_key_names_file_line_and_both_fingerprints(tmp_path, server_key, other_key):
    text = "# first line\n" + line("10.0.0.9", server_key) + line("10.0.0.5", other_key)
    with pytest.raises(HostKeyMismatch) as info:
        verify(tmp_path, text, server_key, policy="accept-new")
    message = str(info.value)
    assert f"{tmp_path / 'known_hosts'}:3" in message
    assert fingerprint(server_key.asbytes()) in message
    assert fingerprint(other_key.asbytes()) in message
    assert "cp1" in message and "10.0.0.5" in message
    assert not isinstance(info.value, HostKeyUnknown)


@pytest.mark.parametrize("policy", ["yes", "accept-new", "no"])
def test_changed_key_is_refused_whatever_the_policy(tmp_path, server_key, other_key, policy):
    with pytest.raises(HostKeyMismatch):
        verify(tmp_path, line("10.0.0.5", other_key), server_key, policy=policy)


def test_unknown_host_is_refused_when_strict(tmp_path, server_key):
    with pytest.raises(HostKeyUnknown) as info:
        verify(tmp_path, line("10.0.0.9", server_key), server_key)
    assert "--accept-new-host-keys" in str(info.value)


def test_a_known_hosts_file_that_cannot_be_written_is_a_host_error(tmp_path, server_key):
    (tmp_path / "file").write_text("")
    with pytest.raises(HostKeyUnknown, match="cannot be recorded in .*file/recorded"):
        verify(tmp_path, "", server_key, policy="accept-new",
               record=str(tmp_path / "file" / "recorded"))


def test_unknown_host_is_recorded_when_accepting_new(tmp_path, server_key):
    record = tmp_path / "sub" / "recorded"
    verify(tmp_path, "", server_key, name="[10.0.0.5]:2222", policy="accept-new",
           record=str(record))
    assert record.read_text() == line("[10.0.0.5]:2222", server_key)
    assert oct(os.stat(record).st_mode & 0o777) == "0o600"
    known = known_keys("cp1", "[10.0.0.5]:2222", (str(record),))
    verify_host_key("cp1", "[10.0.0.5]:2222", server_key, known, "yes", str(record))


def test_recording_appends_after_a_file_without_final_newline(tmp_path, server_key, other_key):
    path = tmp_path / "known_hosts"
    path.write_text(line("10.0.0.9", other_key).rstrip("\n"))
    verify(tmp_path, path.read_text(), server_key, policy="accept-new")
    assert len(known_keys("cp1", "10.0.0.5", (str(path),))) == 1
    assert len(known_keys("cp1", "10.0.0.9", (str(path),))) == 1


def test_revoked_key_is_refused_even_next_to_a_valid_entry(tmp_path, server_key):
    text = "@revoked * " + line("", server_key).lstrip() + line("10.0.0.5", server_key)
    with pytest.raises(HostKeyMismatch, match="REVOKED"):
        verify(tmp_path, text, server_key)


def test_preferred_key_types_put_known_types_first():
    assert preferred_key_types([]) == []
    keys = [KnownKey("f", 1, "ssh-rsa", b"x"), KnownKey("f", 2, "ecdsa-sha2-nistp256", b"y")]
    assert preferred_key_types(keys) == ["rsa-sha2-512", "rsa-sha2-256", "ecdsa-sha2-nistp256"]


def test_unknown_host_error_names_the_known_hosts_files_read(tmp_path, server_key):
    with pytest.raises(HostKeyUnknown) as info:
        verify_host_key("cp1", "10.0.0.5", server_key, [], "yes", "/kh/a",
                        files=("/kh/a", "/etc/ssh/ssh_known_hosts"))
    assert "is known in /kh/a, /etc/ssh/ssh_known_hosts (" in str(info.value)


@pytest.mark.parametrize("policy", ["accept-new", "no"])
def test_a_new_key_is_refused_when_user_known_hosts_file_is_none(tmp_path, server_key, policy):
    # ssh 9.2, UserKnownHostsFile=none: "Host key verification failed" whatever the policy
    with pytest.raises(HostKeyUnknown, match="UserKnownHostsFile is none") as info:
        verify_host_key("cp1", "10.0.0.5", server_key, [], policy, None, files=())
    assert "no known_hosts file is read" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_an_unknown_host_that_the_skipped_default_file_knows_says_so(tmp_path, server_key,
                                                                   monkeypatch):
    # UserKnownHostsFile replaces ~/.ssh/known_hosts (as with ssh); harden used to read both
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".ssh").mkdir(parents=True)
    default = tmp_path / "home" / ".ssh" / "known_hosts"
    default.write_text(line("10.0.0.5", server_key))
    with pytest.raises(HostKeyUnknown) as refused:
        verify(tmp_path, "", server_key)
    assert f"{default} has a key for 10.0.0.5 but is not read" in refused.value.message
    default.write_text(line("10.0.0.6", server_key))
    with pytest.raises(HostKeyUnknown) as refused:
        verify(tmp_path, "", server_key)
    assert "is not read" not in refused.value.message
