"""`copy` with `remote_src` of a directory, `ansible_date_time`, a `copy` into a missing
directory and `file` with `follow: false`, as ansible-playbook runs them, on two workers of one
lab: the contents of `src/` into a dated backup directory (the CIS Kubernetes role's backup
step), the directory itself below a new one (`src` without its slash), the ignored failure of a
copy whose directory is missing, and `mode` on a symlink left alone. Both tools report the
same counts and leave the same trees (kinds, modes, owners, bytes); a second run changes only
what Ansible's second run changes (`mode` reaching dest/basename(src) once dest exists), a
third nothing; a changed source file is copied again by both; harden's rollbacks of its runs, newest
first, leave the node as it was."""

from __future__ import annotations

import pytest

from support.ansible import run_both, write_content
from support.lab_cli import harden

pytestmark = pytest.mark.lab

SRC = "/etc/kubernetes/cfg"
BACKUP = "/var/lib/cis-backup"
LINK = "/etc/kubernetes/current.conf"          # a symlink to SRC/a.conf
CONTENT = {
    "site.yml": f"""\
        - name: a directory copied on the node, as a backup step does
          hosts: all
          become: true
          tasks:
            - name: the backup base
              ansible.builtin.file:
                path: "{BACKUP}"
                state: directory
                mode: "0755"
            - name: what is inside src, into a dated directory
              ansible.builtin.copy:
                src: "{SRC}/"
                dest: "{BACKUP}/k8s-{{{{ ansible_date_time.year }}}}"
                remote_src: true
                directory_mode: "0755"
                mode: "0640"
                owner: root
                group: root
            - name: src itself, below a new directory
              ansible.builtin.copy:
                src: "{SRC}"
                dest: "{BACKUP}/nested"
                remote_src: true
                mode: "0750"
            - name: a file whose directory is missing
              ansible.builtin.copy:
                dest: "{BACKUP}/missing/x.conf"
                content: "x\\n"
              ignore_errors: true
            - name: mode on a symlink itself changes nothing
              ansible.builtin.file:
                path: "{LINK}"
                mode: "0600"
                follow: false
        """,
}


@pytest.fixture(scope="module")
def lab2(lab_factory):
    with lab_factory.running(control_planes=0, workers=2) as lab:
        for node in lab.names():
            lab.ssh(node, f"mkdir -p {SRC}/sub && printf 'a = 1\\n' > {SRC}/a.conf && "
                          f"chmod 0600 {SRC}/a.conf && printf 'b\\n' > {SRC}/sub/b.yaml && "
                          f"chmod 0700 {SRC}/sub && ln -sfn {SRC}/a.conf {LINK}")
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    return write_content(tmp_path_factory.mktemp("copytree"), CONTENT)


def node_view(lab, node: str) -> list[str]:
    """Every entry under the backup base and the source: kind, mode, owner, group, sha256
    or link target."""
    done = lab.ssh(node, f"cd / && find {BACKUP} {SRC} {LINK} -printf '%p|%y|%m|%u|%g|%l\\n' | sort; "
                         f"find {BACKUP} {SRC} -type f -exec sha256sum {{}} + | sort")
    return done.stdout.splitlines()


def both(lab, content, state, *options):
    return run_both(lab, content, state, node_view, *options)


@pytest.mark.timeout(900)
def test_directory_copies_match_ansible_and_roll_back(lab2, content, tmp_path):
    node = lab2.names()[1]
    before = node_view(lab2, node)
    first, one = both(lab2, content, tmp_path)
    assert (first["changed"], first["failed"]) == (3, 0)
    view = "\n".join(node_view(lab2, node))
    assert f"{BACKUP}/k8s-20" in view            # ansible_date_time.year
    assert "|d|640|root|root|" in view                      # mode on the top directory only
    assert "/a.conf|f|600|root|root|" in view and "/sub|d|700|root|root|" in view
    assert f"{BACKUP}/nested|d|750|" in view and f"{BACKUP}/nested/cfg/a.conf|f|600" in view
    assert f"{BACKUP}/missing" not in view
    statuses = {t["task"]: t["status"] for t in one["tasks"][node]}
    assert statuses["a file whose directory is missing"] == "failed"
    assert statuses["mode on a symlink itself changes nothing"] == "ok"

    # Ansible's own quirk, which harden keeps: once `nested` exists, dest becomes nested/cfg
    # (dest/basename of src), so the second run gives `mode` to nested/cfg as well
    second, two = both(lab2, content, tmp_path)
    assert second["changed"] == 1 and \
        [t["task"] for t in two["tasks"][node] if t["status"] == "changed"] == \
        ["src itself, below a new directory"]
    assert f"{BACKUP}/nested/cfg|d|750|" in "\n".join(node_view(lab2, node))
    assert both(lab2, content, tmp_path)[0]["changed"] == 0
    for name in lab2.names():
        lab2.ssh(name, f"printf 'a = 2\\n' > {SRC}/a.conf")
    third, report = both(lab2, content, tmp_path)
    assert third["changed"] == 2            # the changed file, in both copies
    for run in (report["run_id"], two["run_id"], one["run_id"]):
        done = harden(tmp_path, "rollback", "-i", str(lab2.inventory), "-l", node, run)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lab2.ssh(node, f"printf 'a = 1\\n' > {SRC}/a.conf")      # the test's own edit, undone
    assert node_view(lab2, node) == before
