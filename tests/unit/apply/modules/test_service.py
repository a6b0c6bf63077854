"""service / systemd: what changes is judged from systemctl's view of the unit (as Ansible's
systemd module judges it), each change records what a rollback runs to undo it, and planned
changes update the unit's view for later tasks."""

from __future__ import annotations

import pytest

from harden.apply.facts import Facts
from harden.apply.modules.base import TaskFailed
from harden.errors import InputError
from support.modules import plan

RUNNING = {"systemctl": True, "enabled": "enabled", "LoadState": "loaded",
           "ActiveState": "active", "SubState": "running", "UnitFileState": "enabled"}
STOPPED = {**RUNNING, "enabled": "disabled", "UnitFileState": "disabled",
           "ActiveState": "inactive", "SubState": "dead"}
MISSING = {"systemctl": True, "enabled": "", "LoadState": "not-found",
           "ActiveState": "inactive", "SubState": "dead", "UnitFileState": ""}


def unit_facts(**units) -> Facts:
    facts = Facts()
    facts.units.update(units)
    return facts


def scripts(changes) -> list[str]:
    return [c.script for c in changes]


def test_started_and_enabled_change_only_what_differs():
    assert plan("systemd", {"name": "auditd", "state": "started", "enabled": True},
                unit_facts(auditd=RUNNING)) == []
    changes = plan("systemd", {"name": "auditd", "state": "started", "enabled": True},
                   unit_facts(auditd=STOPPED))
    assert scripts(changes) == ["systemctl enable auditd", "systemctl start auditd"]
    assert [c.undo for c in changes] == [("auditd", "disable", False),
                                         ("auditd", "stop", False)]


def test_static_units_count_as_enabled_as_in_ansible():
    static = {**STOPPED, "enabled": "static"}
    assert plan("service", {"name": "x", "enabled": True}, unit_facts(x=static)) == []
    assert scripts(plan("service", {"name": "x", "enabled": False}, unit_facts(x=static))) == \
        ["systemctl disable x"]


def test_restarted_always_acts_and_starts_a_stopped_unit():
    changes = plan("service", {"name": "kubelet", "state": "restarted", "daemon_reload": True},
                   unit_facts(kubelet=RUNNING))
    assert scripts(changes) == ["systemctl daemon-reload", "systemctl restart kubelet"]
    assert changes[-1].undo == ("kubelet", "restart", True)
    assert scripts(plan("service", {"name": "k", "state": "restarted"},
                        unit_facts(k=STOPPED))) == ["systemctl start k"]


def test_masked_acts_before_the_unit_exists_and_state_needs_a_unit():
    changes = plan("systemd", {"name": "rpcbind", "masked": True}, unit_facts(rpcbind=MISSING))
    assert scripts(changes) == ["systemctl mask rpcbind"]
    assert changes[0].undo == ("rpcbind", "unmask", False)
    with pytest.raises(TaskFailed, match="Could not find the requested service rpcbind"):
        plan("systemd", {"name": "rpcbind", "state": "stopped"}, unit_facts(rpcbind=MISSING))


def test_a_planned_change_is_what_later_tasks_see():
    facts = unit_facts(auditd=STOPPED)
    for change in plan("systemd", {"name": "auditd", "state": "started", "enabled": True},
                       facts):
        change.record_in(facts)
    assert plan("systemd", {"name": "auditd", "state": "started", "enabled": True},
                facts) == []


def test_unsupported_arguments_and_states_are_refused_at_load():
    with pytest.raises(InputError, match="has no argument 'masked'"):
        plan("service", {"name": "x", "masked": True}, Facts())
    with pytest.raises(InputError, match="has no argument 'scope'"):
        plan("systemd", {"name": "x", "scope": "user"}, Facts())
    with pytest.raises(InputError, match="must be one of started, stopped"):
        plan("service", {"name": "x", "state": "running"}, Facts())
    with pytest.raises(TaskFailed, match="need name"):
        plan("service", {"state": "started"}, Facts())
