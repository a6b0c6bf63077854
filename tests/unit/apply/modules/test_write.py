"""`template` and `copy`: rendered content, atomic write, secret redaction."""

from __future__ import annotations

import base64

import pytest

from harden.errors import InputError
from harden.apply.modules.base import REDACTED, TaskFailed
from support.modules import file_state, make_facts, plan, plan_twice

ENC = "/etc/kubernetes/enc/encryption-config.yaml"
KEY = base64.b64encode(bytes(range(32))).decode()


def test_template_creates_then_is_noop():
    facts = make_facts(absent=["/etc/kubernetes/audit-policy.yaml"])
    args = {"src": "audit-policy.yaml.j2", "dest": "/etc/kubernetes/audit-policy.yaml",
            "mode": "0600"}
    first, second = plan_twice("template", args, facts)
    assert [c.summary for c in first] == ["create /etc/kubernetes/audit-policy.yaml"]
    assert "+kind: Policy\n" in first[0].diff
    assert "hb_write /etc/kubernetes/audit-policy.yaml 0600 - -" in first[0].script
    assert first[0].after.mode == 0o600
    assert second == []


def test_template_secret_is_redacted_everywhere_but_the_script():
    facts = make_facts(absent=[ENC])
    changes = plan("template", {"src": "encryption-config.yaml.j2", "dest": ENC, "mode": "0600",
                                "secret": True}, facts, {"encryption_key": KEY})
    assert KEY not in changes[0].diff and KEY not in changes[0].summary
    assert REDACTED in changes[0].diff
    assert KEY.encode() in changes[0].after.content
    # the content travels base64-encoded inside the script (fed on stdin, never logged)
    assert base64.b64encode(changes[0].after.content).decode()[:40] in \
        changes[0].script.replace("\n", "")


def test_template_changed_secret_diff_says_changed_only():
    old = f"secret: {KEY}\n".encode()
    facts = make_facts(file_state(ENC, old))
    other = base64.b64encode(bytes(32)).decode()
    changes = plan("template", {"src": "encryption-config.yaml.j2", "dest": ENC, "secret": True},
                   facts, {"encryption_key": other})
    assert other not in changes[0].diff and KEY not in changes[0].diff
    assert "(changed)" in changes[0].diff


def test_template_undefined_variable_is_an_error():
    with pytest.raises(InputError, match="encryption_key"):
        plan("template", {"src": "encryption-config.yaml.j2", "dest": ENC},
             make_facts(absent=[ENC]))


def test_copy_same_content_only_fixes_mode_without_rewrite():
    facts = make_facts(file_state("/etc/x.conf", b"a=1\n", 0o644))
    changes = plan("copy", {"dest": "/etc/x.conf", "content": "a=1\n", "mode": "0600"}, facts)
    assert len(changes) == 1 and "hb_write" not in changes[0].script
    assert "hb_chmod /etc/x.conf 0600" in changes[0].script


def test_copy_content_change_diff_and_noop():
    facts = make_facts(file_state("/etc/x.conf", b"a=1\nb=2\n", 0o644))
    first, second = plan_twice("copy", {"dest": "/etc/x.conf", "content": "a=1\nb=3\n"}, facts)
    assert "-b=2\n+b=3\n" in first[0].diff
    assert first[0].after.mode == 0o644           # kept from the existing file
    assert second == []


def test_copy_needs_exactly_one_source_and_refuses_directories():
    with pytest.raises(TaskFailed, match="exactly one"):
        plan("copy", {"dest": "/etc/x"}, make_facts(absent=["/etc/x"]))
    with pytest.raises(TaskFailed, match="not a regular file"):
        plan("copy", {"dest": "/etc/x", "content": "x"},
             make_facts(file_state("/etc/x", kind="directory")))


def test_checksum_registered_is_of_what_dest_holds_after_the_task():
    import hashlib

    from harden.apply.modules import get_module

    dest = "/etc/kubernetes/harden-test/x"
    module = get_module("copy")
    args = {"dest": dest, "content": "new\n", "force": False}
    absent = make_facts(absent=[dest])
    changes = plan("copy", args, absent)
    assert module.result(module.validate(args), absent, changes)["checksum"] == \
        hashlib.sha256(b"new\n").hexdigest()
    kept = make_facts(file_state(dest, b"old\n"))                 # force: false keeps it
    changes = plan("copy", args, kept)
    assert module.result(module.validate(args), kept, changes)["checksum"] == \
        hashlib.sha256(b"old\n").hexdigest()
