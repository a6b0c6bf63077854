"""The openssh transport's runs do not pay for importing paramiko (about 0.2 s of CPU)."""

from support.imports import modules_after


def test_check_and_ping_import_no_paramiko_until_a_host_uses_it():
    loaded = modules_after("import harden.cis.run, harden.ssh.ping, harden.ssh.openssh")
    assert "paramiko" not in loaded
    assert "cryptography" not in loaded


def test_the_paramiko_session_is_still_importable_from_transport():
    loaded = modules_after("from harden.ssh.transport import ParamikoSession, _Stream\n"
                            "assert ParamikoSession.__module__ == 'harden.ssh.paramiko_session'")
    assert "paramiko" in loaded
