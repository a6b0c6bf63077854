"""Registered results live for the whole run and other hosts read them through `hostvars`
(with Ansible's `extract`); a `check_mode: true` task leaves the node's facts as they are."""

from __future__ import annotations

from support.local_node import run_play

TWO_PLAYS = """
- hosts: all
  tasks:
    - name: look
      command:
        cmd: "echo seen-on-{{ inventory_hostname }}"
      check_mode: false
      changed_when: false
      register: look
- hosts: all
  tasks:
    - name: every host's result, in group order
      copy:
        dest: "{{ root }}/seen"
        content: "{{ groups['all'] | map('extract', hostvars, ['look', 'stdout']) | join(',') }}"
"""


def test_a_later_play_reads_registered_results_of_every_host(tmp_path):
    result, out, _ = run_play(tmp_path, TWO_PLAYS, {})
    assert result.exit_code == 0, [(t.task, t.status, t.message) for t in out.lines]
    assert (tmp_path / "h1" / "seen").read_text() == "seen-on-h1"


CHECK_ONLY_THEN_CREATE = """
- hosts: all
  tasks:
    - name: would create it (check only)
      copy:
        dest: "{{ root }}/etc/made"
        content: "first\\n"
      check_mode: true
    - name: create it unless it exists
      copy:
        dest: "{{ root }}/etc/made"
        content: "second\\n"
        force: false
"""


def test_a_check_mode_task_does_not_pretend_its_change_happened(tmp_path):
    result, out, _ = run_play(tmp_path, CHECK_ONLY_THEN_CREATE, {})
    assert result.exit_code == 0, [(t.task, t.status, t.message) for t in out.lines]
    assert (tmp_path / "h1" / "etc" / "made").read_text() == "second\n"


def test_under_check_a_check_mode_task_does_not_pretend_either(tmp_path):
    """The real run writes the second task (the first never writes): --check says so in both
    check modes, and writes nothing."""
    for mode in ("predict", "ansible"):
        root = tmp_path / mode
        result, out, _ = run_play(root, CHECK_ONLY_THEN_CREATE, {}, check=True, check_mode=mode)
        statuses = [(t.task, t.status) for t in out.lines if t.task]
        assert ("create it unless it exists", "changed") in statuses, (mode, statuses)
        assert result.exit_code == 2 and not (root / "h1" / "etc" / "made").exists()


def test_extract_of_a_missing_result_is_an_error_naming_it():
    import pytest

    from harden.errors import InputError
    from harden.apply.templating import render_string

    hostvars = {"cp1": {"look": {"stdout": "x"}}, "cp2": {}}
    text = "{{ ['cp1', 'cp2'] | map('extract', hostvars, ['look', 'stdout']) | list }}"
    with pytest.raises(InputError, match=r"\['cp2'\] has no 'look'"):
        render_string(text, {"hostvars": hostvars})
