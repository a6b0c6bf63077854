"""The API server's start-up bootstrap (system namespaces, bootstrap RBAC, the lab's seed):
what is absent is created, what exists is left as it is and costs no create request, so a
restarted API server of a lab seeded with many secrets does not send them all again."""

from __future__ import annotations

from harden.lab.components import kubeapi
from harden.lab.components.encryption import Transformers
from harden.lab.components.etcdclient import KeyValue, prefix_end


class MemoryEtcd:
    """The EtcdClient calls ObjectStore makes, on a dict; counts the writes tried."""

    def __init__(self):
        self.data: dict[str, KeyValue] = {}
        self.rev = 1
        self.creates = 0
        self.lists = 0

    def get(self, key):
        return self.data.get(key)

    def list(self, prefix, keys_only=False):
        self.lists += 1
        end = prefix_end(prefix)
        return [KeyValue(k, b"" if keys_only else v.value, v.mod_revision, v.create_revision)
                for k, v in sorted(self.data.items()) if prefix <= k < end]

    def create(self, key, value):
        self.creates += 1
        if key in self.data:
            return None
        self.rev += 1
        self.data[key] = KeyValue(key, value, self.rev, self.rev)
        return self.rev

    def revision(self):
        return self.rev


def store(etcd: MemoryEtcd) -> kubeapi.ObjectStore:
    return kubeapi.ObjectStore(etcd, Transformers(None, lambda path: {}, False))


SEED = [("namespaces", {"metadata": {"name": "apps"}}),
        *[("secrets", {"metadata": {"name": f"bulk-{i:05d}", "namespace": "apps"},
                       "type": "Opaque", "data": {"k": "dg=="}}) for i in range(50)]]


def test_a_first_bootstrap_creates_the_system_objects_and_the_seed():
    etcd = MemoryEtcd()
    kubeapi.bootstrap(store(etcd), SEED)
    keys = set(etcd.data)
    assert {"/registry/namespaces/kube-system", "/registry/namespaces/apps",
            "/registry/serviceaccounts/apps/default",
            "/registry/secrets/apps/bulk-00049"} <= keys
    assert any(k.startswith("/registry/clusterroles/") for k in keys)


def test_a_restart_sends_no_create_for_what_exists_and_recreates_what_was_deleted():
    etcd = MemoryEtcd()
    kubeapi.bootstrap(store(etcd), SEED)
    before = dict(etcd.data)
    del etcd.data["/registry/secrets/apps/bulk-00007"]
    etcd.creates = etcd.lists = 0
    kubeapi.bootstrap(store(etcd), SEED)
    assert etcd.creates == 1                               # only the deleted secret
    assert etcd.lists <= 5                                 # one keys-only range per resource
    assert set(etcd.data) == set(before)
    kept = [k for k in before if k != "/registry/secrets/apps/bulk-00007"]
    assert all(etcd.data[k] == before[k] for k in kept)    # existing objects untouched
