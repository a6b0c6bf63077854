"""Pieces of the lab API server's REST layer that need no etcd: selectors, RBAC, patches."""

from __future__ import annotations

import pytest

from harden.lab.components import rbac, resources


@pytest.mark.parametrize("selector, labels, expected", [
    ("app=web", {"app": "web"}, True), ("app=web", {"app": "db"}, False),
    ("app!=web", {}, True), ("tier in (a, b)", {"tier": "b"}, True),
    ("tier notin (a,b)", {"tier": "a"}, False), ("app", {"app": ""}, True),
    ("!app", {"app": "x"}, False), ("app=web,tier in (a,b)", {"app": "web", "tier": "c"}, False)])
def test_label_selectors_match_like_the_api_server(selector, labels, expected):
    assert resources.selector_matches(resources.parse_selector(selector), labels) is expected


def binding(kind, name, role_kind, role, subjects, namespace=None):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, "roleRef": {"kind": role_kind, "name": role},
            "subjects": subjects}


ROLES = {("ClusterRole", "reader"): [{"apiGroups": [""], "resources": ["secrets"],
                                      "verbs": ["get", "list"]}],
         ("Role", "cm-one"): [{"apiGroups": [""], "resources": ["configmaps"],
                               "resourceNames": ["one"], "verbs": ["*"]}]}


def rules(kind, name, _namespace):
    return ROLES.get((kind, name), [])


def test_cluster_role_binding_grants_everywhere_role_binding_only_in_its_namespace():
    cluster = [binding("ClusterRoleBinding", "r", "ClusterRole", "reader",
                       [{"kind": "Group", "name": "readers"}])]
    local = [binding("RoleBinding", "c", "Role", "cm-one",
                     [{"kind": "ServiceAccount", "name": "app"}], "apps")]
    reader = rbac.Attributes("u", ("readers",), "list", "kube-system", "", "secrets")
    assert rbac.allows(reader, cluster, [], rules)[0]
    sa = rbac.Attributes("system:serviceaccount:apps:app", (), "update", "apps", "", "configmaps",
                         name="one")
    assert rbac.allows(sa, [], local, rules)[0]
    sa.name = "two"
    assert not rbac.allows(sa, [], local, rules)[0]
    writer = rbac.Attributes("u", ("readers",), "delete", "apps", "", "secrets", name="x")
    assert not rbac.allows(writer, cluster, local, rules)[0]
    assert rbac.forbidden_message(writer) == (
        'secrets "x" is forbidden: User "u" cannot delete resource "secrets" in API group "" '
        'in the namespace "apps"')


def test_non_resource_urls_match_exactly_or_by_star_prefix():
    rule = {"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]}
    assert rbac.rule_allows(rule, rbac.Attributes("u", (), "get", path="/apis/rbac"))
    assert not rbac.rule_allows(rule, rbac.Attributes("u", (), "get", path="/metrics"))


def test_merge_patch_sets_and_removes_labels():
    patched = resources.merge_patch({"metadata": {"labels": {"a": "1", "b": "2"}}},
                                    {"metadata": {"labels": {"a": None, "c": "3"}}})
    assert patched == {"metadata": {"labels": {"b": "2", "c": "3"}}}


def test_storage_keys_follow_upstream_layout():
    secret = next(r for r in resources.RESOURCES if r.name == "secrets")
    role = next(r for r in resources.RESOURCES if r.name == "clusterroles")
    assert resources.storage_key("/registry", secret, "apps", "db") == "/registry/secrets/apps/db"
    assert resources.storage_key("/registry", role, None, "x") == "/registry/clusterroles/x"
