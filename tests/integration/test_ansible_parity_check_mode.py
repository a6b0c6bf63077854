"""`harden apply --check-mode ansible` against `ansible-playbook --check` on the same lab node:
a file written twice (copy, then lineinfile), a directory one task makes and the next tasks
write into (a copy of content: changed; a stat: absent; a remote_src copy of a directory:
"Destination directory ... does not exist", which stops the host), and a remote_src copy from
a directory an earlier task makes ("Source ... not found"). Both tools report the same status
for every task, the same failure, the same diff against the untouched file, and neither
writes anything."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support.ansible import ansible_env, ansible_playbook, harden_report, write_content

pytestmark = pytest.mark.lab

DIR = "/etc/kubernetes/checkmode"
CONTENT = {
    "site.yml": f"""\
        - name: judged against the node as found
          hosts: all
          gather_facts: false
          become: true
          tasks:
            - name: write the file
              ansible.builtin.copy:
                dest: "{DIR}/app.conf"
                content: "a = 2\\n"
            - name: write it again
              ansible.builtin.copy:
                dest: "{DIR}/app.conf"
                content: "a = 2\\n"
            - name: add a line
              ansible.builtin.lineinfile:
                path: "{DIR}/app.conf"
                line: "b = 1"
            - name: add the line again
              ansible.builtin.lineinfile:
                path: "{DIR}/app.conf"
                line: "b = 1"
            - name: make a directory
              ansible.builtin.file:
                path: "{DIR}/new.d"
                state: directory
                mode: "0755"
            - name: a file into it
              ansible.builtin.copy:
                dest: "{DIR}/new.d/x.conf"
                content: "x\\n"
            - name: look for that file
              ansible.builtin.stat:
                path: "{DIR}/new.d/x.conf"
              register: seen
            - name: only when it is there
              ansible.builtin.debug:
                msg: "there"
              when: seen.stat.exists
            - name: copy a directory into the new one
              ansible.builtin.copy:
                src: "{DIR}/src/"
                dest: "{DIR}/new.d/copy"
                remote_src: true
            - name: never reached
              ansible.builtin.debug:
                msg: "after the failure"
        """,
    "source.yml": f"""\
        - name: a copy from a directory an earlier task makes
          hosts: all
          gather_facts: false
          become: true
          tasks:
            - name: make the source directory
              ansible.builtin.file:
                path: "{DIR}/made.d"
                state: directory
            - name: copy it
              ansible.builtin.copy:
                src: "{DIR}/made.d/"
                dest: "{DIR}/src"
                remote_src: true
        """,
}


@pytest.fixture(scope="module")
def lab1(lab_factory):
    with lab_factory.running(control_planes=0, workers=1) as lab:
        root = lab.node_root(lab.names()[0]) / DIR.lstrip("/")
        (root / "src").mkdir(parents=True)
        (root / "app.conf").write_text("a = 1\n")
        (root / "src" / "s.conf").write_text("s\n")
        yield lab


def node_view(lab, node: str) -> dict:
    """Every path under DIR: mode, owner, group, and a file's bytes."""
    root = lab.node_root(node) / DIR.lstrip("/")
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            data = open(path, "rb").read() if name in files else None
            out[os.path.relpath(path, root)] = (oct(st.st_mode), st.st_uid, st.st_gid, data)
    return out


def ansible_check(lab, content, node: str,
                  playbook: str = "site.yml") -> tuple[list, dict, subprocess.CompletedProcess]:
    """ansible-playbook --check --diff with the ansible.posix.json callback: (task, status)
    in order, each task's result, and the process."""
    env = {**ansible_env(lab, content), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    done = subprocess.run([ansible_playbook(), "-i", str(lab.inventory), "-l", node, "--check",
                           "--diff", str(content / playbook)], capture_output=True,
                          text=True, timeout=300, env=env, cwd=content)
    doc = json.loads(done.stdout)
    rows, results = [], {}
    for task in doc["plays"][0]["tasks"]:
        result = task["hosts"][node]
        status = "failed" if result.get("failed") else "skipped" if result.get("skipped") \
            else "changed" if result.get("changed") else "ok"
        rows.append((task["task"]["name"], status))
        results[task["task"]["name"]] = result
    return rows, results, done


@pytest.mark.timeout(600)
def test_check_mode_ansible_reports_what_ansible_playbook_check_reports(lab1, tmp_path):
    content = write_content(tmp_path / "content", CONTENT)
    node = lab1.names()[0]
    before = node_view(lab1, node)

    theirs, results, done = ansible_check(lab1, content, node)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-2000:]     # a failed host
    report = harden_report(lab1, content, node, tmp_path, "--check-mode", "ansible", "--diff",
                           expect=4)
    ours = [(t["task"], t["status"]) for t in report["tasks"][node]]

    assert ours == theirs == [
        ("write the file", "changed"), ("write it again", "changed"),
        ("add a line", "changed"), ("add the line again", "changed"),
        ("make a directory", "changed"), ("a file into it", "changed"),
        ("look for that file", "ok"), ("only when it is there", "skipped"),
        ("copy a directory into the new one", "failed")]
    failure = f"Destination directory {DIR}/new.d does not exist"
    assert results["copy a directory into the new one"]["msg"] == failure
    assert report["tasks"][node][-1]["message"] == failure
    assert report["check_mode"] == "ansible" and report["hosts"][node]["failed"] == 1

    # the second write's hunk is against the untouched file in both tools
    assert results["write it again"]["diff"][0]["before"] == "a = 1\n"
    assert "-a = 1\n+a = 2\n" in report["tasks"][node][1]["diff"]
    assert node_view(lab1, node) == before


@pytest.mark.timeout(600)
def test_a_remote_copy_from_a_directory_not_made_yet_fails_in_both(lab1, tmp_path):
    content = write_content(tmp_path / "content", CONTENT)
    node = lab1.names()[0]
    before = node_view(lab1, node)
    theirs, results, done = ansible_check(lab1, content, node, "source.yml")
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-2000:]
    report = harden_report(lab1, content, node, tmp_path, "--check-mode", "ansible",
                           playbook="source.yml", expect=4)
    ours = [(t["task"], t["status"]) for t in report["tasks"][node]]
    assert ours == theirs == [("make the source directory", "changed"), ("copy it", "failed")]
    assert report["tasks"][node][-1]["message"] == results["copy it"]["msg"] == \
        f"Source {DIR}/made.d/ not found"
    assert node_view(lab1, node) == before
