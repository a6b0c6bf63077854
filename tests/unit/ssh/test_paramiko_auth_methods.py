"""What the paramiko transport says when a server allows none of the methods it has (publickey,
password, keyboard-interactive): which ones the server takes, and the OpenSSH transport."""

from __future__ import annotations

from harden.ssh.paramiko_session import unsupported_methods_message


def test_a_kerberos_only_server_gets_the_openssh_transport_and_a_ticket_suggested():
    said = unsupported_methods_message(["gssapi-with-mic"])
    assert said.startswith("the server accepts only gssapi-with-mic (Kerberos)")
    assert "--transport openssh" in said and "harden_transport=openssh" in said
    assert "kinit" in said and "GSSAPIAuthentication yes" in said


def test_another_method_gets_the_openssh_transport_without_kerberos_advice():
    said = unsupported_methods_message(["hostbased"])
    assert "only hostbased," in said and "--transport openssh" in said
    assert "kinit" not in said and "Kerberos" not in said
