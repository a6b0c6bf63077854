"""The lab kube-apiserver's REST API: discovery, CRUD of stored objects, authorization reviews.

Objects live in etcd under upstream's key layout and are encrypted at rest by the running
EncryptionConfiguration (harden.lab.components.encryption). Values are stored as JSON (the
real server stores built-in kinds as protobuf; the envelope, prefixes and keys are the same).
resourceVersion is the etcd mod_revision; updates compare it, so a stale update gets the
API server's 409 Conflict. Authorization follows --authorization-mode in order (RBAC from the
stored roles and bindings); members of system:masters are always allowed, as upstream.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import uuid
from typing import Callable

import yaml

from harden.lab.components import rbac, resources
from harden.lab.components.encryption import TransformError, Transformers
from harden.lab.components.etcdclient import EtcdClient, EtcdError
from harden.lab.components.resources import Resource

Answer = tuple[int, str, bytes]
JSON = "application/json"
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
PATCH_TYPES = ("application/merge-patch+json", "application/strategic-merge-patch+json",
               "application/json-patch+json", "application/apply-patch+yaml")


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def answer(self) -> Answer:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": self.details,
                "code": self.code}
        return self.code, JSON, json.dumps(body).encode()


def _json(code: int, body: dict) -> Answer:
    return code, JSON, json.dumps(body).encode()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _qs(query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl
    return dict(parse_qsl(query, keep_blank_values=True))


def _qualified(resource: Resource) -> str:
    return f"{resource.name}.{resource.group}" if resource.group else resource.name


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource)} "{name}" not found',
                    {"name": name, "group": resource.group, "kind": resource.name})


def internal(err: Exception) -> ApiError:
    return ApiError(500, "InternalError", f"Internal error occurred: {err}",
                    {"causes": [{"message": str(err)}]})


class ObjectStore:
    """Typed objects in etcd, through the encryption transformers."""

    def __init__(self, etcd: EtcdClient, transformers: Transformers, prefix: str = "/registry"):
        self.etcd, self.transformers, self.prefix = etcd, transformers, prefix

    def key(self, resource: Resource, namespace: str | None, name: str = "") -> str:
        return resources.storage_key(self.prefix, resource, namespace, name)

    def decode(self, resource: Resource, kv) -> dict:
        try:
            plain = self.transformers.from_storage(resource.name, resource.group, kv.key, kv.value)
            obj = json.loads(plain)
        except TransformError as err:
            raise internal(err) from None
        except ValueError as err:
            raise internal(f'unable to decode key "{kv.key}": {err}') from None
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        obj["kind"], obj["apiVersion"] = resource.kind, resource.group_version
        return obj

    def encode(self, resource: Resource, key: str, obj: dict) -> bytes:
        stored = json.loads(json.dumps(obj))
        stored.get("metadata", {}).pop("resourceVersion", None)
        try:
            return self.transformers.to_storage(resource.name, resource.group, key,
                                                json.dumps(stored, sort_keys=True).encode())
        except TransformError as err:
            raise internal(err) from None

    def get(self, resource: Resource, namespace: str | None, name: str) -> tuple[dict, int]:
        kv = self._etcd(lambda: self.etcd.get(self.key(resource, namespace, name)))
        if kv is None:
            raise not_found(resource, name)
        return self.decode(resource, kv), kv.mod_revision

    def list(self, resource: Resource, namespace: str | None) -> tuple[list[dict], int]:
        kvs = self._etcd(lambda: self.etcd.list(self.key(resource, namespace)))
        revision = self._etcd(self.etcd.revision)
        return [self.decode(resource, kv) for kv in kvs], revision

    def create(self, resource: Resource, namespace: str | None, obj: dict) -> dict:
        name = obj["metadata"]["name"]
        key = self.key(resource, namespace, name)
        revision = self._etcd(lambda: self.etcd.create(key, self.encode(resource, key, obj)))
        if revision is None:
            raise ApiError(409, "AlreadyExists", f'{_qualified(resource)} "{name}" already exists',
                           {"name": name, "group": resource.group, "kind": resource.name})
        obj["metadata"]["resourceVersion"] = str(revision)
        return obj

    def update(self, resource: Resource, namespace: str | None, obj: dict, revision: int) -> dict:
        name = obj["metadata"]["name"]
        key = self.key(resource, namespace, name)
        new = self._etcd(lambda: self.etcd.update(key, self.encode(resource, key, obj), revision))
        if new is None:
            raise conflict(resource, name)
        obj["metadata"]["resourceVersion"] = str(new)
        return obj

    def delete(self, resource: Resource, namespace: str | None, name: str) -> None:
        self._etcd(lambda: self.etcd.delete(self.key(resource, namespace, name)))

    @staticmethod
    def _etcd(call: Callable):
        try:
            return call()
        except EtcdError as err:
            raise ApiError(500, "InternalError", f"Internal error occurred: etcd: {err}") from None


def conflict(resource: Resource, name: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {_qualified(resource)} '
                    f'"{name}": the object has been modified; please apply your changes to the '
                    f'latest version and try again',
                    {"name": name, "group": resource.group, "kind": resource.name})


class KubeApi:
    """Routes one authenticated request; the caller has done authentication."""

    def __init__(self, store: ObjectStore, modes: list[str], address: str):
        self.store, self.modes, self.address = store, modes, address
        self._rbac: tuple[int, dict] = (-1, {})    # etcd revision -> RBAC objects read at it

    # -- authorization -------------------------------------------------------------------------
    def authorize(self, attrs: rbac.Attributes) -> tuple[bool, str]:
        if "system:masters" in attrs.groups:
            return True, ""
        for mode in self.modes:
            if mode == "AlwaysAllow":
                return True, ""
            if mode == "AlwaysDeny":
                return False, ""
            if mode == "RBAC":
                seen = self._rbac_snapshot()
                allowed, reason = rbac.allows(
                    attrs, self._cluster_bindings(seen), self._namespace_bindings(
                        seen, attrs.namespace), lambda *ref: self._role_rules(seen, *ref))
                if allowed:
                    return True, reason
        return False, ""

    def _rbac_snapshot(self) -> dict:
        """The roles and bindings read so far at etcd's current revision. The real authorizer
        answers from informer caches, never from etcd per request; reading them again for
        every request (a list of every binding and a get per role, through the JSON gateway)
        made each lab request cost several etcd round trips. One revision read per request
        keeps this stricter than upstream: any write anywhere starts a new snapshot."""
        revision = self.store._etcd(self.store.etcd.revision)
        current = self._rbac
        if current[0] != revision:
            current = self._rbac = (revision, {})
        return current[1]

    def _cluster_bindings(self, seen: dict) -> list[dict]:
        if "crb" not in seen:
            seen["crb"] = self.store.list(
                _resource("rbac.authorization.k8s.io", "clusterrolebindings"), None)[0]
        return seen["crb"]

    def _namespace_bindings(self, seen: dict, namespace: str) -> list[dict]:
        if not namespace:
            return []
        if ("rb", namespace) not in seen:
            seen[("rb", namespace)] = self.store.list(
                _resource("rbac.authorization.k8s.io", "rolebindings"), namespace)[0]
        return seen[("rb", namespace)]

    def _role_rules(self, seen: dict, kind: str, name: str, namespace: str) -> list[dict]:
        plural = "clusterroles" if kind == "ClusterRole" else "roles"
        key = (plural, namespace if plural == "roles" else None, name)
        if key not in seen:
            try:
                role, _ = self.store.get(_resource("rbac.authorization.k8s.io", plural),
                                         key[1], name)
                seen[key] = role.get("rules") or []
            except ApiError:
                return []
        return seen[key]

    def require(self, attrs: rbac.Attributes) -> None:
        if not self.authorize(attrs)[0]:
            raise ApiError(403, "Forbidden", rbac.forbidden_message(attrs),
                           {"name": attrs.name, "group": attrs.api_group, "kind": attrs.resource})

    # -- routing -------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: str, headers: dict, body: bytes,
               user: str, groups: tuple) -> Answer | None:
        """The answer, or None for a path this API does not serve."""
        try:
            return self._route(method, path, _qs(query), headers, body, user, groups)
        except ApiError as err:
            return err.answer()

    def _route(self, method, path, query, headers, body, user, groups) -> Answer | None:
        parts = [p for p in path.split("/") if p]
        user, groups = self._impersonate(headers, user, groups)
        if parts == ["openapi", "v2"]:
            self.require(rbac.Attributes(user, groups, "get", path=path))
            return 200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf", \
                resources.OPENAPI_V2_PROTOBUF
        if parts[:2] == ["openapi", "v3"]:
            self.require(rbac.Attributes(user, groups, "get", path=path))
            document = resources.openapi_v3("/".join(parts[2:]))
            if document is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(200, document)
        discovery = self._discovery(parts)
        if discovery is not None:
            self.require(rbac.Attributes(user, groups, "get", path=path))
            return _json(200, discovery)
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            return None
        resource = resources.BY_PATH.get((group, version, rest[0]))
        if resource is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else ""
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if resource in resources.REVIEWS:
            return self._review(resource, method, body, user, groups, namespace)
        verb = _verb(method, name, query)
        self.require(rbac.Attributes(user, groups, verb, namespace or "", group, resource.name,
                                     "", name))
        return self._crud(verb, resource, namespace, name, query, headers, body)

    def _impersonate(self, headers: dict, user: str, groups: tuple) -> tuple[str, tuple]:
        """Impersonate-User / Impersonate-Group (kubectl --as/--as-group), allowed by the
        `impersonate` verb on users and groups, as upstream's impersonation filter."""
        wanted = headers.get("Impersonate-User")
        if not wanted:
            return user, groups
        self.require(rbac.Attributes(user, groups, "impersonate", "", "", "users", "", wanted))
        wanted_groups = tuple(g for g in [headers.get("Impersonate-Group")] if g)
        for group in wanted_groups:
            self.require(rbac.Attributes(user, groups, "impersonate", "", "", "groups", "", group))
        extra = ("system:authenticated",) if wanted != "system:anonymous" else ()
        return wanted, wanted_groups + extra

    def _discovery(self, parts: list[str]) -> dict | None:
        if parts == ["api"]:
            return resources.api_versions(self.address)
        if parts == ["apis"]:
            return resources.group_list()
        if parts == ["api", "v1"]:
            return resources.resource_list("", "v1")
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in resources.GROUPS:
            version = {"groupVersion": f"{parts[1]}/v1", "version": "v1"}
            return {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                    "versions": [version], "preferredVersion": version}
        if len(parts) == 3 and parts[0] == "apis":
            return resources.resource_list(parts[1], parts[2])
        return None

    # -- CRUD ----------------------------------------------------------------------------------
    def _crud(self, verb, resource, namespace, name, query, headers, body) -> Answer:
        if verb == "get":
            obj = self.store.get(resource, namespace, name)[0]
            return self._render(headers, resource, [obj], single=True, query=query)
        if verb == "list":
            return self._list(resource, namespace, query, headers)
        if verb == "create":
            return _json(201, self._create(resource, namespace, _parse(body, headers), query))
        if verb == "update":
            return _json(200, self._replace(resource, namespace, name, _parse(body, headers),
                                            query))
        if verb == "patch":
            return self._patch(resource, namespace, name, body, headers, query)
        if verb == "delete":
            return _json(200, self._delete(resource, namespace, name, query))
        if verb == "deletecollection":
            items = self._select(resource, namespace, query)[0]
            for item in items:
                self._delete(resource, item["metadata"].get("namespace"), item["metadata"]["name"],
                             query)
            return _json(200, {"kind": f"{resource.kind}List", "apiVersion": resource.group_version,
                               "metadata": {}, "items": items})
        raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported")

    def _select(self, resource, namespace, query) -> tuple[list[dict], int]:
        items, revision = self.store.list(resource, namespace)
        terms = resources.parse_selector(query.get("labelSelector", ""))
        items = [i for i in items if resources.selector_matches(
            terms, i.get("metadata", {}).get("labels") or {})]
        for term in filter(None, query.get("fieldSelector", "").split(",")):
            field, negate, value = (term.partition("!=")[0], True, term.partition("!=")[2]) \
                if "!=" in term else (term.partition("=")[0], False, term.partition("=")[2].lstrip("="))
            items = [i for i in items if (_field(i, field) == value) != negate]
        return items, revision

    def _list(self, resource, namespace, query, headers) -> Answer:
        if namespace:
            self._namespace_exists(namespace, required=False)
        items, revision = self._select(resource, namespace, query)
        return self._render(headers, resource, items, single=False, query=query, revision=revision)

    def _render(self, headers, resource, items, *, single, query, revision=0) -> Answer:
        if "as=Table" in headers.get("Accept", ""):
            return _json(200, _table(items, revision, query.get("includeObject", "Object")))
        if single:
            return _json(200, items[0])
        return _json(200, {"kind": f"{resource.kind}List", "apiVersion": resource.group_version,
                           "metadata": {"resourceVersion": str(revision)}, "items": items})

    def _namespace_exists(self, namespace: str, required: bool = True) -> None:
        try:
            self.store.get(_resource("", "namespaces"), None, namespace)
        except ApiError as err:
            if err.code == 404 and required:
                raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                               {"name": namespace, "kind": "namespaces"}) from None

    def _prepare(self, resource: Resource, namespace: str | None, obj: dict, name: str = "") -> dict:
        if not isinstance(obj, dict):
            raise ApiError(400, "BadRequest", "the body of the request was not a JSON object")
        if obj.get("kind") not in (None, resource.kind):
            raise ApiError(400, "BadRequest", f'the API version in the data ({obj.get("apiVersion")})'
                           f' does not match the expected API version ({resource.group_version})'
                           if obj.get("kind") is None else
                           f"kind {obj.get('kind')} does not match {resource.kind}")
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise ApiError(422, "Invalid", f"{resource.kind} \"\" is invalid: metadata.name: "
                           "Required value: name or generateName is required",
                           {"kind": resource.kind})
        if name and meta["name"] != name:
            raise ApiError(400, "BadRequest", "the name of the object "
                           f"({meta['name']}) does not match the name on the URL ({name})")
        if not _valid_name(resource, meta["name"]):
            raise ApiError(422, "Invalid", f'{resource.kind} "{meta["name"]}" is invalid: '
                           f'metadata.name: Invalid value: "{meta["name"]}": a lowercase RFC 1123 '
                           "subdomain must consist of lower case alphanumeric characters, '-' or "
                           "'.', and must start and end with an alphanumeric character",
                           {"name": meta["name"], "kind": resource.kind})
        if resource.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                               "match the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["kind"], obj["apiVersion"] = resource.kind, resource.group_version
        if resource.name == "secrets":
            _normalise_secret(obj)
        if resource.name == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        return obj

    def _create(self, resource, namespace, obj, query) -> dict:
        obj = self._prepare(resource, namespace, obj)
        if resource.namespaced:
            self._namespace_exists(namespace)
        meta = obj["metadata"]
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        if query.get("dryRun"):
            return obj
        created = self.store.create(resource, namespace, obj)
        if resource.name == "namespaces":
            self._default_service_account(meta["name"])
        return created

    def _default_service_account(self, namespace: str) -> None:
        """What the controller-manager's serviceaccount controller does for a new namespace."""
        account = {"metadata": {"name": "default"}}
        try:
            self._create(_resource("", "serviceaccounts"), namespace, account, {})
        except ApiError as err:
            if err.code != 409:
                raise

    def _replace(self, resource, namespace, name, obj, query) -> dict:
        obj = self._prepare(resource, namespace, obj, name)
        current, revision = self.store.get(resource, namespace, name)
        wanted = obj["metadata"].get("resourceVersion")
        if wanted and wanted != str(revision):
            raise conflict(resource, name)
        for kept in ("uid", "creationTimestamp"):
            obj["metadata"][kept] = current["metadata"].get(kept)
        if query.get("dryRun"):
            return obj
        return self.store.update(resource, namespace, obj, revision)

    def _patch(self, resource, namespace, name, body, headers, query) -> Answer:
        content_type = headers.get("Content-Type", "").split(";")[0].strip()
        if content_type not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType",
                           f'the body of the request was in an unknown format - accepted media '
                           f'types include: {", ".join(PATCH_TYPES)}')
        patch = _parse(body, {"Content-Type": "application/yaml"
                              if content_type.endswith("yaml") else JSON})
        for _attempt in range(5):
            try:
                current, revision = self.store.get(resource, namespace, name)
            except ApiError as err:
                if err.code == 404 and content_type == "application/apply-patch+yaml":
                    return _json(201, self._create(resource, namespace, patch, query))
                raise
            if content_type == "application/json-patch+json":
                patched = _json_patch(current, patch)
            else:
                patched = resources.merge_patch(current, patch)
            wanted = (patch.get("metadata") or {}).get("resourceVersion") \
                if isinstance(patch, dict) else None
            if wanted and wanted != str(revision):
                raise conflict(resource, name)
            patched = self._prepare(resource, namespace, patched, name)
            for kept in ("uid", "creationTimestamp"):
                patched["metadata"][kept] = current["metadata"].get(kept)
            if query.get("dryRun"):
                return _json(200, patched)
            try:
                return _json(200, self.store.update(resource, namespace, patched, revision))
            except ApiError as err:
                if err.code != 409 or wanted:
                    raise
        raise conflict(resource, name)

    def _delete(self, resource, namespace, name, query) -> dict:
        obj, _revision = self.store.get(resource, namespace, name)
        if query.get("dryRun"):
            return obj
        if resource.name == "namespaces":
            for other in resources.RESOURCES:
                if other.namespaced:
                    for item in self.store.list(other, name)[0]:
                        self.store.delete(other, name, item["metadata"]["name"])
        self.store.delete(resource, namespace, name)
        return obj

    # -- reviews -------------------------------------------------------------------------------
    def _review(self, resource, method, body, user, groups, namespace) -> Answer:
        if method != "POST":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {resource.name}")
        self.require(rbac.Attributes(user, groups, "create", "", resource.group, resource.name))
        review = _parse(body, {"Content-Type": JSON})
        review.setdefault("apiVersion", resource.group_version)
        review["kind"] = resource.kind
        spec = review.get("spec") or {}
        if resource.name == "selfsubjectrulesreviews":
            review["status"] = {"resourceRules": [], "nonResourceRules": [], "incomplete": True}
            return _json(201, review)
        if resource.name == "subjectaccessreviews":
            subject_user, subject_groups = spec.get("user", ""), tuple(spec.get("groups") or [])
        else:
            subject_user, subject_groups = user, groups
        attrs = _review_attributes(spec, subject_user, subject_groups)
        allowed, reason = self.authorize(attrs)
        review["status"] = {"allowed": allowed, **({"reason": reason} if reason else {})}
        review.setdefault("metadata", {})["creationTimestamp"] = None
        return _json(201, review)


def _review_attributes(spec: dict, user: str, groups: tuple) -> rbac.Attributes:
    if spec.get("nonResourceAttributes"):
        attrs = spec["nonResourceAttributes"]
        return rbac.Attributes(user, groups, attrs.get("verb", ""), path=attrs.get("path", ""))
    attrs = spec.get("resourceAttributes") or {}
    return rbac.Attributes(user, groups, attrs.get("verb", ""), attrs.get("namespace", ""),
                           attrs.get("group", ""), attrs.get("resource", ""),
                           attrs.get("subresource", ""), attrs.get("name", ""))


def _valid_name(resource: Resource, name: str) -> bool:
    """RBAC objects only need a valid path segment (kubeadm's names have ':'); the others a DNS
    subdomain (namespaces: a DNS label)."""
    if resource.group == "rbac.authorization.k8s.io":
        return name not in (".", "..") and not any(c in name for c in "/%")
    limit = 63 if resource.name == "namespaces" else 253
    return bool(NAME_RE.match(name)) and len(name) <= limit and \
        (resource.name != "namespaces" or "." not in name)


def _resource(group: str, name: str) -> Resource:
    return next(r for r in resources.RESOURCES if r.group == group and r.name == name)


def _verb(method: str, name: str, query: dict) -> str:
    if method == "GET":
        if query.get("watch") in ("true", "1"):
            return "watch"
        return "get" if name else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch",
             "DELETE": "delete" if name else "deletecollection"}
    if method not in verbs:
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
    return verbs[method]


def _parse(body: bytes, headers: dict):
    try:
        if body.startswith(PROTO_MAGIC):
            return object_from_protobuf(body)
        if "yaml" in headers.get("Content-Type", ""):
            return yaml.safe_load(body or b"{}") or {}
        return json.loads(body or b"{}")
    except (ValueError, yaml.YAMLError) as err:
        raise ApiError(400, "BadRequest", f"the request body is not valid: {err}") from None


def _field(obj: dict, path: str):
    value = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _normalise_secret(obj: dict) -> None:
    """stringData is write-only: merged into data (base64), as the API server does."""
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    data = obj.get("data") or {}
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    for key, value in list(data.items()):
        try:
            base64.b64decode(value or "", validate=True)
        except (ValueError, TypeError):
            raise ApiError(422, "Invalid", f'Secret "{obj["metadata"]["name"]}" is invalid: '
                           f"data[{key}]: Invalid value: illegal base64 data") from None
    if data:
        obj["data"] = data


def _json_patch(target: dict, operations: list) -> dict:
    """RFC 6902 add/replace/remove/test, enough for kubectl patch --type=json."""
    doc = json.loads(json.dumps(target))
    for op in operations or []:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op.get("path", "").split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1] if parts else ""
        kind = op.get("op")
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                parent.insert(index, op["value"]) if kind == "add" else parent.__setitem__(index, op["value"])
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            parent.pop(int(last) if isinstance(parent, list) else last, None)
        elif kind == "test" and (parent[int(last)] if isinstance(parent, list)
                                 else parent.get(last)) != op.get("value"):
            raise ApiError(422, "Invalid", f"the test operation failed at {op.get('path')}")
    return doc


def _age(stamp: str) -> str:
    try:
        then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    seconds = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def _table(items: list[dict], revision: int, include: str) -> dict:
    """The meta.k8s.io Table kubectl asks for when it prints: NAME and AGE columns."""
    rows = []
    for item in items:
        meta = item.get("metadata", {})
        obj = item if include == "Object" else {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
        rows.append({"cells": [meta.get("name"), _age(meta.get("creationTimestamp", ""))],
                     "object": obj})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(revision)},
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "description": "Name",
                 "priority": 0},
                {"name": "Age", "type": "string", "format": "", "description": "Age",
                 "priority": 0}],
            "rows": rows}


def bootstrap(store: ObjectStore, seed: list[tuple[str, dict]] = ()) -> None:
    """Create what a fresh cluster has (system namespaces, bootstrap RBAC) plus the lab's seed,
    each only when absent: several API servers may run this at once, harmlessly."""
    api = KubeApi(store, ["AlwaysAllow"], "")
    system = [("namespaces", {"metadata": {"name": n}})
              for n in ("default", "kube-system", "kube-public", "kube-node-lease")]
    wanted = system + rbac.bootstrap_policy() + list(seed)
    present = _stored_keys(store, {plural for plural, _ in wanted})
    for plural, obj in wanted:
        resource = next(r for r in resources.RESOURCES if r.name == plural)
        namespace = (obj.get("metadata") or {}).get("namespace") if resource.namespaced else None
        if store.key(resource, namespace, (obj.get("metadata") or {}).get("name", "")) in present:
            continue            # exists: its create would be refused (409), as below
        try:
            api._create(resource, namespace, json.loads(json.dumps(obj)), {})
        except ApiError as err:
            if err.code != 409:
                raise


def _stored_keys(store: ObjectStore, plurals: set[str]) -> set[str]:
    """The keys etcd already holds for these resources (one keys-only range each), so that a
    restarted API server does not encrypt and send hundreds of creates etcd refuses anyway."""
    keys: set[str] = set()
    for resource in resources.RESOURCES:
        if resource.name in plurals:
            prefix = store.key(resource, None)
            keys.update(kv.key for kv in store._etcd(lambda: store.etcd.list(prefix, True)))
    return keys


def load_seed(path: str | None) -> list[tuple[str, dict]]:
    if not path or not os.path.exists(path):
        return []
    with open(path) as handle:
        return [(entry["resource"], entry["object"]) for entry in json.load(handle)]


# --- protobuf request bodies (kubectl sends authorization reviews as protobuf) ---------------

PROTO_MAGIC = b"k8s\x00"


def _proto_fields(data: bytes) -> dict[int, list]:
    """field number -> values of one protobuf message (varints as int, the rest as bytes)."""
    fields: dict[int, list] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            byte = data[i]
            i += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    while i < len(data):
        tag = varint()
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value = varint()
        elif wire == 2:
            length = varint()
            value, i = data[i:i + length], i + length
        elif wire == 1:
            value, i = data[i:i + 8], i + 8
        elif wire == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


def _strings(message: bytes, names: dict[int, str]) -> dict:
    fields = _proto_fields(message)
    return {name: fields[number][0].decode() for number, name in names.items() if number in fields}


def review_from_protobuf(body: bytes) -> dict:
    """A SelfSubjectAccessReview / SubjectAccessReview in the protobuf envelope, as JSON data
    (only the spec fields authorization needs)."""
    unknown = _proto_fields(body[len(PROTO_MAGIC):])
    type_meta = _strings(unknown.get(1, [b""])[0], {1: "apiVersion", 2: "kind"})
    review = _proto_fields(unknown.get(2, [b""])[0])
    spec_fields = _proto_fields(review.get(2, [b""])[0])
    spec: dict = {}
    if 1 in spec_fields:
        spec["resourceAttributes"] = _strings(spec_fields[1][0], {
            1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource",
            7: "name"})
    if 2 in spec_fields:
        spec["nonResourceAttributes"] = _strings(spec_fields[2][0], {1: "path", 2: "verb"})
    if 3 in spec_fields:            # SubjectAccessReview: user, groups
        spec["user"] = spec_fields[3][0].decode()
    if 4 in spec_fields:
        spec["groups"] = [g.decode() for g in spec_fields[4]]
    return {**type_meta, "metadata": {}, "spec": spec}


# Field numbers of the built-in kinds kubectl creates through its typed clients (from
# k8s.io/api generated.proto): name -> (number, shape); shape "s" string, "b" bytes (base64 in
# JSON), "i" varint, "t" bool, "ms" map<string,string>, "mb" map<string,bytes>, "ls" repeated
# string, or a nested schema (list of one schema = repeated message).
_META = {"name": (1, "s"), "generateName": (2, "s"), "namespace": (3, "s"),
         "labels": (11, "ms"), "annotations": (12, "ms"), "finalizers": (14, "ls")}
_RULE = {"verbs": (1, "ls"), "apiGroups": (2, "ls"), "resources": (3, "ls"),
         "resourceNames": (4, "ls"), "nonResourceURLs": (5, "ls")}
_SUBJECT = {"kind": (1, "s"), "apiGroup": (2, "s"), "name": (3, "s"), "namespace": (4, "s")}
_ROLE_REF = {"apiGroup": (1, "s"), "kind": (2, "s"), "name": (3, "s")}
_BINDING = {"metadata": (1, _META), "subjects": (2, [_SUBJECT]), "roleRef": (3, _ROLE_REF)}
PROTO_SCHEMAS = {
    "Secret": {"metadata": (1, _META), "data": (2, "mb"), "type": (3, "s"),
               "stringData": (4, "ms"), "immutable": (5, "t")},
    "ConfigMap": {"metadata": (1, _META), "data": (2, "ms"), "binaryData": (3, "mb"),
                  "immutable": (4, "t")},
    "Namespace": {"metadata": (1, _META)},
    "ServiceAccount": {"metadata": (1, _META), "automountServiceAccountToken": (4, "t")},
    "Role": {"metadata": (1, _META), "rules": (2, [_RULE])},
    "ClusterRole": {"metadata": (1, _META), "rules": (2, [_RULE])},
    "RoleBinding": _BINDING, "ClusterRoleBinding": _BINDING,
}


def _decode_message(data: bytes, schema: dict) -> dict:
    fields = _proto_fields(data)
    result: dict = {}
    for name, (number, shape) in schema.items():
        values = fields.get(number)
        if not values:
            continue
        if shape == "s":
            if values[0]:      # proto3 sends unset strings as ""; JSON omits them
                result[name] = values[0].decode()
        elif shape == "b":
            result[name] = base64.b64encode(values[0]).decode()
        elif shape in ("i", "t"):
            result[name] = bool(values[0]) if shape == "t" else values[0]
        elif shape == "ls":
            result[name] = [v.decode() for v in values]
        elif shape in ("ms", "mb"):
            entries = {}
            for entry in values:
                pair = _proto_fields(entry)
                key = pair.get(1, [b""])[0].decode()
                raw = pair.get(2, [b""])[0]
                entries[key] = raw.decode() if shape == "ms" else base64.b64encode(raw).decode()
            result[name] = entries
        elif isinstance(shape, list):
            result[name] = [_decode_message(v, shape[0]) for v in values]
        else:
            result[name] = _decode_message(values[0], shape)
    return result


def object_from_protobuf(body: bytes) -> dict:
    """A built-in object in the protobuf envelope (runtime.Unknown) as JSON data."""
    unknown = _proto_fields(body[len(PROTO_MAGIC):])
    type_meta = _strings(unknown.get(1, [b""])[0], {1: "apiVersion", 2: "kind"})
    kind = type_meta.get("kind", "")
    if kind.endswith("AccessReview"):
        return review_from_protobuf(body)
    schema = PROTO_SCHEMAS.get(kind)
    if schema is None:
        raise ApiError(415, "UnsupportedMediaType", f"protobuf bodies of kind {kind!r} are not "
                       "supported by the lab API server; send JSON")
    return {**type_meta, **_decode_message(unknown.get(2, [b""])[0], schema)}
