"""GSSAPI/Kerberos logins (issue 17) on a real lab node: a real MIT KDC on the lab's own loopback
range, a realm made in a temporary directory, a host keytab for the node's sshd, and a user
(labops) whose only way in is gssapi-with-mic. The OpenSSH transport logs in as `ssh` does once
the user holds a ticket; without one, or with the paramiko transport, harden says why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import kerberos

pytestmark = pytest.mark.lab
USER = "labops"


def sshd_options() -> list[str]:
    """What the node's sshd adds to the lab's config.

    GSSAPIStrictAcceptorCheck no: with it on, sshd accepts only tickets for host/<its
    hostname>, and lab nodes share the machine's hostname; the keytab holds host/<node
    address> instead, the name ssh asks for when HostName is an address (no DNS involved).
    The Match block leaves labops no other method, so a login can only be Kerberos (root keeps
    its key: the test reads the node through it)."""
    return ["GSSAPIAuthentication yes", "GSSAPIStrictAcceptorCheck no",
            f"Match User {USER}", "  PubkeyAuthentication no",
            "  AuthenticationMethods gssapi-with-mic"]


@pytest.fixture(scope="module")
def krb(lab_factory):
    """(lab, realm, keytab): one control plane whose sshd reads the realm's config and keytab
    from the temporary directory (never the machine's /etc/krb5.conf or /etc/krb5.keytab)."""
    reason = kerberos.missing_tools()
    if reason:
        pytest.fail(reason)
    with kerberos.private_dir() as directory:
        keytab = directory / "sshd.keytab"
        env = {"KRB5_CONFIG": str(directory / "krb5.conf"), "KRB5_KTNAME": f"FILE:{keytab}",
               "KRB5RCACHEDIR": str(directory)}
        with lab_factory.running(control_planes=1, workers=0, sshd_options=sshd_options(),
                                 sshd_env=env, wait_ready=True) as lab:
            with kerberos.running(directory, f"{lab.net}.250") as realm:
                realm.add_host(lab.nodes["cp1"], keytab)
                realm.add_user(USER)
                yield lab, realm


def harden(krb, *args: str, state: Path | None = None) -> subprocess.CompletedProcess:
    """harden with the realm's Kerberos environment (KRB5CCNAME, KRB5_CONFIG) and labops's sudo
    password, as a user who ran kinit would run it."""
    lab, realm = krb
    env = {**os.environ, "COLUMNS": "250", **realm.env,
           "HARDEN_BECOME_PASSWORD": lab.become_password}
    if state is not None:
        env["HARDEN_STATE_DIR"] = str(state)
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def inventory(lab, tmp_path: Path, gssapi: bool = True) -> Path:
    """cp1 as labops with become, reached with an ssh config (-F, so the machine's
    /etc/ssh/ssh_config, which turns GSSAPIAuthentication on in Debian, is not read)."""
    config = tmp_path / "ssh_config"
    config.write_text("Host *\n" + ("  GSSAPIAuthentication yes\n" if gssapi else "")
                      + f"  UserKnownHostsFile {lab.known_hosts}\n  StrictHostKeyChecking yes\n")
    path = tmp_path / "inventory.ini"
    path.write_text(f"[control_plane]\ncp1 ansible_host={lab.nodes['cp1']}\n"
                    f"[control_plane:vars]\nansible_user={USER}\nansible_become=true\n"
                    f"ansible_ssh_common_args='-F {config}'\n")
    return path


def gssapi_logins(lab, mark: int) -> int:
    log = (lab.dir / "nodes" / "cp1" / "sshd.log").read_text()[mark:]
    return log.count(f"Accepted gssapi-with-mic for {USER}")


def log_mark(lab) -> int:
    return (lab.dir / "nodes" / "cp1" / "sshd.log").stat().st_size


ADMIN_CONF_PLAY = """
- name: admin.conf at most 0600
  hosts: control_plane
  become: true
  tasks:
    - name: admin.conf mode
      file:
        path: /etc/kubernetes/admin.conf
        mode_max: "0600"
"""


def test_with_a_ticket_ping_check_and_apply_log_in_with_kerberos_through_openssh(krb, tmp_path):
    lab, realm = krb
    realm.kinit(f"{USER}@{kerberos.REALM}")
    inv, mark = str(inventory(lab, tmp_path)), log_mark(lab)
    ping = harden(krb, "ping", "-i", inv, "--transport", "openssh")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    check = harden(krb, "check", "-i", inv, "--transport", "openssh", "--format", "json")
    assert check.returncode == 2, check.stdout + check.stderr      # the lab has FAILs
    assert not json.loads(check.stdout)["unreachable"]
    lab.ssh("cp1", "chmod 0644 /etc/kubernetes/admin.conf")
    play = tmp_path / "play.yml"
    play.write_text(ADMIN_CONF_PLAY)
    applied = harden(krb, "apply", "-i", inv, str(play), "--transport", "openssh",
                     state=tmp_path / "state")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert lab.ssh("cp1", "stat -c %a /etc/kubernetes/admin.conf").stdout.strip() == "600"
    assert gssapi_logins(lab, mark) == 3             # ping, check, apply: one Kerberos login each


def test_without_gssapi_in_the_ssh_config_the_same_login_is_refused(krb, tmp_path):
    lab, realm = krb
    realm.kinit(f"{USER}@{kerberos.REALM}")
    inv = str(inventory(lab, tmp_path, gssapi=False))
    ping = harden(krb, "ping", "-i", inv, "--transport", "openssh")
    assert ping.returncode == 4, ping.stdout + ping.stderr
    text = " ".join(ping.stdout.split())
    assert "cp1: auth failed" in text and "GSSAPIAuthentication yes" in text


def test_without_a_ticket_ping_names_the_host_and_kerberos(krb, tmp_path):
    lab, realm = krb
    realm.kinit(f"{USER}@{kerberos.REALM}")
    realm.kdestroy()
    inv, mark = str(inventory(lab, tmp_path)), log_mark(lab)
    ping = harden(krb, "ping", "-i", inv, "--transport", "openssh")
    assert ping.returncode == 4, ping.stdout + ping.stderr
    text = " ".join(ping.stdout.split())
    assert "cp1: auth failed" in text
    assert "Permission denied (gssapi-with-mic)" in text and "kinit" in text
    assert gssapi_logins(lab, mark) == 0


def test_paramiko_transport_says_to_use_openssh_for_a_kerberos_only_login(krb, tmp_path):
    lab, realm = krb
    realm.kinit(f"{USER}@{kerberos.REALM}")
    ping = harden(krb, "ping", "-i", str(inventory(lab, tmp_path)), "--transport", "paramiko")
    assert ping.returncode == 4, ping.stdout + ping.stderr
    text = " ".join(ping.stdout.split())
    assert "cp1: auth failed" in text
    assert "accepts only gssapi-with-mic" in text and "--transport openssh" in text


def test_the_sessions_sshd_starts_do_not_inherit_its_environment(krb):
    # that sshd has it shows in every Kerberos login above: without KRB5_KTNAME it finds no key
    lab, _realm = krb
    assert lab.ssh("cp1", "echo ${KRB5_KTNAME-unset} ${KRB5_CONFIG-unset}").stdout == \
        "unset unset\n"
