"""The etcd census: its awk decoder on real base64 values, the config reduced to names, the
verdict's arithmetic."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
import yaml

from harden.node import etcd_census


AWKS = ["awk"] + (["busybox awk"] if shutil.which("busybox") else [])


def run_awk(kvs: list[tuple[str, bytes]], awk: str = "awk") -> etcd_census.Census:
    """Feed one etcdctl -w json page (one line) through the census's own awk, as the node does."""
    doc = {"header": {"revision": 9}, "kvs": [
        {"key": base64.b64encode(k.encode()).decode(), "create_revision": 2, "mod_revision": 3,
         "version": 1, "value": base64.b64encode(v).decode()} for k, v in kvs], "count": len(kvs)}
    script = etcd_census.SCRIPT + f'\nprintf "%s\\n" "$DOC" | {awk} "$census_awk"'
    out = subprocess.run(["sh", "-c", script], env={"DOC": json.dumps(doc), "PATH": "/usr/bin:/bin",
                                                    "LC_ALL": "C", "census_pfx": "/registry"},
                         capture_output=True, text=True, check=True).stdout
    assert out.endswith("N|0|9|\n"), out
    census = etcd_census.Census(method="test")
    for line in out.splitlines():
        etcd_census.parse_line(census, line)
    return census


@pytest.mark.parametrize("awk", AWKS)
def test_awk_counts_values_by_resource_and_provider_key_without_printing_values(awk):
    census = run_awk([
        ("/registry/secrets/a/one", b"k8s:enc:aescbc:v1:key1:" + bytes(range(200, 256)) * 2),
        ("/registry/secrets/a/two", b"k8s:enc:aescbc:v1:key2:\x00\x01secretbytes"),
        ("/registry/secrets/b/three", b'{"kind":"Secret","data":{"password":"hunter2"}}'),
        ("/registry/configmaps/a/c", b"k8s:enc:secretbox:v1:box:" + b"\xff" * 40),
        ("/registry/clusterroles/admin", b"k8s\x00\x0a\x0bprotobuf")], awk)
    assert census.counts == {"secrets": {"aescbc:key1": 1, "aescbc:key2": 1, "identity": 1},
                             "configmaps": {"secretbox:box": 1},
                             "clusterroles.rbac.authorization.k8s.io": {"identity": 1}}


@pytest.mark.parametrize("awk", AWKS)
def test_keys_are_counted_under_the_resource_the_config_names_not_the_storage_directory(awk):
    census = run_awk([
        ("/registry/services/specs/ns/web", b"plain"),
        ("/registry/services/endpoints/ns/web", b"plain"),
        ("/registry/minions/node-1", b"plain"),
        ("/registry/controllers/ns/rc", b"plain"),
        ("/registry/ingress/ns/in", b"plain"),
        ("/registry/deployments/ns/d", b"plain"),
        ("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com", b"plain"),
        ("/registry/example.com/widgets/ns/w", b"k8s:enc:aesgcm:v1:k:" + b"\x01" * 20),
        ("/registry/serving.knative.dev/services/ns/s", b"plain"),
        ("/registry/ranges/serviceips", b"plain"),
        ("/registry/podsecuritypolicy/old", b"plain")], awk)
    assert census.counts == {
        "services": {"identity": 1}, "endpoints": {"identity": 1}, "nodes": {"identity": 1},
        "replicationcontrollers": {"identity": 1}, "ingresses.networking.k8s.io": {"identity": 1},
        "deployments.apps": {"identity": 1},
        "customresourcedefinitions.apiextensions.k8s.io": {"identity": 1},
        "widgets.example.com": {"aesgcm:k": 1}, "services.serving.knative.dev": {"identity": 1}}
    assert census.unknown == {"ranges": {"identity": 1}, "podsecuritypolicy": {"identity": 1}}


def shell(call: str, value: str) -> str:
    return subprocess.run(["sh", "-c", etcd_census.SCRIPT + f'\n{call} "$T"'],
                          env={"T": value, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_the_census_reads_the_directories_the_api_server_stores_the_named_resources_in():
    assert shell("census_dirs", "") == "secrets"
    assert shell("census_dirs", "configmaps roles.rbac.authorization.k8s.io secrets") \
        == "secrets configmaps roles rbac.authorization.k8s.io/roles"
    assert shell("census_dirs", "services endpoints nodes replicationcontrollers "
                 "ingresses.networking.k8s.io deployments.apps widgets.example.com "
                 "customresourcedefinitions.apiextensions.k8s.io") == (
        "secrets services/specs services/endpoints minions controllers ingress deployments "
        "example.com/widgets customresourcedefinitions "
        "apiextensions.k8s.io/customresourcedefinitions")
    # a custom resource named like a built-in one is read where custom resources are
    assert shell("census_dirs", "services.serving.knative.dev jobs.batch.volcano.sh") \
        == "secrets serving.knative.dev/services batch.volcano.sh/jobs"
    assert shell("census_dirs", "secrets *.*") == "--all"
    assert shell("census_dirs", "*.apps") == "--all"
    assert shell("census_dirs", "configmaps ../x a/b") == "secrets configmaps"


def test_names_are_the_words_under_resources_whatever_the_key_order():
    tokens = ("apiVersion apiserver.config.k8s.io v1 kind EncryptionConfiguration resources "
              "providers aescbc keys name key1 identity resources secrets configmaps "
              "providers identity resources services")
    assert shell("census_names", tokens).split() == ["secrets", "configmaps", "services"]
    assert shell("census_names", "") == ""


CONFIG = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
          "resources": [
              {"resources": ["secrets", "configmaps"],
               "providers": [{"aescbc": {"keys": [{"name": "key2", "secret": "c2VjcmV0"},
                                                  {"name": "key1", "secret": "b25l"}]}},
                             {"identity": {}}]},
              {"resources": ["*.*"], "providers": [{"identity": {}}]}]}
LAYOUT = [{"resources": ["secrets", "configmaps"],
           "providers": ["aescbc:key2", "aescbc:key1", "identity"]},
          {"resources": ["*.*"], "providers": ["identity"]}]


@pytest.mark.parametrize("dump", [
    lambda c: yaml.safe_dump(c, sort_keys=False),
    lambda c: yaml.safe_dump(c),                     # sorted keys: providers before resources
    lambda c: json.dumps(c, indent=1)])
def test_the_layout_is_read_whatever_order_the_file_gives_an_entrys_keys(tmp_path, dump):
    config = tmp_path / "enc.yaml"
    config.write_text(dump(CONFIG))
    tokens = shell("enc_layout", str(config))
    assert "c2VjcmV0" not in tokens and "b25l" not in tokens
    assert etcd_census.layout_from_tokens(tokens.split()) == LAYOUT
    assert shell("census_names", tokens).split() == ["secrets", "configmaps", "*.*"]


def test_a_config_name_covers_the_resources_the_api_server_applies_it_to():
    covers = etcd_census.covers
    assert covers("secrets", "secrets") and not covers("configmaps", "secrets")
    assert covers("roles.rbac.authorization.k8s.io", "roles.rbac.authorization.k8s.io")
    assert covers("*.*", "widgets.example.com") and covers("*.*", "deployments.apps")
    assert covers("*.", "secrets") and not covers("*.", "deployments.apps")
    assert covers("*.apps", "deployments.apps") and not covers("*.apps", "secrets")
    assert not covers("*.apps", "clusterroles.rbac.authorization.k8s.io")
    assert not covers("*.cert-manager.io", "deployments.apps")
    assert covers("widgets.example.com", "widgets.example.com")
    assert covers("*.example.com", "widgets.example.com")
    assert not covers("widgets", "widgets.example.com") and not covers("*.", "widgets.example.com")
    # a name without its group is the core group's, as kube-apiserver reads it
    assert not covers("deployments", "deployments.apps")
    assert not covers("services.serving.knative.dev", "services")
    assert not covers("services", "services.serving.knative.dev")


def test_every_built_in_resource_is_named_back_from_the_directory_it_is_stored_in():
    for name, directory in etcd_census.BUILTIN_STORAGE.items():
        assert etcd_census.resource_of(directory) == name
        assert etcd_census.directory_of(name) == directory
    for name in ("widgets.example.com", "services.serving.knative.dev"):
        assert etcd_census.resource_of(etcd_census.directory_of(name)) == name
    assert etcd_census.resource_of("ranges") is None
    assert etcd_census.resource_of("services/other") is None


def test_config_is_reduced_to_names_and_secrets_are_dropped_on_the_node(tmp_path):
    config = tmp_path / "enc.yaml"
    config.write_text("""apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
      - configmaps
    providers:
      - aescbc:
          keys:
            - name: key2
              secret: c2VjcmV0LXR3by1zZWNyZXQtdHdvLXNlY3JldC10d28=
            - {name: key1, secret: "b25lLW9uZS1vbmUtb25lLW9uZS1vbmUtb25lLW9uZTE="}
      - identity: {}
  - resources: ["*.*"]
    providers: [{identity: {}}]
""")
    out = subprocess.run(["sh", "-c", etcd_census.SCRIPT + f'\nenc_layout {config}'],
                         capture_output=True, text=True, check=True).stdout
    assert "c2VjcmV0" not in out and "b25lLW9u" not in out
    layout = etcd_census.layout_from_tokens(out.split())
    assert layout == [{"resources": ["secrets", "configmaps"],
                       "providers": ["aescbc:key2", "aescbc:key1", "identity"]},
                      {"resources": ["*.*"], "providers": ["identity"]}]


def test_objects_off_the_primary_key_are_counted_per_resource_and_key():
    census = etcd_census.Census(method="etcdctl", counts={
        "secrets": {"aescbc:key2": 498, "aescbc:key1": 2},
        "configmaps": {"identity": 7}, "pods": {"identity": 3}},
        layout=[{"resources": ["secrets"], "providers": ["aescbc:key2", "aescbc:key1"]},
                {"resources": ["configmaps"], "providers": ["identity", "aescbc:key2"]}])
    assert etcd_census.off_primary(census) == {"secrets as aescbc:key1": 2}
    assert etcd_census.stored_under(census, "aescbc:key1") == 2
    assert etcd_census.covered_total(census) == 507


def test_values_under_a_key_the_config_no_longer_holds_are_unreadable():
    census = etcd_census.Census(method="etcdctl", counts={
        "secrets": {"aescbc:key2": 5, "aescbc:key1": 2, "identity": 1},
        "configmaps": {"identity": 7}},
        layout=[{"resources": ["secrets"], "providers": ["aescbc:key2", "identity"]},
                {"resources": ["configmaps"], "providers": ["identity"]}])
    # identity still reads the plaintext one; nothing reads key1 any more
    assert etcd_census.unreadable(census) == {"secrets as aescbc:key1": 2}
    assert etcd_census.off_primary(census) == {"secrets as aescbc:key1": 2,
                                               "secrets as identity": 1}


def test_the_node_reads_the_directory_the_controller_judges_for_every_built_in_name():
    for name, directory in etcd_census.BUILTIN_STORAGE.items():
        assert directory in shell("census_dirs", name).split(), name


def test_a_range_inside_another_read_one_is_not_read_twice_and_a_trailing_dot_is_the_core():
    assert shell("census_dirs", "services services.foo.k8s.io") == \
        "secrets services foo.k8s.io/services"
    assert shell("census_dirs", "nodes. replicationcontrollers.") == "secrets minions controllers"


def test_a_built_in_resource_newer_than_the_table_is_judged_under_the_name_the_config_gives():
    census = etcd_census.Census(method="etcdctl")
    for line in ("L|resources resources gizmos.example.k8s.io secrets providers aescbc keys name "
                 "key2 name key1", "Q|gizmos|aescbc:key1|3", "Q|ranges|aescbc:key1|1",
                 "Q|foo.bar/|identity|1"):
        etcd_census.parse_line(census, line)
    assert census.counts == {"gizmos.example.k8s.io": {"aescbc:key1": 3}}
    assert census.unknown == {"ranges": {"aescbc:key1": 1}, "foo.bar/": {"identity": 1}}
