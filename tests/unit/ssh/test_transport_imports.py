"""The openssh transport's runs do not pay for importing paramiko (about 0.2 s of CPU)."""

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_check_and_ping_import_no_paramiko_until_a_host_uses_it():
    loaded = _modules_after("import harden.cis.run, harden.ssh.ping, harden.ssh.openssh")
    assert "paramiko" not in loaded
    assert "cryptography" not in loaded


def test_the_paramiko_session_is_still_importable_from_transport():
    loaded = _modules_after("from harden.ssh.transport import ParamikoSession, _Stream\n"
                            "assert ParamikoSession.__module__ == 'harden.ssh.paramiko_session'")
    assert "paramiko" in loaded
