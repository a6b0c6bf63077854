"""kubeadm `--patches DIR` as the lab's kubeadm applies it.

kubeadm reads every file of DIR named `target[suffix][+patchtype].{yaml,yml,json}` in name order;
target is one of kube-apiserver, kube-controller-manager, kube-scheduler, etcd,
kubeletconfiguration; patchtype is strategic (the default), merge (RFC 7386) or json (RFC 6902).
A file may hold several YAML documents, each one patch. Files for other targets are skipped;
a bad patch type or a patch that does not apply fails the command, as kubeadm does.
The patched object is written back in kubeadm's YAML style (layout.kube_yaml).
"""

from __future__ import annotations

import copy
import json
import os
import re

import yaml

from harden.lab.layout import kube_yaml

TARGETS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd",
           "kubeletconfiguration")
PATCH_TYPES = {"strategic": "application/strategic-merge-patch+json",
               "merge": "application/merge-patch+json", "json": "application/json-patch+json"}
_NAME = re.compile(r"^(?P<target>[a-z-]+?)(?P<suffix>[^+.]*)(\+(?P<type>[^.]*))?"
                   r"\.(?P<ext>yaml|yml|json)$")
# strategic merge keys of the Pod fields a static pod has (k8s.io/api/core/v1 patchMergeKey)
MERGE_KEYS = {"containers": "name", "initContainers": "name", "volumes": "name",
              "volumeMounts": "mountPath", "env": "name", "ports": "containerPort",
              "imagePullSecrets": "name", "tolerations": None}


class PatchError(Exception):
    """A patch kubeadm would refuse or fail to apply."""


def patch_files(directory: str) -> list[tuple[str, str, str]]:
    """(path, target, patch type) of every patch file in `directory`, in name order."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as err:
        raise PatchError(f'could not list patch files for path "{directory}": {err}') from None
    found = []
    for name in names:
        match = _NAME.match(name)
        path = os.path.join(directory, name)
        if not match or not os.path.isfile(path):
            continue
        target = next((t for t in TARGETS if name.startswith(t)), None)
        if target is None:
            continue
        kind = match.group("type") if match.group("type") is not None else "strategic"
        if kind not in PATCH_TYPES:
            raise PatchError(f'unknown or missing patch type "{kind}" in file "{path}"; '
                             f'supported types: {", ".join(PATCH_TYPES)}')
        found.append((path, target, kind))
    return found


def _documents(path: str, kind: str) -> list:
    try:
        with open(path) as handle:
            text = handle.read()
        if kind == "json" and path.endswith(".json"):
            docs = [json.loads(text)]
        else:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise PatchError(f'could not parse patch file "{path}": {err}') from None
    return docs


def apply(directory: str, target: str, content: bytes, out=print) -> bytes:
    """`content` (a manifest or the kubelet config) with every patch for `target` applied."""
    relevant = [(p, k) for p, t, k in patch_files(directory) if t == target]
    if not relevant:
        return content
    obj = yaml.safe_load(content)
    for path, kind in relevant:
        for patch in _documents(path, kind):
            obj = _apply_one(obj, patch, kind, path)
        out(f'[patches] Applied patch of type "{PATCH_TYPES[kind]}" to target "{target}"')
    return kube_yaml(obj)


def _apply_one(obj, patch, kind: str, path: str):
    try:
        if kind == "json":
            return json_patch(obj, patch)
        if not isinstance(patch, dict):
            raise PatchError("a merge patch must be a mapping")
        return merge_patch(obj, patch) if kind == "merge" else strategic_merge(obj, patch)
    except PatchError as err:
        raise PatchError(f'could not apply the patch in "{path}": {err}') from None


def merge_patch(target, patch):
    """RFC 7386: mappings merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge(target, patch, field: str = ""):
    """Kubernetes strategic merge for pods: lists with a merge key merge item by item,
    other lists are replaced; `$patch: delete|replace` on an item or mapping."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        out = dict(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif isinstance(value, list) and MERGE_KEYS.get(key):
                out[key] = _merge_list(out.get(key) or [], value, MERGE_KEYS[key])
            else:
                out[key] = strategic_merge(out.get(key), value, key)
        return out
    return copy.deepcopy(patch)


def _merge_list(items: list, patch: list, key: str) -> list:
    out = [copy.deepcopy(i) for i in items]
    for entry in patch:
        if not isinstance(entry, dict) or key not in entry:
            raise PatchError(f"map: {entry} does not contain declared merge key: {key}")
        index = next((i for i, item in enumerate(out) if item.get(key) == entry[key]), None)
        if entry.get("$patch") == "delete":
            if index is not None:
                out.pop(index)
        elif index is None:
            out.append({k: v for k, v in entry.items() if k != "$patch"})
        else:
            out[index] = strategic_merge(out[index], entry)
    return out


# --- RFC 6902 ---------------------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'JSON pointer "{path}" must start with /')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts: list[str], path: str):
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"doc is missing path: {path}") from None
    return node


def _index(node: list, part: str, path: str, adding: bool) -> int:
    if adding and part == "-":
        return len(node)
    try:
        index = int(part)
    except ValueError:
        raise PatchError(f"invalid index {part!r} in {path}") from None
    if not 0 <= index <= len(node) - (0 if adding else 1):
        raise PatchError(f"index out of range: {path}")
    return index


def _get(doc, path: str):
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    try:
        return parent[_index(parent, parts[-1], path, False)] if isinstance(parent, list) \
            else parent[parts[-1]]
    except (KeyError, TypeError):
        raise PatchError(f"doc is missing path: {path}") from None


def _remove(doc, path: str):
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        return parent.pop(_index(parent, parts[-1], path, False))
    if not isinstance(parent, dict) or parts[-1] not in parent:
        raise PatchError(f"doc is missing path: {path}")
    return parent.pop(parts[-1])


def _add(doc, path: str, value, replace: bool = False):
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        index = _index(parent, parts[-1], path, not replace)
        if replace:
            parent[index] = copy.deepcopy(value)
        else:
            parent.insert(index, copy.deepcopy(value))
    elif isinstance(parent, dict):
        if replace and parts[-1] not in parent:
            raise PatchError(f"doc is missing key: {path}")
        parent[parts[-1]] = copy.deepcopy(value)
    else:
        raise PatchError(f"doc is missing path: {path}")
    return doc


def json_patch(doc, operations):
    """RFC 6902 operations add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise PatchError("a json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid operation {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "add":
            doc = _add(doc, path, op.get("value"))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, op.get("value"), replace=True)
        elif kind in ("move", "copy"):
            value = _remove(doc, op["from"]) if kind == "move" else copy.deepcopy(
                _get(doc, op["from"]))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc
