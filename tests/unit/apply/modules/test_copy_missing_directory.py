"""`copy`/`template` to a dest whose directory is missing: Ansible's copy module fails the task
("Destination directory D does not exist") and creates nothing; in --check its action plugin
reports changed first. harden does the same, and plans nothing that would make the directory."""

from __future__ import annotations

import pytest

from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, plan

DEST = "/etc/kubernetes/new/x.conf"


@pytest.mark.parametrize("module, args", [
    ("copy", {"dest": DEST, "content": "x\n"}),
    ("template", {"dest": DEST, "src": "audit-policy.yaml.j2"}),
])
def test_missing_directory_fails_the_task_and_plans_nothing(module, args):
    facts = make_facts(absent=["/etc/kubernetes/new", DEST])
    with pytest.raises(TaskFailed, match="^Destination directory /etc/kubernetes/new does "
                                         "not exist$"):
        plan(module, args, facts)


def test_in_check_mode_it_is_changed_and_says_the_real_run_fails():
    facts = make_facts(absent=["/etc/kubernetes/new", DEST])
    changes = plan("copy", {"dest": DEST, "content": "x\n"}, facts, check_mode=True)
    assert len(changes) == 1 and "does not exist: a real run fails" in changes[0].summary


def test_remote_src_copy_checks_the_directory_too():
    facts = make_facts(file_state("/etc/src.conf", b"s\n"), absent=["/etc/kubernetes/new", DEST])
    with pytest.raises(TaskFailed, match="Destination directory"):
        plan("copy", {"dest": DEST, "src": "/etc/src.conf", "remote_src": True}, facts)


@pytest.mark.parametrize("mode", [{"as_found": True}, {"predicting": False}],
                         ids=["check-mode-ansible", "task-check-mode-in-a-real-run"])
def test_remote_src_copy_fails_where_ansibles_module_runs_in_check_mode(mode):
    """With remote_src no action plugin answers first: ansible-core's copy module runs in
    check mode (--check-mode ansible, or the task's own check_mode: true in a real run) and
    fails on the missing directory (modules/copy.py, main())."""
    facts = make_facts(file_state("/etc/src.conf", b"s\n"), absent=["/etc/kubernetes/new", DEST])
    with pytest.raises(TaskFailed, match="^Destination directory /etc/kubernetes/new does "
                                         "not exist$"):
        plan("copy", {"dest": DEST, "src": "/etc/src.conf", "remote_src": True}, facts,
             check_mode=True, **mode)


def test_remote_src_copy_in_the_predictive_check_says_what_the_real_run_meets():
    """The predictive check does not run commands: one of them (`mkdir`) may still make the
    directory, so the copy is changed with the note, and later tasks are still reported."""
    facts = make_facts(file_state("/etc/src.conf", b"s\n"), absent=["/etc/kubernetes/new", DEST])
    changes = plan("copy", {"dest": DEST, "src": "/etc/src.conf", "remote_src": True}, facts,
                   check_mode=True)
    assert len(changes) == 1 and "does not exist: a real run fails" in changes[0].summary


def test_judged_on_the_node_as_found_the_note_says_only_that_it_is_missing():
    facts = make_facts(absent=["/etc/kubernetes/new", DEST])
    changes = plan("copy", {"dest": DEST, "content": "x\n"}, facts, check_mode=True,
                   as_found=True)
    assert [c.summary for c in changes] == [
        f"create {DEST} (its directory /etc/kubernetes/new does not exist yet)"]


def test_a_directory_an_earlier_task_makes_is_enough():
    facts = make_facts(absent=["/etc/kubernetes/new", DEST])
    for change in plan("file", {"path": "/etc/kubernetes/new", "state": "directory"}, facts):
        change.record_in(facts)
    changes = plan("copy", {"dest": DEST, "content": "x\n"}, facts)
    assert [c.path for c in changes] == [DEST]
    # an existing dest with unchanged content is a no-op, wherever its directory is
    assert plan("copy", {"dest": DEST, "content": "x\n"},
                make_facts(file_state(DEST, b"x\n", 0o644))) == []
