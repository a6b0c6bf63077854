"""The lab API server authorizes from the roles and bindings read at etcd's current revision:
once per revision rather than once per request, and never from an older one."""

from __future__ import annotations

import json

from harden.lab.components import rbac, resources
from harden.lab.components.encryption import Transformers
from harden.lab.components.etcdclient import KeyValue
from harden.lab.components.kubeapi import KubeApi, ObjectStore


class FakeEtcd:
    """A dict with etcd's revision counter; counts the range reads a caller makes."""

    def __init__(self):
        self.data: dict[str, KeyValue] = {}
        self.rev = 1
        self.reads = 0

    def put(self, key: str, obj: dict) -> None:
        self.rev += 1
        self.data[key] = KeyValue(key, json.dumps(obj).encode(), self.rev, self.rev)

    def get(self, key):
        self.reads += 1
        return self.data.get(key)

    def list(self, prefix, keys_only=False):
        self.reads += 1
        return [kv for key, kv in sorted(self.data.items()) if key.startswith(prefix)]

    def revision(self):
        return self.rev


def _rbac(plural: str) -> resources.Resource:
    return next(r for r in resources.RESOURCES
                if r.group == "rbac.authorization.k8s.io" and r.name == plural)


def api_with_reader_role():
    etcd = FakeEtcd()
    store = ObjectStore(etcd, Transformers(None, lambda path: {}, False))
    etcd.put(store.key(_rbac("clusterroles"), None, "reader"), {
        "metadata": {"name": "reader"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})
    return etcd, store, KubeApi(store, ["RBAC"], "127.0.0.1")


def bind(etcd, store, group: str) -> None:
    etcd.put(store.key(_rbac("clusterrolebindings"), None, group), {
        "metadata": {"name": group}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
        "subjects": [{"kind": "Group", "name": group}]})


def test_requests_at_one_revision_read_the_bindings_once():
    etcd, store, api = api_with_reader_role()
    bind(etcd, store, "readers")
    asking = rbac.Attributes("u", ("readers",), "get", "default", "", "secrets", name="s")
    assert api.authorize(asking)[0]
    reads = etcd.reads
    for _ in range(5):
        assert api.authorize(asking)[0]
    assert etcd.reads == reads


def test_a_write_is_seen_by_the_next_request():
    etcd, store, api = api_with_reader_role()
    asking = rbac.Attributes("u", ("late",), "get", "default", "", "secrets", name="s")
    assert not api.authorize(asking)[0]
    bind(etcd, store, "late")
    assert api.authorize(asking)[0]
    etcd.data.pop(store.key(_rbac("clusterrolebindings"), None, "late"))
    etcd.rev += 1                                     # a delete moves the revision too
    assert not api.authorize(asking)[0]
