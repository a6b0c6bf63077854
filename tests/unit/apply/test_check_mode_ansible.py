"""`--check-mode ansible`: every task judged against the node as found, as ansible-playbook
--check judges it, where the default (predict) plans each task on what the earlier tasks leave.
The scripts really run with the local sh against a temporary root (support.local_node)."""

from __future__ import annotations

import pytest

from support.local_node import Env, tree

TWICE = """
- name: twice
  hosts: group
  tasks:
    - name: first write
      copy:
        dest: "{{ root }}/etc/app.conf"
        content: "a = 2\\n"
    - name: same write again
      copy:
        dest: "{{ root }}/etc/app.conf"
        content: "a = 2\\n"
    - name: a line added
      lineinfile:
        path: "{{ root }}/etc/app.conf"
        line: "b = 1"
    - name: the same line again
      lineinfile:
        path: "{{ root }}/etc/app.conf"
        line: "b = 1"
    - name: look at it
      stat:
        path: "{{ root }}/etc/new.conf"
      register: seen
      check_mode: false
    - name: made
      copy:
        dest: "{{ root }}/etc/new.conf"
        content: "new\\n"
    - name: look again
      stat:
        path: "{{ root }}/etc/new.conf"
      register: again
    - name: only when it is there
      debug:
        msg: "there"
      when: again.stat.exists
"""

INTO_NEW_DIR = """
- name: into a new directory
  hosts: group
  tasks:
    - name: make the directory
      file:
        path: "{{ root }}/etc/new.d"
        state: directory
    - name: a file in it
      copy:
        dest: "{{ root }}/etc/new.d/a.conf"
        content: "a\\n"
    - name: a copy of a node file into it
      copy:
        src: "{{ root }}/etc/app.conf"
        dest: "{{ root }}/etc/new.d/app.conf"
        remote_src: true
    - name: after the copy
      debug:
        msg: "reached"
"""


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def statuses(result, host="h1") -> list[tuple[str, str]]:
    return [(t.task, t.status) for t in result.tasks if t.host == host]


def test_a_file_written_twice_is_changed_twice_judged_on_the_node_as_found(env):
    before = tree(env.root("h1"))
    result, _ = env.apply(TWICE, check=True, diff=True, limit="h1", check_mode="ansible")
    assert statuses(result) == [
        ("first write", "changed"), ("same write again", "changed"),
        ("a line added", "changed"), ("the same line again", "changed"),
        ("look at it", "ok"), ("made", "changed"), ("look again", "ok"),
        ("only when it is there", "skipped")]
    assert result.exit_code == 2 and result.check_mode == "ansible"
    assert tree(env.root("h1")) == before
    # every hunk is against the untouched file, as Ansible's --check --diff shows it
    diffs = {t.task: t.diff for t in result.tasks}
    assert "-a = 1\n+a = 2\n" in diffs["same write again"]
    assert diffs["a line added"] == diffs["the same line again"]
    assert "+b = 1\n" in diffs["the same line again"] and "a = 2" not in \
        diffs["the same line again"]


def test_the_default_still_predicts_what_the_real_run_reports(env):
    predicted, _ = env.apply(TWICE, check=True, limit="h1")
    assert statuses(predicted) == [
        ("first write", "changed"), ("same write again", "ok"),
        ("a line added", "changed"), ("the same line again", "ok"),
        ("look at it", "ok"), ("made", "changed"), ("look again", "ok"),
        ("only when it is there", "ok")]
    assert predicted.check_mode == "predict"
    real, _ = env.apply(TWICE, limit="h1")
    assert statuses(real) == statuses(predicted)


def test_a_remote_copy_into_a_directory_an_earlier_task_makes_fails_the_host(env):
    before = tree(env.root("h1"))
    result, _ = env.apply(INTO_NEW_DIR, check=True, limit="h1", check_mode="ansible")
    assert statuses(result) == [("make the directory", "changed"), ("a file in it", "changed"),
                                ("a copy of a node file into it", "failed")]
    failed = result.tasks[-1]
    assert failed.message == \
        f"Destination directory {env.root('h1')}/etc/new.d does not exist"
    assert "does not exist yet" not in failed.message
    assert result.exit_code == 4 and tree(env.root("h1")) == before


def test_predicted_the_remote_copy_into_a_new_directory_goes_on(env):
    result, _ = env.apply(INTO_NEW_DIR, check=True, limit="h1")
    assert [s for _, s in statuses(result)] == ["changed", "changed", "changed", "ok"]
    assert result.exit_code == 2


def test_a_check_mode_false_task_is_what_later_tasks_see(env):
    """Ansible runs a `check_mode: false` task for real under --check, so the tasks after it
    see what it made; harden writes only commands then, but plans the rest on it."""
    play = INTO_NEW_DIR.replace("state: directory\n",
                                "state: directory\n      check_mode: false\n", 1)
    result, _ = env.apply(play, check=True, limit="h1", check_mode="ansible")
    assert [s for _, s in statuses(result)] == ["changed", "changed", "changed", "ok"]


def test_nothing_to_change_is_ok_in_both_modes(env):
    play = TWICE.replace('"a = 2\\n"', '"a = 1\\n"').replace('"b = 1"', '"a = 1"')
    play = play.split("    - name: look at it")[0]
    for mode in ("predict", "ansible"):
        result, _ = env.apply(play, check=True, limit="h1", check_mode=mode)
        assert [s for _, s in statuses(result)] == ["ok"] * 4 and result.exit_code == 0


TWO_PLAYS = """
- name: one
  hosts: group
  tasks:
    - name: written in the first play
      copy:
        dest: "{{ root }}/etc/app.conf"
        content: "a = 2\\n"
- name: two
  hosts: group
  tasks:
    - name: the same write in the next play
      copy:
        dest: "{{ root }}/etc/app.conf"
        content: "a = 2\\n"
"""


def test_a_later_play_plans_on_what_an_earlier_play_would_change_in_the_default_check(env):
    """Each play gathers its facts again; in --check nothing was written, so the changes
    planned by earlier plays are fed into them again (else the check of the second play
    says `changed` where the real run says `ok`)."""
    predicted, _ = env.apply(TWO_PLAYS, check=True, limit="h1")
    as_found, _ = env.apply(TWO_PLAYS, check=True, limit="h1", check_mode="ansible")
    real, _ = env.apply(TWO_PLAYS, limit="h1")
    assert statuses(predicted) == statuses(real) == [
        ("written in the first play", "changed"), ("the same write in the next play", "ok")]
    assert statuses(as_found) == [("written in the first play", "changed"),
                                  ("the same write in the next play", "changed")]


FROM_NEW_DIR = """
- name: from a new directory
  hosts: group
  tasks:
    - name: make the source directory
      file:
        path: "{{ root }}/etc/src.d"
        state: directory
    - name: copy it into etc
      copy:
        src: "{{ root }}/etc/src.d/"
        dest: "{{ root }}/etc"
        remote_src: true
"""


def test_a_remote_copy_from_a_directory_an_earlier_task_makes_fails_as_in_ansible(env):
    result, _ = env.apply(FROM_NEW_DIR, check=True, limit="h1", check_mode="ansible")
    assert statuses(result) == [("make the source directory", "changed"),
                                ("copy it into etc", "failed")]
    assert result.tasks[-1].message == f"Source {env.root('h1')}/etc/src.d/ not found"
    assert result.exit_code == 4
