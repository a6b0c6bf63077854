"""A command known to rewrite system files (data/command_writes.yaml) is undone by `harden
rollback` byte for byte, its state files included: pam-auth-update rewrites /etc/pam.d/common-*,
/var/lib/pam/* and, through debconf, /var/cache/debconf (the profiles it chose are debconf
answers), so a rollback that restored only the PAM files left debconf saying the profile was on."""

from __future__ import annotations

import pytest

from support.ansible import harden_report, write_content
from support.lab_cli import harden

pytestmark = pytest.mark.lab

PROFILE = "/usr/share/pam-configs/harden-umask"
STATE = ("/etc/pam.d/common-* /var/lib/pam/* /var/cache/debconf/config.dat* "
         "/var/cache/debconf/templates.dat*")
CONTENT = {
    "site.yml": f"""
        - name: a PAM profile, enabled as dev-sec's os_hardening enables its own
          hosts: workers
          gather_facts: false
          tasks:
            - name: umask profile
              ansible.builtin.copy:
                dest: {PROFILE}
                mode: "0644"
                content: |
                  Name: umask from login.defs (harden test)
                  Default: yes
                  Priority: 0
                  Session-Type: Additional
                  Session:
                  	optional	pam_umask.so
            - name: enable it
              ansible.builtin.command: pam-auth-update --package
    """,
}


@pytest.fixture(scope="module")
def lab1(lab_factory):
    with lab_factory.running(control_planes=0, workers=1) as lab:
        yield lab


def sums(lab) -> str:
    return lab.ssh("w1", f"sha256sum {STATE}; stat -c '%a %U:%G %n' {STATE}; "
                         f"ls /usr/share/pam-configs").stdout


def test_pam_auth_update_is_rolled_back_with_its_debconf_answers(lab1, tmp_path):
    content = write_content(tmp_path / "content", CONTENT)
    before = sums(lab1)
    report = harden_report(lab1, content, "w1", tmp_path)
    assert report["hosts"]["w1"]["changed"] == 2
    assert "pam_umask.so" in lab1.ssh("w1", "cat /etc/pam.d/common-session").stdout
    assert "harden-umask" in lab1.ssh("w1", "cat /var/cache/debconf/config.dat").stdout
    done = harden(tmp_path, "rollback", "-i", str(lab1.inventory), report["run_id"])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sums(lab1) == before
