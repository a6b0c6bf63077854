"""ansible.posix.mount, run by ansible-playbook and by harden on two nodes of one lab: a tmpfs
mounted on a node path (its mount point created), an fstab-only entry, and the node's own /proc
remounted with hidepid (os_hardening's task), notifying a systemd daemon-reload handler. Only
mounts private to each node's mount namespace: /var is the node's overlay, /proc its own.
Both tools report the same counts (the reload handler ok, not changed), write the same fstab
and leave the same live mounts; the second run changes nothing; `--check` writes and mounts
nothing; harden's rollback puts the fstab back byte for byte and undoes the mounts."""

from __future__ import annotations

import pytest

from support.ansible import run_ansible, run_harden, write_content
from support.lab_cli import harden

pytestmark = pytest.mark.lab

POINT = "/var/lib/mount-parity/data"
HIDEPID = "rw,nosuid,nodev,noexec,relatime,hidepid=2"
CONTENT = {
    "site.yml": f"""\
        - name: mounts as os_hardening makes them
          hosts: all
          gather_facts: false
          become: true
          tasks:
            - name: a tmpfs on a node path
              ansible.posix.mount:
                path: {POINT}
                src: tmpfs
                fstype: tmpfs
                opts: size=1m,mode=0750
                state: mounted
              notify: Reload systemd
            - name: an entry in fstab only
              ansible.posix.mount:
                path: /var/lib/mount-parity/later
                src: tmpfs
                fstype: tmpfs
                opts: size=2m
                dump: 0
                passno: 0
                state: present
            - name: Set option hidepid for proc filesystem
              ansible.posix.mount:
                path: /proc
                src: proc
                fstype: proc
                opts: {HIDEPID}
                state: mounted
          handlers:
            - name: Reload systemd
              ansible.builtin.systemd:
                daemon_reload: true
        """,
}


@pytest.fixture(scope="module")
def lab2(lab_factory):
    with lab_factory.running(control_planes=0, workers=2) as lab:
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    return write_content(tmp_path_factory.mktemp("mount"), CONTENT)


def mounts_view(lab, node: str) -> dict:
    """The node's fstab bytes, and its live mounts on the paths the playbook names."""
    fstab = lab.ssh(node, "cat /etc/fstab").stdout
    live = lab.ssh(node, "awk '$2 ~ /^\\/(proc|var\\/lib\\/mount-parity)/ {print $1, $2, $3, $4}' "
                         "/proc/self/mounts").stdout
    exists = lab.ssh(node, f"test -d {POINT} && echo yes || echo no").stdout.strip()
    return {"fstab": fstab, "live": live.splitlines(), "point": exists}


@pytest.mark.timeout(900)
def test_check_then_two_runs_match_ansible_and_the_rollback_restores_fstab(lab2, content,
                                                                           tmp_path):
    by_ansible, by_harden = lab2.names()
    before = mounts_view(lab2, by_harden)
    assert before == mounts_view(lab2, by_ansible) and before["point"] == "no"

    theirs, _ = run_ansible(lab2, content, by_ansible, "--check")
    ours, report = run_harden(lab2, content, by_harden, tmp_path, "--check", expect=2)
    assert ours == theirs and theirs["changed"] == 3, report["tasks"][by_harden]
    assert mounts_view(lab2, by_ansible) == mounts_view(lab2, by_harden) == before

    theirs, _ = run_ansible(lab2, content, by_ansible)
    ours, report = run_harden(lab2, content, by_harden, tmp_path)
    assert ours == theirs, report["tasks"][by_harden]
    assert theirs == {"ok": 4, "changed": 3, "failed": 0, "skipped": 0}   # the handler: ok
    after = mounts_view(lab2, by_harden)
    assert after == mounts_view(lab2, by_ansible)
    assert after["fstab"] == before["fstab"] + (
        f"tmpfs {POINT} tmpfs size=1m,mode=0750 0 0\n"
        "tmpfs /var/lib/mount-parity/later tmpfs size=2m 0 0\n"
        f"proc /proc proc {HIDEPID} 0 0\n")
    assert any(line.startswith(f"tmpfs {POINT} tmpfs rw,") and "size=1024k" in line
               for line in after["live"])
    assert any("hidepid=2" in line or "hidepid=invisible" in line for line in after["live"])

    theirs, _ = run_ansible(lab2, content, by_ansible)
    ours, second = run_harden(lab2, content, by_harden, tmp_path)
    assert ours == theirs == {"ok": 3, "changed": 0, "failed": 0, "skipped": 0}

    done = harden(tmp_path, "rollback", "-i", str(lab2.inventory), "-l", by_harden,
                  report["run_id"])
    assert done.returncode == 0, done.stdout + done.stderr
    restored = mounts_view(lab2, by_harden)
    assert restored["fstab"] == before["fstab"]
    assert restored["point"] == "no"
    assert not any(POINT in line for line in restored["live"])
