"""Variables from files and lookups, run by ansible-playbook and by harden on two lab nodes:
include_vars found by with_first_found in a role's vars/ (an undefined candidate left out),
set_fact with a templated name guarded by lookup('varnames'), the file, template, env, vars,
fileglob, first_found, items, dict and subelements lookups (lookup(), query(),
q() and with_<lookup>, with a collection's name; community.general's flattened, not in
ansible-core, is covered by the unit tests) and `environment` on play, block and
task. Both leave the same files (bytes and modes) and report the same counts, twice, the
second time changing nothing; `--check` on fresh nodes reports the same counts and writes
nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from support.ansible import ansible_counts, harden_counts

pytestmark = pytest.mark.lab

PARITY_DIR = "/etc/kubernetes/parity-vars"      # node-private on the lab
COUNTS = ("ok", "changed", "failed", "skipped", "rescued", "ignored")
SITE = """\
    - name: vars and lookups
      hosts: all
      gather_facts: false
      become: true
      environment: {PARITY_A: play, PARITY_B: play}
      vars:
        parity_dir: /etc/kubernetes/parity-vars
        distro: Debian
        os_user_choice: from-play
      roles:
        - varsrole
    """
ROLE = {
    "tasks/main.yml": """\
        - name: dir
          ansible.builtin.file: path={{ parity_dir }} state=directory mode=0750
        - name: Fetch OS dependent variables
          ansible.builtin.include_vars:
            file: "{{ item }}"
            name: os_vars
          with_first_found:
            - files:
                - "{{ distro }}_{{ distro_major_undefined }}.yml"
                - "{{ distro }}.yml"
                - Fallback.yml
              skip: true
        - name: Set OS dependent variables, if not already defined
          ansible.builtin.set_fact:
            "{{ item.key }}": "{{ item.value }}"
          when: not lookup('varnames', '^' + item.key + '$')
          with_dict: "{{ os_vars }}"
        - name: more vars from a directory
          ansible.builtin.include_vars: {dir: extra, files_matching: "^b", name: extra_b}
        - name: lookups
          ansible.builtin.copy:
            dest: "{{ parity_dir }}/lookups.txt"
            mode: "0640"
            content: |
              {{ os_pkg }} {{ os_user_choice }} {{ extra_b | to_json }}
              {{ lookup('file', 'banner.txt') }}
              {{ lookup('template', 'motd.j2') }}
              {{ lookup('env', 'PARITY_NO_SUCH_VAR', default='dflt') }}
              {{ lookup('vars', 'distro') }} {{ q('vars', 'distro') }}
              {{ query('fileglob', '*.txt') | map('basename') | sort | join(',') }}
              {{ lookup('first_found', 'nothing.txt', 'files/banner.txt') | basename }}
              {{ lookup('items', ['a', 'b']) }} {{ q('ansible.builtin.items', [1, [2, 3]]) }}
              {{ q('dict', {'k': 'v'}) }}
        - name: list
          ansible.builtin.shell: "printf '%s\\\\n' {{ item }}-x {{ item }}-y"
          with_ansible.builtin.items:
            - "{{ os_paths }}"
            - [b1]
          register: found
          changed_when: false
        - name: each line
          ansible.builtin.copy:
            dest: "{{ parity_dir }}/{{ item.1 }}"
            content: "{{ item.0.item }}\\n"
            mode: "0600"
          with_subelements:
            - "{{ found.results }}"
            - stdout_lines
            - skip_missing: true
        - name: environment
          block:
            - name: exported
              ansible.builtin.shell: >-
                echo "$PARITY_A $PARITY_B $PARITY_C $PARITY_D" > {{ parity_dir }}/env.txt.new &&
                if cmp -s {{ parity_dir }}/env.txt.new {{ parity_dir }}/env.txt;
                then rm {{ parity_dir }}/env.txt.new; echo same;
                else mv {{ parity_dir }}/env.txt.new {{ parity_dir }}/env.txt; fi
              environment: {PARITY_C: "{{ distro }}", PARITY_D: 5}
              register: exported
              changed_when: exported.stdout != 'same'
          environment: {PARITY_B: block}
        """,
    "vars/Debian.yml": "os_pkg: apt\nos_user_choice: from-role\nos_paths: [a1, a2]\n",
    "vars/Fallback.yml": "os_pkg: none\nos_paths: []\n",
    "vars/extra/a.yml": "a: 1\n",
    "vars/extra/b1.yml": "b: 1\n",
    "vars/extra/b2.yml": "b: 2\nc: 3\n",
    "files/banner.txt": "Authorised use only\n\n",
    "files/other.txt": "x\n",
    "templates/motd.j2": "{% if true %}\nhello {{ distro }}\n{% endif %}\n",
}


@pytest.fixture(scope="module")
def lab2(lab_factory):
    """Two workers: the content needs two alike nodes, nothing of a control plane (whose
    emulated components would only cost CPU for the whole module)."""
    with lab_factory.running(control_planes=0, workers=2) as lab:
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parity-vars")
    (root / "site.yml").write_text(textwrap.dedent(SITE))
    for name, text in ROLE.items():
        path = root / "roles" / "varsrole" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def run_ansible(lab, content: Path, node: str, *extra: str) -> dict:
    return ansible_counts(lab, content, node, COUNTS, *extra)


def run_harden(lab, content: Path, node: str, state: Path, *extra: str) -> dict:
    return harden_counts(lab, content, node, state, COUNTS, *extra, expect=2 if extra else 0)


def tree(lab, node: str) -> dict:
    root = lab.node_root(node) / PARITY_DIR.lstrip("/")
    out = {str(p.relative_to(root)): (oct(p.stat().st_mode & 0o7777), p.read_bytes())
           for p in sorted(root.rglob("*"))}
    out["."] = oct(root.stat().st_mode & 0o7777)
    return out


@pytest.mark.timeout(600)
def test_check_mode_on_fresh_nodes_reports_the_same_counts_and_writes_nothing(lab2, content,
                                                                             tmp_path):
    by_ansible, by_harden = lab2.names()
    counts = (run_ansible(lab2, content, by_ansible, "--check"),
              run_harden(lab2, content, by_harden, tmp_path, "--check"))
    assert counts[0] == counts[1]
    for node in (by_ansible, by_harden):
        assert not (lab2.node_root(node) / PARITY_DIR.lstrip("/")).exists()


@pytest.mark.timeout(900)          # ansible-playbook twice is slow on a busy machine
def test_include_vars_lookups_and_environment_leave_the_same_node_and_counts(lab2, content,
                                                                            tmp_path):
    by_ansible, by_harden = lab2.names()
    first = run_ansible(lab2, content, by_ansible), run_harden(lab2, content, by_harden, tmp_path)
    assert first[0] == first[1]
    # a loop counts once: the set_fact loop with one item skipped is ok, as in ansible-core
    assert (first[0]["ok"], first[0]["changed"], first[0]["skipped"]) == (8, 4, 0)
    again = run_ansible(lab2, content, by_ansible), run_harden(lab2, content, by_harden, tmp_path)
    assert again[0] == again[1] and again[0]["changed"] == 0
    files = tree(lab2, by_ansible)
    assert files == tree(lab2, by_harden)
    assert files["env.txt"][1] == b"play block Debian 5\n"
    assert sorted(k for k in files if "-" in k) == ["a1-x", "a1-y", "a2-x", "a2-y", "b1-x",
                                                     "b1-y"]
    assert files["lookups.txt"][1].startswith(b"apt from-play {\"b\": 2, \"c\": 3}\n"
                                              b"Authorised use only\nhello Debian\n")
