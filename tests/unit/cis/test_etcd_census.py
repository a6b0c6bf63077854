"""The etcd census: its awk decoder on real base64 values, the config reduced to names, the
verdict's arithmetic."""

from __future__ import annotations

import base64
import json
import subprocess

from harden.node import etcd_census


def run_awk(kvs: list[tuple[str, bytes]]) -> etcd_census.Census:
    """Feed etcdctl-style JSON through the census's own awk, as the node does."""
    doc = {"header": {"revision": 9}, "kvs": [
        {"key": base64.b64encode(k.encode()).decode(), "create_revision": 2, "mod_revision": 3,
         "version": 1, "value": base64.b64encode(v).decode()} for k, v in kvs], "count": len(kvs)}
    script = etcd_census.SCRIPT + '\nprintf "%s" "$DOC" | tr ",{}[]" "\\n\\n\\n\\n\\n" | awk "$census_awk"'
    out = subprocess.run(["sh", "-c", script], env={"DOC": json.dumps(doc), "PATH": "/usr/bin:/bin",
                                                    "LC_ALL": "C", "census_pfx": "/registry"},
                         capture_output=True, text=True, check=True).stdout
    census = etcd_census.Census(method="test")
    for line in out.splitlines():
        etcd_census.parse_line(census, line)
    return census


def test_awk_counts_values_by_resource_and_provider_key_without_printing_values():
    census = run_awk([
        ("/registry/secrets/a/one", b"k8s:enc:aescbc:v1:key1:" + bytes(range(200, 256)) * 2),
        ("/registry/secrets/a/two", b"k8s:enc:aescbc:v1:key2:\x00\x01secretbytes"),
        ("/registry/secrets/b/three", b'{"kind":"Secret","data":{"password":"hunter2"}}'),
        ("/registry/configmaps/a/c", b"k8s:enc:secretbox:v1:box:" + b"\xff" * 40),
        ("/registry/clusterroles/admin", b"k8s\x00\x0a\x0bprotobuf")])
    assert census.counts == {"secrets": {"aescbc:key1": 1, "aescbc:key2": 1, "identity": 1},
                             "configmaps": {"secretbox:box": 1},
                             "clusterroles": {"identity": 1}}


def dirs_for(tokens: str) -> str:
    return subprocess.run(["sh", "-c", etcd_census.SCRIPT + '\ncensus_dirs "$T"'],
                          env={"T": tokens, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, check=True).stdout.strip()


def test_the_census_reads_secrets_and_the_directories_the_config_covers():
    assert dirs_for("") == "secrets"
    assert dirs_for("apiVersion apiserver.config.k8s.io v1 kind EncryptionConfiguration resources "
                    "resources configmaps roles.rbac.authorization.k8s.io providers aescbc keys "
                    "name key1 identity resources secrets providers identity") \
        == "secrets configmaps roles"
    assert dirs_for("resources resources secrets providers identity resources *.* providers "
                    "identity") == "--all"
    assert dirs_for("resources resources *.apps providers identity") == "--all"


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
