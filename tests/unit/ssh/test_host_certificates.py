"""Host certificates against `@cert-authority` known_hosts lines, as ssh judges them (OpenSSH
9.2, checked by hand against a lab sshd with HostCertificate): accepted when a known CA signed
a host certificate naming the host (or naming none); otherwise the plain key is checked like
any other, and the refusal says why the certificate was not enough. Keys and certificates are
made with the real ssh-keygen; no network."""

from __future__ import annotations

import shutil
import subprocess

import paramiko
import pytest

from harden.ssh import certs
from harden.ssh.hostkeys import (HOST_CERT_ALGORITHMS, HostKeyMismatch, HostKeyUnknown,
                                 known_keys, preferred_key_types, verify_host_key)

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
ADDRESS = "10.0.0.5"


def keygen(*args: str) -> None:
    subprocess.run(["ssh-keygen", "-q", *args], check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)


@pytest.fixture
def pki(tmp_path):
    """A host CA, another CA, and the server's host key."""
    for name in ("ca", "other_ca", "host"):
        keygen("-t", "ed25519", "-N", "", "-f", str(tmp_path / name))
    return tmp_path


def presented(pki, *options: str, ca: str = "ca") -> paramiko.PKey:
    """The host key as paramiko has it after a key exchange with a certificate: the plain key
    with the certificate as its public blob."""
    keygen("-s", str(pki / ca), "-I", "host-cert", *options, str(pki / "host.pub"))
    key = paramiko.Ed25519Key.from_private_key_file(str(pki / "host"))
    key.load_certificate(str(pki / "host-cert.pub"))
    return key


def ca_line(pki, patterns: str = "10.0.0.*", ca: str = "ca", marker: str = "@cert-authority"):
    return f"{marker} {patterns} {(pki / f'{ca}.pub').read_text()}"


def verify(pki, text: str, key: paramiko.PKey, name: str = ADDRESS, principal=None,
           policy: str = "yes") -> None:
    path = pki / "known_hosts"
    path.write_text(text)
    verify_host_key("cp1", name, key, known_keys("cp1", name, (str(path),)), policy,
                    str(path), certs.host_certificate(key), principal)


def test_a_host_certificate_from_a_known_ca_naming_the_host_is_accepted(pki):
    verify(pki, ca_line(pki), presented(pki, "-h", "-n", f"{ADDRESS},cp1"))


def test_a_host_certificate_naming_no_host_is_valid_for_any_host(pki):
    verify(pki, ca_line(pki), presented(pki, "-h"))


def test_the_principal_is_the_host_key_alias_or_the_address_without_its_port(pki):
    key = presented(pki, "-h", "-n", "cp1.example")
    verify(pki, ca_line(pki, "cp1.example"), key, name="cp1.example", principal="cp1.example")
    verify(pki, ca_line(pki, "[10.0.0.5]:2222"), presented(pki, "-h", "-n", ADDRESS),
           name="[10.0.0.5]:2222")


REFUSED = {
    "another CA": (("-h", "-n", ADDRESS), "other_ca", "which no @cert-authority line"),
    "another host": (("-h", "-n", "10.0.0.6"), "ca", "principals 10.0.0.6 do not include"),
    "a wildcard principal": (("-h", "-n", "10.0.0.*"), "ca", "do not include 10.0.0.5"),
    "expired": (("-h", "-n", ADDRESS, "-V", "20200101:20200102"), "ca", "expired 2020-01-02"),
    "not yet valid": (("-h", "-n", ADDRESS, "-V", "20990101:20990102"), "ca",
                      "not valid before 2099-01-01"),
    "a user certificate": (("-n", ADDRESS), "ca", "it is a user certificate"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_certificate_ssh_refuses_leaves_the_plain_key_unknown_and_says_why(pki, case):
    options, ca, why = REFUSED[case]
    with pytest.raises(HostKeyUnknown) as refused:
        verify(pki, ca_line(pki), presented(pki, *options, ca=ca))
    assert "its host certificate (id 'host-cert') was not accepted" in refused.value.message
    assert why in refused.value.message


def test_a_refused_certificate_falls_back_to_the_known_plain_key(pki):
    key = presented(pki, "-h", "-n", "elsewhere")
    verify(pki, ca_line(pki) + f"{ADDRESS} {(pki / 'host.pub').read_text()}", key)


def test_a_refused_certificate_and_another_plain_key_is_a_mismatch(pki):
    keygen("-t", "ed25519", "-N", "", "-f", str(pki / "old"))
    with pytest.raises(HostKeyMismatch, match="HOST KEY MISMATCH.*host certificate"):
        verify(pki, ca_line(pki) + f"{ADDRESS} {(pki / 'old.pub').read_text()}",
               presented(pki, "-h", "-n", "elsewhere"))


def plain_line(pki, key: str = "host") -> str:
    return f"{ADDRESS} {(pki / f'{key}.pub').read_text()}"


def test_a_revoked_ca_is_refused_with_no_fallback_to_the_plain_key(pki):
    # ssh: HOST_REVOKED never downgrades to the plain key, even one known_hosts names
    text = ca_line(pki) + ca_line(pki, marker="@revoked") + plain_line(pki)
    with pytest.raises(HostKeyMismatch, match="from a REVOKED CA SHA256:"):
        verify(pki, text, presented(pki, "-h", "-n", ADDRESS))


def test_a_revoked_certificate_line_revokes_its_key(pki):
    # ssh compares public keys: an admin pasting the stolen host's -cert.pub revokes the key
    key = presented(pki, "-h", "-n", ADDRESS)
    text = ca_line(pki) + f"@revoked * {(pki / 'host-cert.pub').read_text()}"
    with pytest.raises(HostKeyMismatch, match="REVOKED host key"):
        verify(pki, text, key)
    plain = paramiko.Ed25519Key.from_private_key_file(str(pki / "host"))
    with pytest.raises(HostKeyMismatch, match="REVOKED host key"):
        verify(pki, plain_line(pki) + f"@revoked * {(pki / 'host-cert.pub').read_text()}",
               plain)


def test_a_revoked_host_key_is_refused_with_a_valid_certificate(pki):
    text = ca_line(pki) + f"@revoked * {(pki / 'host.pub').read_text()}"
    with pytest.raises(HostKeyMismatch, match="REVOKED host key"):
        verify(pki, text, presented(pki, "-h", "-n", ADDRESS))


def test_a_certificate_whose_signature_does_not_verify_is_refused(pki):
    key = presented(pki, "-h", "-n", ADDRESS)
    blob = bytearray(key.public_blob.key_blob)
    at = blob.index(b"host-cert")
    blob[at:at + 9] = b"evil-cert"                   # the key id, under the CA's signature
    key.public_blob = paramiko.PublicBlob(key.public_blob.key_type, bytes(blob))
    with pytest.raises(HostKeyMismatch, match="does not verify"):     # ssh: no fallback
        verify(pki, ca_line(pki) + plain_line(pki), key)


def test_a_signature_length_past_the_end_is_refused_though_the_signed_part_is_intact(pki):
    key = presented(pki, "-h", "-n", ADDRESS)
    cert = certs.host_certificate(key)
    blob = key.public_blob.key_blob
    at = len(cert.signed)
    longer = (len(blob) - at - 4 + 8).to_bytes(4, "big")
    key.public_blob = paramiko.PublicBlob(key.public_blob.key_type,
                                          blob[:at] + longer + blob[at + 4:])
    with pytest.raises(HostKeyMismatch, match="does not verify"):
        verify(pki, ca_line(pki), key)


def test_a_certificate_under_a_plain_negotiated_algorithm_is_refused(pki):
    key = presented(pki, "-h", "-n", ADDRESS)
    assert "the key exchange named ssh-ed25519" in certs.host_certificate(key, "ssh-ed25519")
    plain = paramiko.Ed25519Key.from_private_key_file(str(pki / "host"))
    assert "a plain key" in certs.host_certificate(plain, "ssh-ed25519-cert-v01@openssh.com")
    assert certs.host_certificate(plain, "ssh-ed25519") is None


def test_a_validity_past_the_platforms_clock_is_a_refusal_not_an_exception(pki):
    with pytest.raises(HostKeyUnknown, match="not valid before"):
        verify(pki, ca_line(pki), presented(pki, "-h", "-n", ADDRESS,
                                            "-V", "0x7fffffffffffff00:forever"))


def test_the_principal_checked_is_a_lower_cased_host_name_or_the_ip_as_written():
    from harden.ssh.sshconfig import canonical_host as _host_name

    assert _host_name("Node1.Example") == "node1.example"
    assert _host_name("FE80::1") == "FE80::1" and _host_name("10.0.0.5") == "10.0.0.5"


def test_an_accepted_certificate_records_nothing_and_a_refused_one_records_the_plain_key(pki):
    verify(pki, ca_line(pki), presented(pki, "-h", "-n", ADDRESS), policy="accept-new")
    assert (pki / "known_hosts").read_text() == ca_line(pki)
    verify(pki, ca_line(pki), presented(pki, "-h", "-n", "elsewhere"), policy="accept-new")
    recorded = (pki / "known_hosts").read_text().splitlines()[-1].split()
    assert recorded == [ADDRESS, *(pki / "host.pub").read_text().split()[:2]]


def test_a_known_ca_puts_the_host_certificate_algorithms_first(pki):
    path = pki / "known_hosts"
    path.write_text(ca_line(pki) + f"{ADDRESS} {(pki / 'host.pub').read_text()}")
    order = preferred_key_types(known_keys("cp1", ADDRESS, (str(path),)))
    assert order == [*HOST_CERT_ALGORITHMS, "ssh-ed25519"]
    path.write_text(ca_line(pki, marker="@revoked"))
    assert preferred_key_types(known_keys("cp1", ADDRESS, (str(path),))) == []


def test_a_certificate_the_server_made_unreadable_is_refused_not_an_exception(pki):
    # the blob is the server's choice: a key id that is no UTF-8 must not escape as an error
    keygen("-s", str(pki / "ca"), "-I", "host-cert", "-h", str(pki / "host.pub"))
    key = paramiko.Ed25519Key.from_private_key_file(str(pki / "host"))
    key.load_certificate(str(pki / "host-cert.pub"))
    blob = key.public_blob.key_blob.replace(b"host-cert", b"host\xff\xfert")
    key.public_blob = paramiko.PublicBlob(key.public_blob.key_type, blob)
    assert certs.host_certificate(key) == certs.UNREADABLE
    with pytest.raises(HostKeyMismatch, match="not a certificate harden can read"):
        verify(pki, ca_line(pki) + plain_line(pki), key)
