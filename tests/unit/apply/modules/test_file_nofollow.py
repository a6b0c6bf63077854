"""`file` with `follow: false`, as ansible-core's file module on Linux: a path that is not a
symlink is handled as with `follow: true`; on a symlink, `state: file`/`directory` fail with
Ansible's messages, `mode` changes nothing (no lchmod), and an owner/group change of the link
itself is refused (harden could not roll it back)."""

from __future__ import annotations

import pytest

from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, plan

LINK = "/etc/kubernetes/current.pem"


def facts_for(target_mode=0o600, link_to="/var/lib/kubelet/pki/x.pem"):
    facts = make_facts(file_state(LINK, mode=target_mode))      # stat follows the link
    facts.links[LINK] = link_to
    return facts


def test_not_a_symlink_is_the_same_as_follow_true():
    facts = make_facts(file_state("/etc/kubernetes/admin.conf", mode=0o644))
    facts.links["/etc/kubernetes/admin.conf"] = None
    changes = plan("file", {"path": "/etc/kubernetes/admin.conf", "mode": "0600",
                            "follow": False}, facts)
    assert [c.summary for c in changes] == ["/etc/kubernetes/admin.conf: mode 0644 -> 0600"]


def test_mode_on_a_symlink_changes_nothing_when_state_is_left_out():
    assert plan("file", {"path": LINK, "mode": "0644", "follow": False}, facts_for()) == []


def test_state_file_on_a_symlink_fails_as_ansible():
    with pytest.raises(TaskFailed, match=r"^file \(/etc/kubernetes/current.pem\) is link, "
                                         r"cannot continue$"):
        plan("file", {"path": LINK, "state": "file", "mode": "0644", "follow": False},
             facts_for())


def test_state_directory_on_a_symlink_fails_as_ansible():
    with pytest.raises(TaskFailed, match="already exists as a link"):
        plan("file", {"path": LINK, "state": "directory", "follow": False}, facts_for())


def test_owner_of_the_link_itself_is_refused_with_the_reason():
    with pytest.raises(TaskFailed, match="does not change a link's own owner"):
        plan("file", {"path": LINK, "owner": "kube", "follow": False}, facts_for())


def test_follow_true_still_sets_the_target():
    changes = plan("file", {"path": LINK, "mode": "0644"}, facts_for())
    assert [c.summary for c in changes] == [f"{LINK}: mode 0600 -> 0644"]
