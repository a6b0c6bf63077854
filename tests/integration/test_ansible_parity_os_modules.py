"""The module arguments and modules dev-sec's os_hardening role uses, run by ansible-playbook
and by harden on two nodes of one lab, twice: setup as a task (also when ansible_facts is
still empty), package_facts, symbolic modes on file and copy (og-rwx, u=rw,g=r,o=, a-s on a setuid
file), file state=link with force over a file, copy remote_src, sysctl with os_hardening's
arguments, apt purge, and dnf/selinux failing on a Debian node as Ansible's do (judged through
failed_when: false). Both report the same counts, leave the same files, modes and running
kernel values, and change nothing the second time but the remount that Ansible reports changed
on every run (check_mode: true on the task). `--check --diff` shows the same content hunks and
writes nothing."""

from __future__ import annotations

import os
import re

import pytest

from integration.test_ansible_modules_parity import content_hunks, ansible_task_diffs
from support.ansible import run_ansible, run_harden, write_content

pytestmark = pytest.mark.lab

DIR = "/etc/kubernetes/osh"
SYSCTL_FILE = "/etc/sysctl.d/90-dev-sec.conf"
KEYS = ("kernel.panic", "vm.panic_on_oom")
CONTENT = {
    "site.yml": """\
        - name: os hardening's modules
          hosts: all
          gather_facts: false
          become: true
          roles: [osh]
        """,
    "roles/osh/defaults/main.yml": f"osh_dir: {DIR}\nosh_note: one\nosh_sysctl:\n  kernel.panic: 10\n"
                                   "  vm.panic_on_oom: 0\n",
    "roles/osh/tasks/main.yml": """\
        - name: Gather facts, if not present
          ansible.builtin.setup:
          when: not ansible_facts
        - name: a directory
          ansible.builtin.file: path={{ osh_dir }} state=directory mode=0755 owner=root group=root
        - name: what setup found
          ansible.builtin.copy:
            dest: "{{ osh_dir }}/os"
            content: "{{ ansible_facts.distribution }} {{ ansible_os_family }} {{ osh_note }}\\n"
            mode: "u=rw,g=r,o="
        - name: only the package manager
          ansible.builtin.setup:
            filter: ansible_pkg_mgr
          register: pkgmgr
        - name: Gather package facts
          ansible.builtin.package_facts:
            manager: auto
        - name: what package_facts found
          ansible.builtin.copy:
            dest: "{{ osh_dir }}/packages"
            content: "{{ pkgmgr.ansible_facts.ansible_pkg_mgr }} {{ ansible_facts.packages['coreutils'][0].version }} {{ ansible_facts.packages['coreutils'][0].source }} {{ 'no-such-package' in ansible_facts.packages }}\\n"
        - name: a cron-like directory
          ansible.builtin.file: path={{ osh_dir }}/cron.d state=directory
        - name: Find cron files and directories
          ansible.builtin.file:
            path: "{{ osh_dir }}/cron.d"
            owner: root
            group: root
            mode: og-rwx
        - name: Remove suid/sgid bit
          ansible.builtin.file:
            path: "{{ osh_dir }}/tool"
            mode: a-s
            state: file
            follow: true
        - name: the old auth file
          ansible.builtin.copy: dest={{ osh_dir }}/system-auth content=old force=false
        - name: our auth file
          ansible.builtin.copy: dest={{ osh_dir }}/system-auth-local content=new mode=0640
        - name: Enable our config
          ansible.builtin.file:
            src: "{{ osh_dir }}/system-auth-local"
            dest: "{{ osh_dir }}/system-auth"
            state: link
            force: true
        - name: keep a copy of a node file
          ansible.builtin.copy:
            src: /etc/hostname
            dest: "{{ osh_dir }}/hostname.orig"
            remote_src: true
            mode: "0600"
        - name: Change various sysctl-settings
          ansible.posix.sysctl:
            name: "{{ item.key }}"
            value: "{{ item.value }}"
            sysctl_set: true
            sysctl_file: /etc/sysctl.d/90-dev-sec.conf
            state: present
            reload: true
            ignoreerrors: true
          with_dict: "{{ osh_sysctl }}"
        - name: Remove deprecated or insecure packages
          ansible.builtin.apt:
            name: [no-such-package-osh]
            state: absent
            purge: true
        - name: Install sssd-clients
          ansible.builtin.dnf: name=sssd-client state=present
          register: dnf_result
          failed_when: false
        - name: Configure selinux
          ansible.posix.selinux:
            policy: targeted
            state: permissive
          register: selinux_result
          failed_when: false
        - name: both failed as on a Debian node
          ansible.builtin.assert:
            that:
              - (dnf_result.msg | string) is search('major revision of dnf')
              - (selinux_result.msg | string) is search('libselinux-python')
        - name: remount proc
          ansible.posix.mount:
            path: /proc
            state: remounted
          check_mode: true
        """,
}


@pytest.fixture(scope="module")
def lab2(lab_factory):
    with lab_factory.running(control_planes=0, workers=2) as lab:
        for node in lab.names():        # a setuid binary os_hardening's a-s task is for
            tool = lab.node_root(node) / DIR.lstrip("/") / "tool"
            tool.parent.mkdir(parents=True)
            tool.write_text("#!/bin/sh\n")
            tool.chmod(0o4755)
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    return write_content(tmp_path_factory.mktemp("osh"), CONTENT)


def node_view(lab, node: str) -> dict:
    """Files under DIR (mode, bytes or link target), the sysctl file, the running values."""
    root = lab.node_root(node) / DIR.lstrip("/")
    out = {}
    if root.exists():
        out["."] = oct(root.stat().st_mode & 0o7777)
        for path in sorted(root.rglob("*")):
            rel = str(path.relative_to(root))
            out[rel] = ("link", os.readlink(path)) if path.is_symlink() else \
                (oct(path.stat().st_mode & 0o7777),
                 path.read_bytes() if path.is_file() else None)
    conf = lab.node_root(node) / SYSCTL_FILE.lstrip("/")
    out["sysctl file"] = conf.read_bytes() if conf.exists() else None
    out["running"] = lab.ssh(node, "sysctl " + " ".join(KEYS)).stdout
    return out


def statuses(ansible_out: str, report: dict, node: str) -> str:
    """Each tool's status per task, side by side (what a count mismatch comes from)."""
    theirs = [(block.split("]", 1)[0].split(" : ")[-1],
               re.findall(r"^(ok|changed|skipping|failed|fatal)", block, re.M))
              for block in ansible_out.split("TASK [")[1:]]
    ours = [(t["task"], t["status"]) for t in report["tasks"][node]]
    return f"ansible: {theirs}\nharden: {ours}"


@pytest.mark.timeout(900)
def test_two_runs_leave_the_same_node_as_ansible_and_the_second_changes_only_the_remount(
        lab2, content, tmp_path):
    by_ansible, by_harden = lab2.names()
    (theirs, out), (ours, report) = run_ansible(lab2, content, by_ansible), \
        run_harden(lab2, content, by_harden, tmp_path)
    assert theirs == ours, statuses(out, report, by_harden)
    assert theirs["changed"] >= 9 and theirs["failed"] == 0
    (theirs, out), (ours, report) = run_ansible(lab2, content, by_ansible), \
        run_harden(lab2, content, by_harden, tmp_path)
    assert theirs == ours, statuses(out, report, by_harden)
    assert theirs["changed"] == 1, statuses(out, report, by_harden)     # the remount

    view = node_view(lab2, by_ansible)
    assert view == node_view(lab2, by_harden)
    assert view["cron.d"][0] == "0o700" and view["tool"][0] == "0o755"
    assert view["os"][0] == "0o640" and view["system-auth"] == ("link", f"{DIR}/system-auth-local")
    assert view["hostname.orig"][0] == "0o600"
    assert re.match(rb"apt \S+ apt False\n$", view["packages"][1])
    assert view["sysctl file"] == b"kernel.panic=10\nvm.panic_on_oom=0\n"
    assert view["running"] == "kernel.panic = 10\nvm.panic_on_oom = 0\n"


@pytest.mark.timeout(900)
def test_check_diff_matches_ansible_and_writes_nothing(lab2, content, tmp_path):
    """On nodes the role has run on (Ansible's check mode fails a task on a directory an
    earlier task would create), with a new note and a setuid bit back on the tool."""
    by_ansible, by_harden = lab2.names()
    if not (lab2.node_root(by_harden) / DIR.lstrip("/") / "os").exists():
        run_ansible(lab2, content, by_ansible), run_harden(lab2, content, by_harden, tmp_path)
    for node in (by_ansible, by_harden):
        lab2.ssh(node, f"chmod 4755 {DIR}/tool")
    before = node_view(lab2, by_ansible), node_view(lab2, by_harden)
    theirs, out = run_ansible(lab2, content, by_ansible, "--check", "--diff",
                                "-e", "osh_note=two")
    ours, report = run_harden(lab2, content, by_harden, tmp_path, "--check", "--diff",
                              "-e", "osh_note=two", expect=2)
    assert ours == theirs, statuses(out, report, by_harden)
    assert theirs["changed"] == 3           # the note, the suid bit, the remount
    hunks = {t["task"]: content_hunks(t.get("diff", "")) for t in report["tasks"][by_harden]}
    assert hunks["what setup found"] == ansible_task_diffs(out)["what setup found"] != []
    assert (node_view(lab2, by_ansible), node_view(lab2, by_harden)) == before
