"""include_vars, with_first_found, lookups (lookup/query/q and with_<lookup>), with_subelements,
set_fact with a templated name and `environment`, on a local node, as ansible-core runs
them: in the shape dev-sec's os_hardening uses them (its own content is not copied here)."""

from __future__ import annotations

import os

import pytest

from harden.apply.lookups import LookupFailed, run
from harden.apply.playbook import load_playbook
from harden.errors import InputError

from support.local_node import Env


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def lines(out, host="h1"):
    return [(r.task, r.status) for r in out.lines if r.host == host]


def _role(env, tasks: str, files: dict[str, str]) -> None:
    role = env.tmp / "roles" / "osh"
    for name, text in {"tasks/main.yml": tasks, **files}.items():
        (role / name).parent.mkdir(parents=True, exist_ok=True)
        (role / name).write_text(text)


OS_VARS_TASKS = """
- name: Fetch OS dependent variables
  include_vars:
    file: "{{ item }}"
    name: os_vars
  with_first_found:
    - files:
        - "{{ distro }}_{{ undefined_major }}.yml"
        - "{{ distro }}.yml"
        - "Fallback.yml"
      skip: true
- name: Set OS dependent variables, if not already defined by user
  set_fact:
    "{{ item.key }}": "{{ item.value }}"
  when: not lookup('varnames', '^' + item.key + '$')
  with_dict: "{{ os_vars }}"
- name: Write what won
  copy:
    dest: "{{ root }}/etc/os.conf"
    content: "{{ pkg }} {{ user_set }}\\n"
    mode: "0600"
"""


def test_include_vars_from_first_found_role_vars_then_set_fact_only_what_is_not_set(env):
    _role(env, OS_VARS_TASKS, {"vars/Debian.yml": "pkg: apt\nuser_set: from-role\n",
                               "vars/Fallback.yml": "pkg: none\n"})
    result, out = env.apply("""
- hosts: h1
  vars: {distro: Debian, user_set: from-play}
  roles: [osh]
""")
    assert result.exit_code == 0, out.lines
    assert (env.root("h1") / "etc/os.conf").read_text() == "apt from-play\n"
    assert [s for _, s in lines(out)] == ["ok", "ok", "skipped", "changed"]


def test_first_found_with_skip_and_nothing_found_runs_no_item(env):
    _role(env, OS_VARS_TASKS.split("- name: Set")[0], {})
    result, out = env.apply("- hosts: h1\n  vars: {distro: Gentoo}\n  roles: [osh]\n")
    assert result.exit_code == 0 and lines(out) == [("Fetch OS dependent variables",
                                                     "skipped")]


def test_first_found_without_skip_fails_the_task(env):
    _role(env, OS_VARS_TASKS.split("- name: Set")[0].replace("skip: true", "skip: false"), {})
    result, out = env.apply("- hosts: h1\n  vars: {distro: Gentoo}\n  roles: [osh]\n")
    assert result.exit_code == 4
    assert "No file was found when using first_found" in out.lines[-1].message


def test_include_vars_dir_with_files_matching_and_free_form_file(env):
    _role(env, """
- include_vars: {dir: extra, files_matching: "^b", name: bs}
- include_vars: main.yml
- copy:
    dest: "{{ root }}/etc/v.conf"
    content: "{{ bs | to_json }} {{ from_main }}\\n"
    mode: "0600"
""", {"vars/main.yml": "from_main: 1\n", "vars/extra/a.yml": "a: 1\n",
      "vars/extra/b1.yml": "b: 1\n", "vars/extra/b2.yml": "b: 2\nc: 3\n"})
    result, out = env.apply("- hosts: h1\n  roles: [osh]\n")
    assert result.exit_code == 0, out.lines
    assert (env.root("h1") / "etc/v.conf").read_text() == '{"b": 2, "c": 3} 1\n'


def test_lookups_file_template_env_vars_fileglob_and_query(env, monkeypatch):
    monkeypatch.setenv("HARDEN_TEST_LOOKUP", "from-env")
    _role(env, """
- copy:
    dest: "{{ root }}/etc/l.conf"
    content: |
      {{ lookup('file', 'banner.txt') }}
      {{ lookup('template', 'motd.j2') }}
      {{ lookup('env', 'HARDEN_TEST_LOOKUP') }} {{ lookup('env', 'NO_SUCH_VAR_X', default='d') }}
      {{ lookup('vars', 'greeting') }} {{ q('vars', 'greeting') }}
      {{ query('fileglob', '*.txt') | map('basename') | sort }}
      {{ lookup('items', ['a', 'b']) }} {{ q('flattened', [1, [2, [3]]]) }}
    mode: "0600"
""", {"files/banner.txt": "Authorised use only\n\n", "files/other.txt": "x\n",
      "templates/motd.j2": "{% if true %}\nhello {{ greeting }}\n{% endif %}\n"})
    result, out = env.apply("- hosts: h1\n  vars: {greeting: hi}\n  roles: [osh]\n")
    assert result.exit_code == 0, out.lines
    assert (env.root("h1") / "etc/l.conf").read_text() == (
        "Authorised use only\nhello hi\n\nfrom-env d\nhi ['hi']\n"
        "['banner.txt', 'other.txt']\na,b [1, 2, 3]\n")


def test_with_flattened_and_subelements_as_os_hardening_loops(env):
    result, out = env.apply("""
- hosts: h1
  vars: {paths_a: [a1, a2], paths_b: [b1]}
  tasks:
    - name: list
      shell: "printf '%s\\\\n' {{ item }}-x {{ item }}-y"
      with_community.general.flattened:
        - "{{ paths_a }}"
        - "{{ paths_b }}"
      register: found
      changed_when: false
    - name: each line
      copy:
        dest: "{{ root }}/etc/{{ item.1 }}"
        content: "{{ item.0.item }}\\n"
        mode: "0600"
      with_subelements:
        - "{{ found.results }}"
        - stdout_lines
""")
    assert result.exit_code == 0, out.lines
    made = sorted(p.name for p in (env.root("h1") / "etc").iterdir() if "-" in p.name)
    assert made == ["a1-x", "a1-y", "a2-x", "a2-y", "b1-x", "b1-y"]
    assert (env.root("h1") / "etc/a2-y").read_text() == "a2\n"


def test_subelements_skip_missing_and_missing_key_error():
    data = [{"n": 1, "subs": [1, 2]}, {"n": 2}]
    assert run("subelements", [data, "subs", {"skip_missing": True}], {}) == \
        [[data[0], 1], [data[0], 2]]
    with pytest.raises(LookupFailed, match="could not find 'subs' key"):
        run("subelements", [data, "subs"], {})


def test_environment_is_exported_for_commands_play_block_task(env):
    result, out = env.apply("""
- hosts: h1
  environment: {A: play, B: play}
  vars: {secretish: s3cr3t}
  tasks:
    - block:
        - name: env
          shell: "echo $A $B $C $D > {{ root }}/etc/env.out"
          environment: {C: "{{ secretish }}"}
      environment: {B: block, D: 5}
""")
    assert result.exit_code == 0, out.lines
    assert (env.root("h1") / "etc/env.out").read_text() == "play block s3cr3t 5\n"
    assert all("s3cr3t" not in (line.message or "") for line in out.lines)


@pytest.mark.parametrize("task, message", [
    ("debug: {msg: x}\n      with_nosuchlookup: [1]", "no lookup named 'nosuchlookup'"),
    ("debug: {msg: x}\n      environment: [1]", "environment must be a mapping"),
    ("debug: {msg: x}\n      environment: {'1A': x}", "not an environment variable name"),
    ("include_vars: {file: a.yml, dir: b}", "give file"),
])
def test_bad_keywords_are_refused_at_load_with_file_and_line(tmp_path, task, message):
    path = tmp_path / "p.yml"
    path.write_text(f"- hosts: all\n  tasks:\n    - {task}\n")
    with pytest.raises(InputError, match=message) as caught:
        load_playbook(str(path))
    assert caught.value.path == str(path) and caught.value.line in (3, 4)


def test_templated_set_fact_name_that_is_no_identifier_fails_the_task(env):
    result, out = env.apply("""
- hosts: h1
  tasks:
    - set_fact: {"{{ item }}": 1}
      with_items: ["not a name"]
""")
    assert result.exit_code == 4 and "not a variable name" in out.lines[-1].message


def test_search_path_prefers_role_then_task_dir_then_playbook(env):
    (env.tmp / "files").mkdir()
    (env.tmp / "files" / "which.txt").write_text("playbook\n")
    _role(env, """
- copy: {dest: "{{ root }}/etc/w", content: "{{ lookup('file', 'which.txt') }}", mode: "0600"}
""", {"files/which.txt": "role\n"})
    env.apply("- hosts: h1\n  roles: [osh]\n")
    assert (env.root("h1") / "etc/w").read_text() == "role"
    os.remove(env.tmp / "roles/osh/files/which.txt")
    env.apply("- hosts: h1\n  roles: [osh]\n")
    assert (env.root("h1") / "etc/w").read_text() == "playbook"
