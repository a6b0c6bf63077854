"""The shipped audit policy: valid for the API server, passes 3.2.2, and drops the high-volume
system traffic upstream's reference policy drops (so the log cap holds weeks, not hours)."""

from __future__ import annotations


import pytest
import yaml

from harden.apply.templating import render_template_file
from harden.cis.cluster_checks import audit_level, audit_policy_gaps
from harden.lab.components.apiconfig import validate_audit_policy

from support.paths import REPO


@pytest.fixture(scope="module")
def policy() -> dict:
    return yaml.safe_load(render_template_file("audit-policy.yaml.j2",
                                               [str(REPO / "templates")], {}))


def level_for(policy: dict, user: str, groups: list[str], verb: str, group: str,
              resource: str, sub: str = "") -> str:
    """First matching rule, users and groups included (cluster_checks.audit_level skips rules
    limited to users, since 3.2.2 is about every request)."""
    full = f"{resource}/{sub}" if sub else resource
    for rule in policy["rules"]:
        if rule.get("users") and user not in rule["users"]:
            continue
        if rule.get("userGroups") and not set(groups) & set(rule["userGroups"]):
            continue
        if rule.get("verbs") and verb not in rule["verbs"]:
            continue
        if rule.get("nonResourceURLs") and not rule.get("resources"):
            continue
        kinds = rule.get("resources")
        if kinds and not any((k.get("group") or "") == group and full in k.get("resources", [])
                             for k in kinds):
            continue
        return rule["level"]
    return "None"


def test_policy_is_valid_and_passes_3_2_2(policy):
    assert validate_audit_policy(policy, "audit-policy.yaml") == []
    assert audit_policy_gaps(policy) == []


@pytest.mark.parametrize("user,groups,verb,group,resource", [
    ("system:node:w1", ["system:nodes"], "update", "coordination.k8s.io", "leases"),
    ("system:kube-scheduler", [], "update", "coordination.k8s.io", "leases"),
    ("system:kube-proxy", [], "watch", "discovery.k8s.io", "endpointslices"),
    ("system:node:w1", ["system:nodes"], "get", "", "nodes"),
    ("system:kube-controller-manager", [], "list", "apps", "deployments"),
    ("alice", ["devs"], "create", "", "events"),
])
def test_noisy_system_traffic_is_dropped(policy, user, groups, verb, group, resource):
    assert level_for(policy, user, groups, verb, group, resource) == "None"


def test_secrets_are_metadata_for_everyone_and_bodies_only_where_they_matter(policy):
    for user in ("system:kube-controller-manager", "system:node:w1", "alice"):
        assert level_for(policy, user, ["system:nodes"], "get", "", "secrets") == "Metadata"
    # a pod spec carries literal env values: no body
    assert level_for(policy, "alice", [], "create", "", "pods") == "Metadata"
    assert level_for(policy, "alice", [], "patch", "apps", "deployments") == "Metadata"
    assert level_for(policy, "alice", [], "create", "rbac.authorization.k8s.io",
                     "clusterrolebindings") == "Request"
    assert level_for(policy, "alice", [], "create", "coordination.k8s.io", "leases") == "Metadata"
    assert audit_level(policy, "create", "", "pods", "exec") == "Metadata"
