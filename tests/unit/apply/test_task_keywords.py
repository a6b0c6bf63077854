"""Ansible's error-handling task keywords on a local node: failed_when, ignore_errors,
until/retries/delay, delegate_to: localhost, task any_errors_fatal, ansible_run_tags, and
blocks with rescue/always. What the run wrote is checked on the node's files; a host whose
failure nobody rescued is still rolled back byte for byte."""

from __future__ import annotations

import pytest

from harden.apply.playbook import load_playbook
from harden.errors import InputError

from support.local_node import Env, tree


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def lines(out, host="h1"):
    return [(r.task, r.status) for r in out.lines if r.host == host]


def test_ignore_errors_goes_on_counts_ignored_and_registers_the_failure(env):
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: fails
      command: "false"
      register: bad
      ignore_errors: true
    - name: sees the failure
      copy:
        dest: "{{ root }}/etc/seen"
        content: "{{ bad is failed }} {{ bad.rc }}\\n"
        mode: "0600"
""")
    assert result.exit_code == 0
    assert (env.root("h1") / "etc/seen").read_text() == "True 1\n"
    counts = result.hosts["h1"].as_dict()
    # as ansible-core counts: the ignored failure is also ok, and changed (the command ran)
    assert (counts["failed"], counts["ignored"], counts["ok"], counts["changed"]) == (0, 1, 2, 2)
    assert lines(out) == [("fails", "failed"), ("sees the failure", "changed")]


def test_ignore_errors_on_a_write_that_fails_goes_on_with_fresh_facts(env):
    (env.root("h1") / "etc/blocker").write_text("a file where a directory is needed\n")
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: cannot write
      copy: {dest: "{{ root }}/etc/blocker/x", content: "x", mode: "0600"}
      ignore_errors: true
    - name: goes on
      copy: {dest: "{{ root }}/etc/app.conf", content: "a = 3\\n", mode: "0600"}
""")
    assert result.exit_code == 0, out.lines
    assert lines(out) == [("cannot write", "failed"), ("goes on", "changed")]
    assert result.hosts["h1"].ignored == 1
    assert (env.root("h1") / "etc/app.conf").read_text() == "a = 3\n"
    # lock with the facts, the failed write, facts again, then the write with the commit
    # and unlock
    assert env.sessions["h1"].exec_count == 4


def test_failed_when_judges_a_command_instead_of_its_exit_code(env):
    before = tree(env.root("h1"))
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: exit 1 is fine here
      shell: "echo found; exit 1"
      register: probe
      failed_when: probe.rc not in [0, 1]
      changed_when: false
    - name: written
      copy: {dest: "{{ root }}/etc/app.conf", content: "a = 9\\n"}
    - name: output says no
      shell: "echo ERROR"
      register: check
      failed_when: "'ERROR' in check.stdout"
""")
    assert result.exit_code == 4
    assert lines(out) == [("exit 1 is fine here", "ok"), ("written", "changed"),
                          ("output says no", "failed")]
    assert "failed_when" in out.lines[-1].message
    assert tree(env.root("h1")) == before          # the host was rolled back


def test_failed_when_on_a_module_sees_its_registered_result(env):
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: must exist
      stat: {path: "{{ root }}/etc/missing"}
      register: st
      failed_when: not st.stat.exists
""")
    assert result.exit_code == 4 and lines(out) == [("must exist", "failed")]
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: a module error cleared by failed_when
      lineinfile: {path: "{{ root }}/etc/missing", line: "x"}
      failed_when: false
""")
    assert result.exit_code == 0 and lines(out) == [("a module error cleared by failed_when",
                                                     "ok")]


def test_until_reruns_a_command_until_it_holds_and_fails_when_retries_run_out(env):
    counter = env.root("h1") / "count"
    result, out = env.apply(f"""
- hosts: h1
  tasks:
    - name: third time lucky
      shell: "echo x >> {counter}; wc -l < {counter}"
      register: tries
      until: tries.stdout | int >= 3
      retries: 5
      delay: 0
    - name: attempts
      copy: {{dest: "{{{{ root }}}}/etc/attempts", content: "{{{{ tries.attempts }}}}\\n"}}
""")
    assert result.exit_code == 0, out.lines
    assert (env.root("h1") / "etc/attempts").read_text() == "3\n"
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: never
      command: "false"
      retries: 2
      delay: 0
""")
    assert result.exit_code == 4
    assert "retries exhausted after 3 attempts" in out.lines[-1].message


def test_delegate_to_localhost_runs_the_command_on_the_controller(env, tmp_path):
    marker = tmp_path / "on-controller"
    result, out = env.apply(f"""
- hosts: group
  tasks:
    - name: local
      shell: "echo {{{{ inventory_hostname }}}} >> {marker}"
      delegate_to: localhost
      run_once: true
""")
    assert result.exit_code == 0 and marker.read_text() == "h1\n"
    # lock with the facts, unlock: the command used no exec of the node
    assert env.sessions["h1"].exec_count == 2


def test_a_task_with_any_errors_fatal_stops_every_host(env):
    result, out = env.apply("""
- hosts: group
  tasks:
    - name: only h2 fails
      command: "{{ 'false' if inventory_hostname == 'h2' else 'true' }}"
      any_errors_fatal: true
    - name: later
      copy: {dest: "{{ root }}/etc/later", content: "x"}
""")
    assert result.exit_code == 4 and "any_errors_fatal" in out.stops[0]
    assert not (env.root("h2") / "etc/later").exists()
    # the run stops: a next play runs nowhere (other hosts may have finished this one)
    result, out = env.apply("""
- hosts: group
  tasks:
    - command: "{{ 'false' if inventory_hostname == 'h2' else 'true' }}"
      any_errors_fatal: true
- hosts: group
  tasks:
    - copy: {dest: "{{ root }}/etc/next-play", content: "x"}
""")
    assert not any((env.root(h) / "etc/next-play").exists() for h in ("h1", "h2", "h3"))


def test_ansible_run_tags_lists_the_selected_tags(env):
    play = """
- hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/tags", content: "{{ ansible_run_tags | join(',') }}\\n"}
      tags: [always]
"""
    env.apply(play)
    assert (env.root("h1") / "etc/tags").read_text() == "all\n"
    env.apply(play, tags=["audit", "x"])
    assert (env.root("h1") / "etc/tags").read_text() == "audit,x\n"


RESCUE = """
- hosts: h1
  tasks:
    - name: guarded
      block:
        - name: first write
          copy: {dest: "{{ root }}/etc/app.conf", content: "a = 5\\n"}
        - name: breaks
          fail: {msg: broken}
        - name: never reached
          copy: {dest: "{{ root }}/etc/unreached", content: "x"}
      rescue:
        - name: recover
          copy: {dest: "{{ root }}/etc/rescued", content: "{{ ansible_failed_task.name }}\\n"}
%s
      always:
        - name: clean up
          copy: {dest: "{{ root }}/etc/always", content: "done\\n"}
    - name: after the block
      copy: {dest: "{{ root }}/etc/after", content: "x\\n"}
"""


def test_rescue_catches_the_failure_and_the_host_goes_on(env):
    result, out = env.apply(RESCUE % "")
    assert result.exit_code == 0, out.lines
    etc = env.root("h1") / "etc"
    assert (etc / "rescued").read_text() == "breaks\n" and (etc / "always").exists()
    assert (etc / "after").exists() and not (etc / "unreached").exists()
    assert (etc / "app.conf").read_text() == "a = 5\n"    # kept, and backed up for rollback
    counts = result.hosts["h1"].as_dict()
    assert (counts["failed"], counts["rescued"]) == (0, 1)
    assert [t for t, _ in lines(out)] == ["first write", "breaks", "recover", "clean up",
                                          "after the block"]


def test_a_failing_rescue_runs_always_then_rolls_the_host_back(env):
    before = tree(env.root("h1"))
    result, out = env.apply(RESCUE % "        - name: rescue fails too\n          fail: {}")
    assert result.exit_code == 4
    assert [t for t, _ in lines(out)] == ["first write", "breaks", "recover",
                                          "rescue fails too", "clean up"]
    assert result.hosts["h1"].rolled_back == 1
    assert tree(env.root("h1")) == before


def test_always_runs_after_an_uncaught_failure_and_the_host_is_still_rolled_back(env):
    before = tree(env.root("h1"))
    result, out = env.apply("""
- hosts: h1
  tasks:
    - block:
        - name: write
          copy: {dest: "{{ root }}/etc/app.conf", content: "a = 7\\n"}
        - name: breaks
          command: "false"
      always:
        - name: always
          copy: {dest: "{{ root }}/etc/always", content: "x"}
    - name: not after a failure
      copy: {dest: "{{ root }}/etc/after", content: "x"}
""")
    assert result.exit_code == 4
    assert [t for t, _ in lines(out)] == ["write", "breaks", "always"]
    assert tree(env.root("h1")) == before


@pytest.mark.parametrize("task, message", [
    ("copy: {dest: /x, content: x}\n      until: x is defined", "until is supported on command"),
    ("command: 'true'\n      delegate_to: h2", "only localhost"),
    ("copy: {dest: /x, content: x}\n      delegate_to: localhost", "copy writes a node's"),
    ("command: 'true'\n      until: true\n      retries: many", "retries must be a number"),
])
def test_keywords_harden_cannot_honour_are_refused_at_load(tmp_path, task, message):
    path = tmp_path / "play.yml"
    path.write_text(f"- hosts: all\n  tasks:\n    - {task}\n")
    with pytest.raises(InputError, match=message) as err:
        load_playbook(str(path))
    assert err.value.line >= 3


def test_a_command_reads_its_stdin_argument(env):
    result, out = env.apply("""
- hosts: h1
  tasks:
    - command: cat
      args:
        stdin: "line one"
      register: seen
    - copy: {dest: "{{ root }}/etc/seen", content: "{{ seen.stdout }}|"}
""")
    assert result.exit_code == 0
    assert (env.root("h1") / "etc/seen").read_text() == "line one|"


def test_a_task_skipped_by_when_registers_a_skipped_result(env):
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: skipped
      stat: {path: /etc}
      when: false
      register: st
    - copy:
        dest: "{{ root }}/etc/seen"
        content: "{{ st.changed }} {{ st is skipped }} {{ st.stat is defined }}\\n"
""")
    assert result.exit_code == 0
    assert (env.root("h1") / "etc/seen").read_text() == "False True False\n"


def test_ignore_errors_may_be_a_template_and_a_task_overrides_its_block(env):
    result, out = env.apply("""
- hosts: h1
  tasks:
    - block:
        - name: ignored only in check mode
          command: "false"
          ignore_errors: "{{ ansible_check_mode }}"
      ignore_errors: true
""")
    assert result.exit_code == 4 and result.hosts["h1"].failed == 1
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: ignored outside check mode
      command: "false"
      check_mode: false
      ignore_errors: "{{ not ansible_check_mode }}"
""")
    assert result.exit_code == 0 and result.hosts["h1"].ignored == 1


def test_a_loop_over_no_items_is_one_skipped_task_as_in_ansible(env):
    result, out = env.apply("""
- hosts: h1
  tasks:
    - name: nothing to do
      file: {path: "{{ item }}", mode: "0600"}
      loop: []
      register: nothing
    - copy: {dest: "{{ root }}/etc/seen", content: "{{ nothing is skipped }}\\n"}
""")
    assert result.exit_code == 0 and lines(out)[0] == ("nothing to do", "skipped")
    assert result.hosts["h1"].skipped == 1
    assert (env.root("h1") / "etc/seen").read_text() == "True\n"
