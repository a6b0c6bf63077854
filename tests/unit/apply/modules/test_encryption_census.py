"""encryption_census: the rotation's measurement of etcd, and the rewrite it plans."""

from __future__ import annotations

import pytest

from harden.apply.facts import CENSUS, Facts, parse_output, FactRequest
from harden.apply.modules.base import PlanContext, TaskFailed
from harden.apply.modules.encryption_census import MODULE

REQUEST = FactRequest(CENSUS, "kube-apiserver")


def facts_from(*records: str) -> Facts:
    return parse_output([REQUEST], "@@harden-fact 0\n" + "\n".join(records) + "\n")


ROTATED = ("L|resources resources secrets providers secretbox keys name key2 name key1 identity",
           "C|etcdctl|/registry",
           "Q|secrets|secretbox:key2|497", "Q|secrets|secretbox:key1|2", "Q|secrets|identity|1",
           "Q|configmaps|identity|40")


def args(**extra):
    return MODULE.validate({"keep": "key2", **extra})


def test_counts_by_key_over_covered_resources_only():
    result = MODULE.result(args(), facts_from(*ROTATED), [])
    assert result == {"readable": True, "error": "", "method": "etcdctl", "total": 500,
                      "off_primary": 3, "on_other_keys": 2,
                      "by_key": {"secretbox:key2": 497, "secretbox:key1": 2, "identity": 1},
                      "elsewhere": {}}


def test_rewrite_is_planned_only_while_objects_are_off_their_primary_key():
    changes = MODULE.plan(args(rewrite=True), facts_from(*ROTATED), PlanContext())
    assert len(changes) == 1 and "2 secrets as secretbox:key1" in changes[0].summary
    assert "secrets=secretbox:key2" in changes[0].script and "kubectl replace" in changes[0].script
    done = facts_from(*ROTATED[:2], "Q|secrets|secretbox:key2|500", "Q|configmaps|identity|40")
    assert MODULE.plan(args(rewrite=True), done, PlanContext()) == []


def test_unreadable_etcd_fails_unless_not_required():
    unreadable = facts_from("C|none|no etcdctl, curl or crictl on this node")
    with pytest.raises(TaskFailed, match="no etcdctl, curl or crictl"):
        MODULE.result(args(), unreadable, [])
    result = MODULE.result(args(required=False), unreadable, [])
    assert result["readable"] is False and result["on_other_keys"] == 0


def test_values_no_rewrite_reaches_are_reported_apart_from_the_covered_ones():
    """Under the old key outside the covered resources (an uncovered resource, the service IP
    ranges): no rewrite pass reaches them, so they are not in on_other_keys, and the retire
    gate names them on their own."""
    facts = facts_from(*ROTATED, "Q|configmaps|secretbox:key1|4", "Q|ranges|secretbox:key1|1",
                       "Q|ranges|identity|3")
    result = MODULE.result(args(), facts, [])
    assert result["on_other_keys"] == 2 and result["total"] == 500
    assert result["elsewhere"] == {"configmaps as secretbox:key1": 4,
                                   "ranges/ as secretbox:key1": 1}


def test_the_kept_key_is_the_configs_provider_and_key_not_only_its_name():
    facts = facts_from("L|resources resources secrets providers aescbc keys name key2 name key1",
                       "C|etcdctl|/registry", "Q|secrets|aescbc:key2|5",
                       "Q|secrets|secretbox:key2|1")
    assert MODULE.result(args(), facts, [])["on_other_keys"] == 1


def test_a_resource_found_under_a_directory_the_table_lacks_is_rewritten_there():
    facts = facts_from("L|resources resources gizmos.example.k8s.io secrets providers aescbc "
                       "keys name key2 name key1", "C|etcdctl|/registry",
                       "Q|gizmos|aescbc:key1|3", "Q|secrets|aescbc:key2|2")
    changes = MODULE.plan(args(rewrite=True), facts, PlanContext())
    assert "gizmos=gizmos.example.k8s.io=aescbc:key2" in changes[0].script
