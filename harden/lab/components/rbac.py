"""RBAC as the real authorizer evaluates it, from Roles and bindings read out of the store.

Also the bootstrap policy kube-apiserver itself creates at start (a subset: the roles that
decide who may do what in a small lab), so that an RBAC cluster works as one does.
"""

from __future__ import annotations

from dataclasses import dataclass

RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass
class Attributes:
    user: str
    groups: tuple
    verb: str
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""             # non-resource requests

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


def subject_matches(subject: dict, attrs: Attributes, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return name == attrs.user
    if kind == "Group":
        return name in attrs.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return attrs.user == f"system:serviceaccount:{namespace}:{name}"
    return False


def _has(values, wanted: str) -> bool:
    return "*" in (values or []) or wanted in (values or [])


def rule_allows(rule: dict, attrs: Attributes) -> bool:
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if not attrs.is_resource:
        return any(u == attrs.path or (u.endswith("*") and attrs.path.startswith(u[:-1]))
                   for u in rule.get("nonResourceURLs") or [])
    if not _has(rule.get("apiGroups"), attrs.api_group):
        return False
    resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    resources = rule.get("resources") or []
    if not ("*" in resources or resource in resources
            or (attrs.subresource and f"*/{attrs.subresource}" in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or attrs.name in names


def allows(attrs: Attributes, cluster_bindings: list[dict], namespace_bindings: list[dict],
           role_rules) -> tuple[bool, str]:
    """(allowed, reason) over ClusterRoleBindings and the request namespace's RoleBindings.

    role_rules(kind, name, namespace) returns the referenced role's rules ([] when missing).
    """
    for binding in cluster_bindings:
        if _bound(binding, attrs, "") and _any_rule(role_rules("ClusterRole",
                                                               binding["roleRef"]["name"], ""), attrs):
            return True, (f'RBAC: allowed by ClusterRoleBinding "{binding["metadata"]["name"]}" '
                          f'of ClusterRole "{binding["roleRef"]["name"]}"')
    for binding in namespace_bindings:
        namespace = binding["metadata"].get("namespace", "")
        ref = binding.get("roleRef", {})
        if _bound(binding, attrs, namespace) and _any_rule(
                role_rules(ref.get("kind"), ref.get("name"), namespace), attrs):
            return True, (f'RBAC: allowed by RoleBinding "{binding["metadata"]["name"]}/'
                          f'{namespace}" of {ref.get("kind")} "{ref.get("name")}"')
    return False, ""


def _bound(binding: dict, attrs: Attributes, namespace: str) -> bool:
    return any(subject_matches(s, attrs, namespace) for s in binding.get("subjects") or [])


def _any_rule(rules: list[dict], attrs: Attributes) -> bool:
    return any(rule_allows(rule, attrs) for rule in rules)


def forbidden_message(attrs: Attributes) -> str:
    if not attrs.is_resource:
        return f'forbidden: User "{attrs.user}" cannot {attrs.verb} path "{attrs.path}"'
    target = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
    group = f".{attrs.api_group}" if attrs.api_group else ""
    what = f'{attrs.resource}{group} "{attrs.name}"' if attrs.name else f"{attrs.resource}{group}"
    scope = (f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope")
    return (f'{what} is forbidden: User "{attrs.user}" cannot {attrs.verb} resource "{target}" '
            f'in API group "{attrs.api_group}" {scope}')


# --- the bootstrap policy the API server creates (rbac/bootstrap-roles post-start hook) -------

def _role(name: str, rules: list[dict], kind: str = "ClusterRole") -> dict:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": kind,
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "rules": rules}


def _binding(name: str, role: str, subjects: list[dict]) -> dict:
    return {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": subjects}


def _group(name: str) -> dict:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]


def bootstrap_policy() -> list[tuple[str, dict]]:
    """(resource, object) pairs; created only when absent, as the real post-start hook does."""
    core_ns = ["configmaps", "secrets", "serviceaccounts", "pods", "services", "endpoints",
               "persistentvolumeclaims"]
    roles = [
        _role("cluster-admin", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        _role("admin", [{"apiGroups": [""], "resources": core_ns, "verbs": READ + WRITE},
                        {"apiGroups": [RBAC_GROUP], "resources": ["roles", "rolebindings"],
                         "verbs": READ + WRITE},
                        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                         "verbs": READ + WRITE}]),
        _role("edit", [{"apiGroups": [""], "resources": core_ns, "verbs": READ + WRITE},
                       {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                        "verbs": READ + WRITE}]),
        _role("view", [{"apiGroups": [""], "resources": [r for r in core_ns if r != "secrets"],
                        "verbs": READ}]),
        _role("system:basic-user", [{"apiGroups": ["authorization.k8s.io"],
                                     "resources": ["selfsubjectaccessreviews",
                                                   "selfsubjectrulesreviews"],
                                     "verbs": ["create"]}]),
        _role("system:discovery", [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*",
                                                        "/healthz", "/livez", "/readyz",
                                                        "/openapi", "/openapi/*", "/version",
                                                        "/version/"], "verbs": ["get"]}]),
        _role("system:public-info-viewer", [{"nonResourceURLs": ["/healthz", "/livez", "/readyz",
                                                                 "/version", "/version/"],
                                             "verbs": ["get"]}]),
    ]
    bindings = [
        _binding("cluster-admin", "cluster-admin", [_group("system:masters")]),
        _binding("system:basic-user", "system:basic-user", [_group("system:authenticated")]),
        _binding("system:discovery", "system:discovery", [_group("system:authenticated")]),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 [_group("system:authenticated"), _group("system:unauthenticated")]),
    ]
    return [("clusterroles", r) for r in roles] + [("clusterrolebindings", b) for b in bindings]
