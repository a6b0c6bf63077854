"""Ansible's error-handling keywords, run by ansible-playbook and by harden on two lab nodes:
ignore_errors, failed_when, until/retries, a block whose failure a rescue catches (with
always), a task skipped by `when` that still registers, ansible_run_tags and a command
delegated to the controller. Both leave the same files (bytes and modes) and report the same
ok/changed/failed/skipped/rescued/ignored counts, twice, the second time changing nothing (the
ignored failing command still counts as changed, as ansible-core counts it)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from support.ansible import ansible_counts, harden_counts

pytestmark = pytest.mark.lab

PARITY_DIR = "/etc/kubernetes/parity-keywords"      # node-private on the lab
COUNTS = ("ok", "changed", "failed", "skipped", "rescued", "ignored")
SITE = """\
    - name: keywords
      hosts: all
      gather_facts: false
      become: true
      vars:
        parity_dir: /etc/kubernetes/parity-keywords
      tasks:
        - name: dir
          ansible.builtin.file: path={{ parity_dir }} state=directory mode=0750
        - name: a probe that fails, ignored
          ansible.builtin.command: cat {{ parity_dir }}/missing
          register: missing
          ignore_errors: true
        - name: record the probe
          ansible.builtin.copy:
            content: "rc={{ missing.rc }} failed={{ missing is failed }}\\n"
            dest: "{{ parity_dir }}/probe.txt"
            mode: "0600"
        - name: exit 1 is fine here
          ansible.builtin.shell: grep -q nothing-here {{ parity_dir }}/probe.txt
          register: grep
          failed_when: grep.rc not in [0, 1]
          changed_when: false
        - name: count until two
          ansible.builtin.shell: echo x >> {{ parity_dir }}/count; wc -l < {{ parity_dir }}/count
          register: counted
          until: counted.stdout | int >= 2
          retries: 3
          delay: 0
          changed_when: false
        - name: guarded
          block:
            - name: write in the block
              ansible.builtin.copy:
                content: "block\\n"
                dest: "{{ parity_dir }}/block.txt"
                mode: "0640"
            - name: breaks
              ansible.builtin.command: /bin/false
            - name: never reached
              ansible.builtin.copy:
                content: "never\\n"
                dest: "{{ parity_dir }}/never.txt"
          rescue:
            - name: recover
              ansible.builtin.copy:
                content: "rescued {{ ansible_failed_task.name }}\\n"
                dest: "{{ parity_dir }}/rescue.txt"
                mode: "0600"
          always:
            - name: clean up
              ansible.builtin.copy:
                content: "always\\n"
                dest: "{{ parity_dir }}/always.txt"
                mode: "0600"
        - name: skipped, still registered
          ansible.builtin.stat: path=/etc
          register: st
          when: false
        - name: what was selected
          ansible.builtin.copy:
            content: "{{ ansible_run_tags | join(',') }} {{ st is skipped }}\\n"
            dest: "{{ parity_dir }}/tags.txt"
            mode: "0600"
        - name: on the controller
          ansible.builtin.command: /bin/true
          delegate_to: localhost
          become: false
          changed_when: false
    """


@pytest.fixture(scope="module")
def lab2(lab_factory):
    """Two workers: the content needs two alike nodes, nothing of a control plane (whose
    emulated components would only cost CPU for the whole module)."""
    with lab_factory.running(control_planes=0, workers=2) as lab:
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parity-keywords")
    (root / "site.yml").write_text(textwrap.dedent(SITE))
    return root


def run_ansible(lab, content: Path, node: str) -> dict:
    return ansible_counts(lab, content, node, COUNTS)


def run_harden(lab, content: Path, node: str, state: Path) -> dict:
    return harden_counts(lab, content, node, state, COUNTS)


def tree(lab, node: str) -> dict:
    root = lab.node_root(node) / PARITY_DIR.lstrip("/")
    out = {str(p.relative_to(root)): (oct(p.stat().st_mode & 0o7777), p.read_bytes())
           for p in sorted(root.rglob("*"))}
    out["."] = oct(root.stat().st_mode & 0o7777)
    return out


def test_error_handling_keywords_leave_the_same_node_and_counts(lab2, content, tmp_path):
    by_ansible, by_harden = lab2.names()
    first = run_ansible(lab2, content, by_ansible), run_harden(lab2, content, by_harden, tmp_path)
    assert first[0] == first[1]
    assert (first[0]["rescued"], first[0]["ignored"], first[0]["skipped"]) == (1, 1, 1)
    again = run_ansible(lab2, content, by_ansible), run_harden(lab2, content, by_harden, tmp_path)
    # only the ignored failing probe: a command that ran counts as changed in ansible-core
    assert again[0] == again[1] and again[0]["changed"] == 1
    files = tree(lab2, by_ansible)
    assert files == tree(lab2, by_harden)
    assert files["probe.txt"][1] == b"rc=1 failed=True\n"
    assert files["rescue.txt"][1] == b"rescued breaks\n" and "never.txt" not in files
    assert files["tags.txt"][1] == b"all True\n"
    assert files["count"][1] == b"x\nx\nx\n"         # two tries, then one more on the 2nd run
