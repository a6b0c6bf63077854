"""The API resources the lab's kube-apiserver stores, and the discovery documents kubectl reads.

Only data: group, version, kind, scope and the etcd key layout upstream uses
(`/registry/<resource>/<namespace>/<name>`, cluster-scoped `/registry/<resource>/<name>`).
"""

from __future__ import annotations

from dataclasses import dataclass

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class Resource:
    name: str            # plural, as in URLs and RBAC rules
    kind: str
    group: str           # "" = core
    version: str
    namespaced: bool
    short_names: tuple = ()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES = [
    Resource("namespaces", "Namespace", "", "v1", False, ("ns",)),
    Resource("secrets", "Secret", "", "v1", True),
    Resource("configmaps", "ConfigMap", "", "v1", True, ("cm",)),
    Resource("serviceaccounts", "ServiceAccount", "", "v1", True, ("sa",)),
    Resource("pods", "Pod", "", "v1", True, ("po",)),
    Resource("roles", "Role", "rbac.authorization.k8s.io", "v1", True),
    Resource("rolebindings", "RoleBinding", "rbac.authorization.k8s.io", "v1", True),
    Resource("clusterroles", "ClusterRole", "rbac.authorization.k8s.io", "v1", False),
    Resource("clusterrolebindings", "ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", False),
    Resource("networkpolicies", "NetworkPolicy", "networking.k8s.io", "v1", True, ("netpol",)),
]
# review resources: create-only, never stored
REVIEWS = [
    Resource("selfsubjectaccessreviews", "SelfSubjectAccessReview", "authorization.k8s.io", "v1",
             False),
    Resource("subjectaccessreviews", "SubjectAccessReview", "authorization.k8s.io", "v1", False),
    Resource("selfsubjectrulesreviews", "SelfSubjectRulesReview", "authorization.k8s.io", "v1",
             True),
]
BY_PATH = {(r.group, r.version, r.name): r for r in RESOURCES + REVIEWS}
GROUPS = ["rbac.authorization.k8s.io", "networking.k8s.io", "authorization.k8s.io"]


def storage_key(prefix: str, resource: Resource, namespace: str | None, name: str = "") -> str:
    """Where upstream keeps an object (or, with no name, the prefix of a list)."""
    parts = [prefix.rstrip("/"), resource.name]
    if resource.namespaced and namespace:
        parts.append(namespace)
    key = "/".join(parts) + "/"
    return key + name if name else key


def api_versions(address: str) -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def group_list() -> dict:
    groups = []
    for group in GROUPS:
        version = {"groupVersion": f"{group}/v1", "version": "v1"}
        groups.append({"name": group, "versions": [version], "preferredVersion": version})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def resource_list(group: str, version: str) -> dict | None:
    found = [r for r in RESOURCES + REVIEWS if r.group == group and r.version == version]
    if not found:
        return None
    items = []
    for r in found:
        item = {"name": r.name, "singularName": r.singular, "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["create"] if r in REVIEWS else VERBS}
        if r.short_names:
            item["shortNames"] = list(r.short_names)
        items.append(item)
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version, "resources": items}


def parse_selector(text: str) -> list[tuple[str, str, set]]:
    """Label selector terms: (key, op, values) with op in = != in notin exists !exists."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    parsed = []
    for term in (t.strip() for t in terms if t.strip()):
        for word, op in ((" notin ", "notin"), (" in ", "in")):
            if word in term:
                key, _, values = term.partition(word)
                parsed.append((key.strip(), op, {v.strip() for v in values.strip("() ").split(",")}))
                break
        else:
            if "!=" in term:
                key, _, value = term.partition("!=")
                parsed.append((key.strip(), "!=", {value.strip()}))
            elif "=" in term:
                key, _, value = term.replace("==", "=").partition("=")
                parsed.append((key.strip(), "=", {value.strip()}))
            elif term.startswith("!"):
                parsed.append((term[1:].strip(), "!exists", set()))
            else:
                parsed.append((term, "exists", set()))
    return parsed


def selector_matches(terms: list[tuple[str, str, set]], labels: dict) -> bool:
    for key, op, values in terms:
        present, value = key in labels, labels.get(key)
        ok = {"=": present and value in values, "in": present and value in values,
              "!=": not present or value not in values, "notin": not present or value not in values,
              "exists": present, "!exists": not present}[op]
        if not ok:
            return False
    return True


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch (kubectl label/annotate, and apply's patch for our kinds,
    whose lists carry no merge keys that matter here)."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def openapi_v3(group_version_path: str) -> dict | None:
    """The OpenAPI v3 index, or one group-version's document reduced to what kubectl reads:
    each resource's PATCH operation with its GVK and the fieldValidation parameter (kubectl then
    lets the server validate fields instead of downloading schemas)."""
    paths = {("api/v1" if not g else f"apis/{g}/v1"): g for g in [""] + GROUPS}
    if not group_version_path:
        return {"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash=lab"} for p in paths}}
    if group_version_path not in paths:
        return None
    group = paths[group_version_path]
    operations = {}
    for r in RESOURCES:
        if r.group != group:
            continue
        where = (f"/{group_version_path}/namespaces/{{namespace}}/{r.name}/{{name}}"
                 if r.namespaced else f"/{group_version_path}/{r.name}/{{name}}")
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        parameters = [{"name": n, "in": "query", "schema": {"type": "string"}}
                      for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        operations[where] = {"patch": {"operationId": f"patch{r.kind}", "parameters": parameters,
                                       "x-kubernetes-group-version-kind": gvk,
                                       "x-kubernetes-action": "patch", "responses": {}},
                             "put": {"operationId": f"replace{r.kind}", "parameters": parameters,
                                     "x-kubernetes-group-version-kind": gvk,
                                     "x-kubernetes-action": "put", "responses": {}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.33.0"},
            "paths": operations, "components": {"schemas": {}}}


def _proto_string(number: int, text: bytes) -> bytes:
    return bytes([number << 3 | 2, len(text)]) + text


# An OpenAPI v2 document (gnostic protobuf, the only encoding kubectl reads) with no schemas:
# `swagger: "2.0"`, info {title, version}. kubectl's client-side validation then finds no
# schema for a kind and leaves checking to the server, as the lab's v3 index asks it to.
OPENAPI_V2_PROTOBUF = _proto_string(1, b"2.0") + _proto_string(
    2, _proto_string(1, b"Kubernetes") + _proto_string(2, b"v1.33.0"))
