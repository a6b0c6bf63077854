"""Servers that ask for more than one step (sshd's AuthenticationMethods), on a real lab sshd:
root needs two keys (publickey,publickey), labops a key and then its password
(publickey,password). A key accepted as one step is not a login: harden goes on as ssh does,
and a step it cannot take is named instead of failing later with a channel timeout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support.lab_cli import harden

pytestmark = pytest.mark.lab
TRANSPORTS = ["paramiko", "openssh"]


@pytest.fixture(scope="module")
def steps_lab(lab_factory, tmp_path_factory):
    """One node; root's second key is authorized beside the lab's own."""
    options = ["Match User root", "AuthenticationMethods publickey,publickey",
               "Match User labops", "PasswordAuthentication yes",
               "AuthenticationMethods publickey,password"]
    with lab_factory.running(control_planes=1, workers=0, sshd_options=options) as lab:
        second = tmp_path_factory.mktemp("keys") / "id_second"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(second)],
                       check=True)
        with (lab.dir / "authorized_keys" / "root").open("a") as authorized:
            authorized.write(second.with_name("id_second.pub").read_text())
        yield lab, second


def inventory(tmp_path: Path, lab, user: str, extra_args: str = "", extra_vars: str = "",
              transport: str = "paramiko") -> str:
    path = tmp_path / "steps.ini"
    path.write_text(
        f"[nodes]\ncp1 ansible_host={lab.nodes['cp1']}\n[nodes:vars]\nansible_user={user}\n"
        f"ansible_ssh_private_key_file={lab.key}\nharden_transport={transport}\n{extra_vars}"
        f"ansible_ssh_common_args='-F /dev/null -o IdentitiesOnly=yes "
        f"-o UserKnownHostsFile={lab.known_hosts} {extra_args}'\n")
    return str(path)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_keys_log_in_where_the_server_asks_for_two(steps_lab, tmp_path, transport):
    lab, second = steps_lab
    done = harden(tmp_path / "state", "ping", "-i",
                  inventory(tmp_path, lab, "root", f"-i {second}", transport=transport))
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_key_where_two_are_needed_says_so(steps_lab, tmp_path):
    lab, _ = steps_lab
    done = harden(tmp_path / "state", "ping", "-i", inventory(tmp_path, lab, "root"))
    assert done.returncode == 4
    assert f"accepted key {lab.key} as one step but requires more" in done.stdout
    assert "Timeout opening channel" not in done.stdout


def test_a_key_then_the_password_logs_in_and_without_the_password_says_which(steps_lab,
                                                                             tmp_path):
    lab, _ = steps_lab
    refused = harden(tmp_path / "state", "ping", "-i", inventory(tmp_path, lab, "labops"))
    assert refused.returncode == 4 and "set ansible_password for the password step" in \
        refused.stdout
    password = f"ansible_password={lab.become_password}\n"
    done = harden(tmp_path / "state", "ping", "-i",
                  inventory(tmp_path, lab, "labops", extra_vars=password))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Accepted password for labops" in (lab.dir / "nodes/cp1/sshd.log").read_text()
