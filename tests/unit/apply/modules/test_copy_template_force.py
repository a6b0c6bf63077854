"""`force: false` for `copy` and `template`: create when absent, never rewrite an existing dest.

The case it exists for: an encryption config rotated on the node must survive a re-run of the
playbook that first wrote it, and that re-run must not need the original key.
"""

from __future__ import annotations

import base64

import pytest

from harden.errors import InputError
from harden.apply.facts import Facts, FileState
from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, plan, plan_twice

ENC = "/etc/kubernetes/enc/encryption-config.yaml"
KEY = base64.b64encode(bytes(range(32))).decode()
ROTATED = b"kind: EncryptionConfiguration\n# keys: new, then old\n"


def enc_task(**extra) -> dict:
    return {"src": "encryption-config.yaml.j2", "dest": ENC, "mode": "0600", "secret": True,
            "force": False, **extra}


def test_template_existing_dest_is_not_rendered_nor_rewritten():
    facts = make_facts(file_state(ENC, ROTATED, 0o600))
    # no encryption_key given: rendering would fail, so an empty plan proves it was skipped
    assert plan("template", enc_task(), facts) == []


def test_template_existing_dest_keeps_its_mode_and_owner_too():
    # Ansible's copy (which template calls) returns "file already exists" before any chmod
    facts = make_facts(file_state(ENC, ROTATED, 0o644, owner="kube", group="kube"))
    assert plan("template", enc_task(owner="root", group="root"), facts) == []


def test_copy_existing_dest_is_left_entirely_alone():
    facts = make_facts(file_state(ENC, b"node's own\n", 0o644, owner="kube", group="kube"))
    args = {"dest": ENC, "content": "other\n", "force": False, "mode": "0600", "owner": "root"}
    assert plan("copy", args, facts) == []


def test_copy_force_false_creates_a_missing_dest_with_its_mode():
    first, second = plan_twice("copy", {"dest": ENC, "content": "x\n", "force": False,
                                        "mode": "0600"}, make_facts(absent=[ENC]))
    assert [c.after.mode for c in first] == [0o600] and first[0].after.content == b"x\n"
    assert second == []


def test_template_absent_dest_is_created_from_the_template():
    facts = make_facts(absent=[ENC])
    first, second = plan_twice("template", enc_task(), facts, {"encryption_key": KEY})
    assert [c.summary for c in first] == [f"create {ENC} (secret)"]
    assert KEY.encode() in first[0].after.content
    assert second == []


def test_template_absent_dest_needs_its_variables():
    with pytest.raises(InputError, match="encryption_key"):
        plan("template", enc_task(), make_facts(absent=[ENC]))


def test_template_default_force_rewrites_a_changed_dest():
    facts = make_facts(file_state(ENC, ROTATED, 0o600))
    changes = plan("template", enc_task(force=True), facts, {"encryption_key": KEY})
    assert [c.summary for c in changes] == [f"update {ENC} (secret)"]
    changes = plan("template", {k: v for k, v in enc_task().items() if k != "force"}, facts,
                   {"encryption_key": KEY})
    assert [c.summary for c in changes] == [f"update {ENC} (secret)"]


def test_force_false_gathers_dest_once_and_plans_from_a_stat():
    # The content comes with the one gather (the registered checksum needs it), so that
    # registering never costs a second exec ...
    for module, args in (("template", enc_task()), ("copy", {"dest": ENC, "content": "x",
                                                            "force": False})):
        requests = get_module(module).facts_needed(get_module(module).validate(args))
        # (and a stat of its directory: a missing one fails the task, as in Ansible)
        assert [(r.target, r.content) for r in requests] == [(ENC, True),
                                                             ("/etc/kubernetes/enc", False)]
    # ... while the plan itself works from a stat-only fact
    facts = Facts()
    facts.files[ENC] = FileState(ENC, "file", 0o600, "root", "root", None)
    assert plan("template", enc_task(), facts) == []
    assert plan("copy", {"dest": ENC, "content": "x", "force": False, "mode": "0600"},
                facts) == []


def test_copy_existing_dest_keeps_its_content():
    facts = make_facts(file_state("/etc/x.conf", b"edited on the node\n", 0o600))
    assert plan("copy", {"dest": "/etc/x.conf", "content": "a=1\n", "force": False},
                facts) == []


def test_copy_absent_dest_is_created():
    facts = make_facts(absent=["/etc/x.conf"])
    first, second = plan_twice("copy", {"dest": "/etc/x.conf", "content": "a=1\n",
                                        "force": False}, facts)
    assert [c.summary for c in first] == ["create /etc/x.conf"]
    assert first[0].after.content == b"a=1\n"
    assert second == []


def test_copy_existing_dest_does_not_need_its_src():
    facts = make_facts(file_state("/etc/x.conf", b"a=1\n"))
    assert plan("copy", {"dest": "/etc/x.conf", "src": "no-such-file", "force": False},
                facts) == []
    with pytest.raises(TaskFailed, match="no-such-file not found"):
        plan("copy", {"dest": "/etc/x.conf", "src": "no-such-file", "force": False},
             make_facts(absent=["/etc/x.conf"]))


def test_copy_default_force_rewrites():
    facts = make_facts(file_state("/etc/x.conf", b"edited on the node\n"))
    changes = plan("copy", {"dest": "/etc/x.conf", "content": "a=1\n"}, facts)
    assert [c.summary for c in changes] == ["update /etc/x.conf"]


def test_force_false_still_refuses_a_directory_and_bad_args():
    directory = make_facts(file_state("/etc/x", kind="directory"))
    with pytest.raises(TaskFailed, match="not a regular file"):
        plan("copy", {"dest": "/etc/x", "content": "x", "force": False}, directory)
    with pytest.raises(TaskFailed, match="not a regular file"):
        plan("template", {"src": "audit-policy.yaml.j2", "dest": "/etc/x", "force": False},
             directory)
    with pytest.raises(TaskFailed, match="exactly one"):
        plan("copy", {"dest": "/etc/x", "force": False}, make_facts(file_state("/etc/x")))
    with pytest.raises(InputError, match="force"):
        get_module("copy").validate({"dest": "/etc/x", "content": "x", "force": "maybe"})
    # as in Ansible, a boolean argument may be written as text (`k=v` arguments are text)
    assert get_module("copy").validate({"dest": "/etc/x", "content": "x",
                                        "force": "no"})["force"] is False
