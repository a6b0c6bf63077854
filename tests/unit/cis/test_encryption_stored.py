"""1.2.28e, what etcd stores, judged from census records as the node prints them."""

from __future__ import annotations

from harden.cis import cluster_checks as cc
from harden.cis.context import HostContext
from harden.cis.probe import Facts
from harden.node import etcd_census

APPS_THEN_ALL = ("L|resources resources *.apps providers aescbc keys name kA resources *.* "
                 "providers aescbc keys name kB")


def verdict(*records: str):
    census = etcd_census.Census()
    for record in records:
        etcd_census.parse_line(census, record)
    return cc.encryption_stored(HostContext(Facts(census=census)))


def test_a_group_wildcard_covers_only_its_group():
    """kube-apiserver's own example: apps under kA, everything else under kB."""
    judged = verdict(APPS_THEN_ALL, "Q|deployments|aescbc:kA|5", "Q|clusterroles|aescbc:kB|60",
                     "Q|secrets|aescbc:kB|7", "C|etcdctl|/registry")
    assert judged.passed, judged.actual
    assert "all 72 stored objects" in judged.actual


def test_values_outside_the_known_resources_are_listed_and_warn_under_a_lost_key():
    listed = verdict(APPS_THEN_ALL, "Q|secrets|aescbc:kB|7", "Q|ranges|identity|2",
                     "C|etcdctl|/registry")
    assert listed.passed
    assert "not judged, not in harden's table of kube-apiserver resources: 2 in ranges/" \
        in listed.actual
    lost = verdict(APPS_THEN_ALL, "Q|secrets|aescbc:kB|7", "Q|ranges|aescbc:kOld|2",
                   "C|etcdctl|/registry")
    assert lost.status == "WARN"
    assert "2 in ranges/ under aescbc:kOld: a key the config no longer holds" in lost.actual


def test_resources_kept_in_another_etcd_are_named_and_warn_when_covered():
    covered = verdict("L|resources resources events secrets providers aescbc keys name k1",
                      "O|/events#https://127.0.0.1:2381", "Q|secrets|aescbc:k1|3",
                      "C|etcdctl|/registry")
    assert covered.status == "WARN"
    assert "not read, kept in another etcd by --etcd-servers-overrides: events" in covered.actual
    uncovered = verdict("L|resources resources secrets providers aescbc keys name k1",
                        "O|/events#https://127.0.0.1:2381", "Q|secrets|aescbc:k1|3",
                        "C|etcdctl|/registry")
    assert uncovered.passed and "events" in uncovered.actual


def test_secrets_kept_in_another_etcd_without_a_config_are_not_judged_from_this_one():
    judged = verdict("O|/secrets#https://127.0.0.1:2381", "C|etcdctl|/registry")
    assert judged.status == "WARN" and "kept in another etcd" in judged.actual
