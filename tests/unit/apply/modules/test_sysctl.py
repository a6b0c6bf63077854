"""`sysctl`: the sysctl.d file and the running value, each only when it differs."""

from __future__ import annotations

import pytest

from harden.apply.modules.base import TaskFailed
from harden.apply.modules.sysctl import SYSCTL_CONF, SYSCTL_DIRS
from support.modules import file_state, make_facts, plan, plan_twice

CONF = "/etc/sysctl.d/90-harden.conf"


def sysctl_facts(*states, absent=(), sysctls=None, boot_files=()):
    """Facts of a node whose sysctl.d directories hold `boot_files` (and `states` there)."""
    facts = make_facts(*states, *boot_files, absent=[*absent, SYSCTL_CONF], sysctls=sysctls)
    in_dirs = [s.path for s in (*states, *boot_files) if s.path.endswith(".conf")]
    for directory in SYSCTL_DIRS:
        facts.globs[(f"{directory}/*.conf", False)] = sorted(
            p for p in in_dirs if p.rsplit("/", 1)[0] == directory)
    return facts


def test_noop_when_persisted_and_running():
    facts = sysctl_facts(file_state(CONF, b"# mine\nkernel.panic = 10\n", 0o644),
                       sysctls={"kernel.panic": "10"})
    assert plan("sysctl", {"name": "kernel.panic", "value": 10}, facts) == []


def test_writes_file_and_sets_value_then_noop():
    facts = sysctl_facts(file_state(CONF, b"# mine\nkernel.panic=0\nvm.panic_on_oom = 0\n", 0o644),
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
    facts = sysctl_facts(absent=[CONF])
    changes = plan("sysctl", {"name": "kernel.panic_on_oops", "value": 1, "apply": False}, facts)
    assert [c.summary for c in changes] == [f"create {CONF}"]
    assert changes[0].after.mode == 0o644


def test_unknown_key_and_bad_arguments():
    facts = sysctl_facts(absent=[CONF], sysctls={"kernel.nope": None})
    with pytest.raises(TaskFailed, match="does not exist on this host"):
        plan("sysctl", {"name": "kernel.nope", "value": 1}, facts)
    with pytest.raises(TaskFailed, match="either name"):
        plan("sysctl", {"name": "a", "values": {"b": 1}}, facts)


@pytest.mark.parametrize("name,overrides", [
    ("/etc/sysctl.d/99-tuning.conf", True),          # sorts after ours: wins at boot
    ("/usr/lib/sysctl.d/95-vendor.conf", True),      # other directory, later name
    ("/etc/sysctl.d/10-early.conf", False),          # read before ours
    ("/usr/lib/sysctl.d/90-harden.conf", False),     # same name lower down: hidden by /etc
])
def test_a_file_read_after_ours_at_boot_fails_the_task_naming_it(name, overrides):
    later = file_state(name, b"# tuning\nkernel.panic = 0\n", 0o644)
    facts = sysctl_facts(file_state(CONF, b"kernel.panic = 10\n", 0o644),
                         sysctls={"kernel.panic": "10"}, boot_files=[later])
    if overrides:
        with pytest.raises(TaskFailed, match=f"kernel.panic: {name} sets 0 and is read after "
                                             f"{CONF} at boot"):
            plan("sysctl", {"name": "kernel.panic", "value": 10}, facts)
    else:
        assert plan("sysctl", {"name": "kernel.panic", "value": 10}, facts) == []


def test_etc_sysctl_conf_is_read_last():
    facts = sysctl_facts(file_state(CONF, b"kernel.panic = 10\n", 0o644),
                         sysctls={"kernel.panic": "10"})
    facts.files[SYSCTL_CONF] = file_state(SYSCTL_CONF, b"kernel.panic=5\n", 0o644)
    with pytest.raises(TaskFailed, match=f"{SYSCTL_CONF} sets 5"):
        plan("sysctl", {"name": "kernel.panic", "value": 10}, facts)
    facts.files[SYSCTL_CONF] = file_state(SYSCTL_CONF, b"# kernel.panic=5\nkernel.panic = 10\n")
    assert plan("sysctl", {"name": "kernel.panic", "value": 10}, facts) == []
