"""`sysctl`: the sysctl.d file and the running value, each only when it differs."""

from __future__ import annotations

import pytest

from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, plan, plan_twice

CONF = "/etc/sysctl.d/90-harden.conf"


def test_noop_when_persisted_and_running():
    facts = make_facts(file_state(CONF, b"# mine\nkernel.panic = 10\n", 0o644),
                       sysctls={"kernel.panic": "10"})
    assert plan("sysctl", {"name": "kernel.panic", "value": 10}, facts) == []


def test_writes_file_and_sets_value_then_noop():
    facts = make_facts(file_state(CONF, b"# mine\nkernel.panic=0\nvm.panic_on_oom = 0\n", 0o644),
                       sysctls={"kernel.panic": "0", "vm.overcommit_memory": "0",
                                "vm.panic_on_oom": "0"})
    args = {"values": {"kernel.panic": 10, "vm.overcommit_memory": 1, "vm.panic_on_oom": 0}}
    first, second = plan_twice("sysctl", args, facts)
    assert [c.path for c in first] == [CONF, "/proc/sys/kernel/panic",
                                       "/proc/sys/vm/overcommit_memory"]
    assert first[0].after.content == (b"# mine\nkernel.panic = 10\nvm.panic_on_oom = 0\n"
                                      b"vm.overcommit_memory = 1\n")
    assert "hb_proc /proc/sys/kernel/panic 10" in first[1].script
    assert second == []


def test_new_file_and_apply_false():
    facts = make_facts(absent=[CONF])
    changes = plan("sysctl", {"name": "kernel.panic_on_oops", "value": 1, "apply": False}, facts)
    assert [c.summary for c in changes] == [f"create {CONF}"]
    assert changes[0].after.mode == 0o644


def test_unknown_key_and_bad_arguments():
    facts = make_facts(absent=[CONF], sysctls={"kernel.nope": None})
    with pytest.raises(TaskFailed, match="does not exist on this host"):
        plan("sysctl", {"name": "kernel.nope", "value": 1}, facts)
    with pytest.raises(TaskFailed, match="either name"):
        plan("sysctl", {"name": "a", "values": {"b": 1}}, facts)
