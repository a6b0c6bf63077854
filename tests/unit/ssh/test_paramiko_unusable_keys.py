"""Key files the paramiko transport cannot load because of their type or format (FIDO
security keys above all): named with their file and type, the OpenSSH transport suggested when
ssh could use them, never an "internal error"; a damaged key of a known type stays "unreadable"."""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
import warnings

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed448, ed25519

from harden.ssh import key_files
from harden.ssh.paramiko_session import _candidate_keys, _load_key, unusable_keys_message
from harden.ssh.settings import Endpoint


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def openssh_key_file(key_type: str, cipher: str = "none", kdf: str = "none") -> bytes:
    """An openssh-key-v1 file as ssh-keygen writes one for a key of `key_type` (for a FIDO key:
    the public key and application; the private part, a key handle, is never reached)."""
    name = key_type.encode()
    public = _string(name) + _string(b"\x01" * 32) + _string(b"ssh:")
    private = struct.pack(">II", 7, 7) + public + _string(b"\x02" * 32) + b"\x01" \
        + _string(b"") + _string(b"") + _string(b"comment")
    private += bytes(range(1, 1 + (-len(private)) % 8))
    blob = (b"openssh-key-v1\0" + _string(cipher.encode()) + _string(kdf.encode())
            + _string(b"" if kdf == "none" else _string(b"salt" * 4) + struct.pack(">I", 16))
            + struct.pack(">I", 1) + _string(public) + _string(private))
    body = base64.encodebytes(blob).decode()
    return (f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}"
            "-----END OPENSSH PRIVATE KEY-----\n").encode()


def load(tmp_path, data: bytes, name: str = "id_key"):
    """(path, notes, unusable keys) for a key file paramiko does not load."""
    path = tmp_path / name
    path.write_bytes(data)
    key, why, found = _load_key(str(path))
    assert key is None
    return str(path), [f"key {path} ({why})"] if why else [], [found] if found else []


def test_a_fido_ed25519_key_is_named_with_its_type_not_as_an_internal_error(tmp_path):
    path, notes, unusable = load(tmp_path, openssh_key_file("sk-ssh-ed25519@openssh.com"))
    assert notes == []
    assert unusable == [key_files.UnusableKey(path, "sk-ssh-ed25519@openssh.com")]
    said = unusable[0].describe()
    assert said.startswith(f"Key {path} is a FIDO security key (sk-ssh-ed25519@openssh.com)")


def test_a_fido_key_carries_its_public_key_to_find_it_in_ssh_agent(tmp_path):
    _path, _notes, unusable = load(tmp_path, openssh_key_file("sk-ssh-ed25519@openssh.com"))
    name = b"sk-ssh-ed25519@openssh.com"
    assert unusable[0].public_blob == _string(name) + _string(b"\x01" * 32) + _string(b"ssh:")


def test_a_fido_ecdsa_key_is_a_fido_key_too(tmp_path):
    _path, _notes, unusable = load(tmp_path, openssh_key_file("sk-ecdsa-sha2-nistp256@openssh.com"))
    assert unusable[0].fido and unusable[0].openssh_can


def test_a_passphrase_protected_fido_key_still_names_its_type(tmp_path):
    data = openssh_key_file("sk-ssh-ed25519@openssh.com", cipher="aes256-ctr", kdf="bcrypt")
    assert key_files.file_key_type(data) == "sk-ssh-ed25519@openssh.com"
    _path, _notes, unusable = load(tmp_path, data)
    assert [key.key_type for key in unusable] == ["sk-ssh-ed25519@openssh.com"]


def test_a_dsa_key_is_named_as_ssh_dss_without_a_warning_on_stderr(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = dsa.generate_private_key(1024)
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                 serialization.NoEncryption())
    path = tmp_path / "id_dsa"
    path.write_bytes(data)
    # a fresh interpreter: pytest's own warning capture would hide what a harden run prints
    code = ("import sys; from harden.ssh.paramiko_session import _load_key; "
            "print(_load_key(sys.argv[1])[2].describe())")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stderr == ""
    assert done.stdout.startswith(f"Key {path} is a DSA key (ssh-dss), which is obsolete")


def test_a_dsa_key_gets_a_new_key_suggested_not_the_openssh_transport():
    # OpenSSH 9.2 refuses DSA unless told otherwise and 10.0 removed it
    key = key_files.UnusableKey("/keys/id_dsa", "ssh-dss")
    said = unusable_keys_message(HOP, [], [key])
    assert not key.openssh_can and "--transport openssh" not in said
    assert "obsolete" in said and "ssh-keygen -t ed25519" in said


def test_reading_a_dsa_key_leaves_the_process_warning_filters_as_they_were(tmp_path):
    # the DSA warning is silenced around the load only, not for the whole process
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = dsa.generate_private_key(1024).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption())
    path = tmp_path / "id_dsa"
    path.write_bytes(data)
    code = ("import sys, warnings; from harden.ssh.paramiko_session import _load_key; "
            "before = list(warnings.filters); _load_key(sys.argv[1]); "
            "print(warnings.filters == before, "
            "any(f[1] is not None and 'DSA' in f[1].pattern for f in warnings.filters))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=60, check=True)
    assert done.stdout.split() == ["True", "False"]


def test_a_pem_ed448_key_is_named_and_ssh_is_not_suggested_for_it(tmp_path):
    data = ed448.Ed448PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    _path, _notes, unusable = load(tmp_path, data)
    assert unusable[0].key_type == "Ed448" and not unusable[0].openssh_can


def test_a_putty_key_is_named_with_the_conversion_to_make(tmp_path):
    data = b"PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\n"
    _path, _notes, unusable = load(tmp_path, data, "id.ppk")
    assert unusable[0].key_type == "PuTTY ssh-ed25519"
    assert "puttygen" in unusable[0].describe() and not unusable[0].openssh_can


def test_a_file_in_no_key_format_is_said_to_be_one(tmp_path):
    _path, _notes, unusable = load(tmp_path, b"not a key at all\n")
    assert unusable[0].key_type == key_files.UNKNOWN_FORMAT
    assert "in no format paramiko reads" in unusable[0].describe()


def test_a_damaged_ed25519_key_stays_unreadable_not_a_type_problem(tmp_path):
    data = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption())
    lines = data.splitlines()
    damaged = b"\n".join([lines[0], lines[1][:-8] + b"AAAAAAAA", *lines[2:]]) + b"\n"
    path, notes, unusable = load(tmp_path, damaged)
    assert unusable == [] and notes and notes[0].startswith(f"key {path} (unreadable:")


HOP = Endpoint(name="n1", address="10.0.0.5", port=22, user="root")


def test_the_message_for_a_fido_key_suggests_openssh_with_a_provider_or_the_agent():
    key = key_files.UnusableKey("/keys/id_sk", "sk-ssh-ed25519@openssh.com")
    said = unusable_keys_message(HOP, [], [key])
    assert said.startswith(f"no way to log in to {HOP.label} with the paramiko transport. "
                           "Key /keys/id_sk is a FIDO security key")
    assert "harden_transport=openssh" in said and "--transport openssh" in said
    assert "SecurityKeyProvider" in said and "ssh-agent" in said
    # Debian's ssh talks to USB authenticators itself: a middleware library is optional
    assert "with the authenticator attached (or a middleware library named with " \
           "SecurityKeyProvider" in said


def test_the_message_keeps_what_was_tried_and_leaves_out_openssh_when_ssh_cannot_help():
    key = key_files.UnusableKey("/keys/id.ppk", "PuTTY ssh-ed25519", "convert it")
    said = unusable_keys_message(HOP, ["key /keys/id_rsa"], [key])
    assert said.startswith(f"{HOP.label} refused authentication (tried key /keys/id_rsa). "
                           "Key /keys/id.ppk is of type PuTTY ssh-ed25519")
    assert "--transport openssh" not in said


@pytest.mark.parametrize("text", [b"", b"-----BEGIN OPENSSH PRIVATE KEY-----\n!!\n"
                                       b"-----END OPENSSH PRIVATE KEY-----\n",
                                  b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n"
                                  b"-----END OPENSSH PRIVATE KEY-----\n"])
def test_a_truncated_or_garbled_file_names_no_type(text):
    assert key_files.file_key_type(text) is None


def test_a_fido_key_at_ssh_default_path_is_named_when_no_other_key_is_there(tmp_path,
                                                                            monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519_sk").write_bytes(
        openssh_key_file("sk-ssh-ed25519@openssh.com"))
    notes: list[str] = []
    unusable: list[key_files.UnusableKey] = []
    assert list(_candidate_keys(HOP, notes, unusable)) == []
    assert notes == []
    assert [(key.path, key.fido) for key in unusable] == \
        [(str(tmp_path / ".ssh" / "id_ed25519_sk"), True)]
