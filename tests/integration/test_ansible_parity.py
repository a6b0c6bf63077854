"""The same Ansible content, run by ansible-playbook and by harden on two lab nodes, leaves
the same files (bytes and modes), reports the same ok/changed/failed counts, and changes
nothing the second time. The content uses what real roles use: a role with defaults, vars,
templates, handlers that listen and a task include, a block with `when`, collection module
names, `k=v` arguments, unquoted modes, and `command` (no shell) next to `shell`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from support.ansible import ansible_counts, harden_counts

pytestmark = pytest.mark.lab

PARITY_DIR = "/etc/kubernetes/parity"      # node-private on the lab
CONTENT = {
    "site.yml": """\
        - name: parity
          hosts: all
          gather_facts: false
          become: true
          pre_tasks:
            - name: a probe that changes nothing
              ansible.builtin.command: /bin/true
              changed_when: false
          roles:
            - role: baseline
              level: 2
          tasks:
            - name: command runs no shell
              ansible.builtin.command: echo hi > {{ parity_dir }}/by-command
              changed_when: false
            - name: shell does
              ansible.builtin.shell: echo level-{{ level }} > {{ parity_dir }}/by-shell creates={{ parity_dir }}/by-shell
          post_tasks:
            - name: last
              ansible.builtin.copy:
                content: "post\\n"
                dest: "{{ parity_dir }}/post.txt"
                mode: "0600"
        """,
    "roles/baseline/defaults/main.yml": "parity_dir: /etc/kubernetes/parity\nlevel: 1\n",
    "roles/baseline/vars/main.yml": "banner: managed by a role\n",
    "roles/baseline/tasks/main.yml": """\
        - name: config dir
          ansible.builtin.file: path={{ parity_dir }} state=directory mode=0750
        - name: render config
          ansible.builtin.template: src=app.conf.j2 dest={{ parity_dir }}/app.conf mode=0640
          notify: config changed
        - import_tasks: perms.yml
        """,
    "roles/baseline/tasks/perms.yml": """\
        - name: files when the level asks
          when: level | int > 1
          block:
            - name: static
              ansible.builtin.copy:
                content: "static\\n"
                dest: "{{ parity_dir }}/static.txt"
                mode: 0600
            - name: skipped inside the block
              ansible.builtin.copy:
                content: "never\\n"
                dest: "{{ parity_dir }}/never.txt"
              when: level | int > 5
        """,
    "roles/baseline/handlers/main.yml": """\
        - name: record the change
          listen: config changed
          ansible.builtin.shell: echo changed >> {{ parity_dir }}/handler.log
        """,
    "roles/baseline/templates/app.conf.j2": ("level={{ level }}\n{% if level | int > 1 %}\n"
                                             "banner={{ banner }}\n{% endif %}\nend\n"),
}


@pytest.fixture(scope="module")
def lab2(lab_factory):
    """Two workers: the content needs two alike nodes, nothing of a control plane (whose
    emulated components would only cost CPU for the whole module)."""
    with lab_factory.running(control_planes=0, workers=2) as lab:
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parity")
    for name, text in CONTENT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def run_ansible(lab, content: Path, node: str) -> dict:
    return ansible_counts(lab, content, node, ("ok", "changed", "failed"))


def run_harden(lab, content: Path, node: str, state: Path) -> dict:
    return harden_counts(lab, content, node, state, ("ok", "changed", "failed"))


def tree(lab, node: str) -> dict:
    root = lab.node_root(node) / PARITY_DIR.lstrip("/")
    out = {}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = (oct(path.stat().st_mode & 0o7777),
                                            path.read_bytes() if path.is_file() else None)
    out["."] = oct(root.stat().st_mode & 0o7777)
    return out


def test_ansible_playbook_and_harden_leave_the_same_node_and_counts(lab2, content, tmp_path):
    by_ansible, by_harden = lab2.names()
    first = run_ansible(lab2, content, by_ansible), run_harden(lab2, content, by_harden, tmp_path)
    assert first[0] == first[1] and first[0]["changed"] >= 5
    again = run_ansible(lab2, content, by_ansible), run_harden(lab2, content, by_harden, tmp_path)
    assert again[0] == again[1] and again[0]["changed"] == 0
    files = tree(lab2, by_ansible)
    assert files == tree(lab2, by_harden)
    # role parameters (level: 2) are the role's own: the play's tasks see the role default
    assert "by-command" not in files and files["by-shell"][1] == b"level-1\n"
    # block tags drop their own newline (Ansible's trim_blocks)
    assert files["app.conf"] == ("0o640", b"level=2\nbanner=managed by a role\nend\n")
    assert files["static.txt"][0] == "0o600" and "never.txt" not in files
    assert files["handler.log"][1] == b"changed\n"
