"""`static_pod` with `replace: false`: add missing flags, keep equal ones, refuse to repoint."""

from __future__ import annotations

import pytest

from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, manifest_text, plan, plan_twice

APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"
ENC_DIR = "/etc/kubernetes/enc"
ENC = f"{ENC_DIR}/encryption-config.yaml"
OTHER = f"{ENC_DIR}/other-config.yaml"


def apiserver(*extra_flags: str) -> bytes:
    """The fixture manifest with extra flag lines after --allow-privileged."""
    text = manifest_text("kube-apiserver.yaml").decode()
    anchor = "    - --allow-privileged=true\n"
    added = "".join(f"    - {flag}\n" for flag in extra_flags)
    return text.replace(anchor, anchor + added).encode()


def facts_for(manifest: bytes):
    return make_facts(file_state(APISERVER, manifest), file_state(ENC, b"kind: x\n"),
                      file_state(OTHER, b"kind: x\n"), file_state(ENC_DIR, kind="directory"))


def enc_task(value: str = ENC, **extra) -> dict:
    return {"manifest": APISERVER, "replace": False,
            "volumes": [{"name": "enc", "host_path": ENC_DIR}],
            "set": {"encryption-provider-config": value}, **extra}


def test_refuses_to_repoint_a_flag_with_another_value():
    facts = facts_for(apiserver(f"--encryption-provider-config={OTHER}"))
    with pytest.raises(TaskFailed) as info:
        plan("static_pod", enc_task(), facts)
    message = str(info.value)
    for part in (APISERVER, "--encryption-provider-config", OTHER, ENC, "replace: false"):
        assert part in message


def test_default_replace_still_repoints():
    facts = facts_for(apiserver(f"--encryption-provider-config={OTHER}"))
    changes = plan("static_pod", enc_task(replace=True), facts)
    assert f"+    - --encryption-provider-config={ENC}\n" in changes[0].diff
    assert f"-    - --encryption-provider-config={OTHER}\n" in changes[0].diff


def test_equal_value_is_a_noop():
    manifest = apiserver(f"--encryption-provider-config={ENC}")
    first, _ = plan_twice("static_pod", enc_task(replace=True), facts_for(manifest))
    mounted = first[0].after.content           # the volume for ENC_DIR, added by a first run
    assert plan("static_pod", enc_task(), facts_for(mounted)) == []


def test_absent_flag_is_added_then_noop():
    first, second = plan_twice("static_pod", enc_task(), facts_for(apiserver()))
    assert f"+    - --encryption-provider-config={ENC}\n" in first[0].diff
    assert second == []


def test_a_conflict_fails_while_equal_and_absent_flags_pass():
    facts = facts_for(apiserver())
    with pytest.raises(TaskFailed, match=r"--secure-port is already '6443'.*'6444'"):
        plan("static_pod", {"manifest": APISERVER, "replace": False,
                            "set": {"profiling": False, "secure-port": 6444}}, facts)
    changes = plan("static_pod", {"manifest": APISERVER, "replace": False,
                                  "set": {"profiling": False, "secure-port": 6443}}, facts)
    edited = [l for l in changes[0].diff.splitlines() if l[:1] in "+-" and l[:3] not in
              ("+++", "---")]
    assert edited == ["+    - --profiling=false"]


def test_bare_boolean_flag_counts_as_true_and_is_left_as_written():
    facts = facts_for(apiserver("--profiling"))
    assert plan("static_pod", {"manifest": APISERVER, "replace": False,
                               "set": {"profiling": True}}, facts) == []
    with pytest.raises(TaskFailed, match="'true', the task wants 'false'"):
        plan("static_pod", {"manifest": APISERVER, "replace": False,
                            "set": {"profiling": False}}, facts)


def test_removing_a_present_flag_counts_as_replacing_it():
    facts = facts_for(apiserver())
    with pytest.raises(TaskFailed, match="--secure-port is already '6443', the task wants it "
                                         "removed"):
        plan("static_pod", {"manifest": APISERVER, "replace": False,
                            "set": {"secure-port": None}}, facts)
    assert plan("static_pod", {"manifest": APISERVER, "replace": False,
                               "set": {"no-such-flag": None}}, facts) == []
