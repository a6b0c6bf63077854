"""Section 5 evaluators on recorded `kubectl get -o json` output, the audit-policy interpreter
(3.2.2) and the encryption-provider rule (1.2.28)."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from harden.cis import cluster_checks as cc
from harden.cis.catalogue import load_catalogue
from harden.cis.evaluate import evaluate_host
from harden.cis.probe import Facts, parse_probe_output
from support.paths import FIXTURES

KUBECTL = FIXTURES / "facts" / "kubectl"


def objects(name: str) -> list[dict]:
    return json.loads((KUBECTL / f"{name}.json").read_text())["items"]


def test_cluster_admin_bindings():
    assert cc.cluster_admin_bindings(objects("kubeadm")) == [
        "kubeadm:cluster-admins -> Group kubeadm:cluster-admins"]
    assert "dev-admin -> User alice" in cc.cluster_admin_bindings(objects("weak"))
    assert cc.cluster_admin_bindings(objects("hardened")) == []


def test_wildcard_roles_ignore_bootstrap_defaults():
    assert cc.wildcard_roles(objects("kubeadm")) == []
    assert cc.wildcard_roles(objects("weak")) == ["Role ops/ops-all (verbs)",
                                                  "ClusterRole monitoring-reader (apiGroups)"]


def test_default_service_accounts():
    assert len(cc.default_service_account_automount(objects("kubeadm"))) == 4
    assert cc.default_service_account_automount(objects("hardened")) == []


def test_namespace_pod_security_and_network_policies():
    assert cc.namespaces_without_pod_security(objects("weak")) == [
        "default", "kube-node-lease", "kube-public", "kube-system", "ops"]
    assert cc.namespaces_without_pod_security(objects("hardened")) == []
    assert cc.namespaces_without_network_policy(objects("weak")) == ["default", "kube-system", "ops"]
    assert cc.namespaces_without_network_policy(objects("hardened")) == []


def _facts_with_kubectl(doc: dict | None, rc: int = 0, text: str | None = None) -> Facts:
    raw = text if text is not None else json.dumps(doc)
    b64 = base64.b64encode(raw.encode()).decode()
    argv = base64.b64encode(b"kube-apiserver\0--authorization-mode=Node,RBAC\0").decode()
    return parse_probe_output(f"HARDEN-PROBE|1|\nP|1|kube-apiserver||{argv}\nK|get|{rc}|{b64}\nEND|\n")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_section_5_statuses_from_a_probe(catalogue):
    doc = json.loads((KUBECTL / "hardened.json").read_text())
    results = {r.id: r for r in evaluate_host("cp", _facts_with_kubectl(doc), catalogue)}
    for cid in ("5.1.1", "5.1.3", "5.1.5", "5.2.1", "5.3.2"):
        assert results[cid].status == "PASS", (cid, results[cid].actual)
    assert results["5.1.2"].status == "WARN" and "no can-i answer" in results["5.1.2"].actual
    assert results["5.1.7"].status == "WARN" and results["5.1.7"].actual.startswith("manual check")
    results = {r.id: r for r in evaluate_host("cp", _facts_with_kubectl(None, 1, "Unauthorized"), catalogue)}
    assert results["5.1.1"].status == "WARN" and "Unauthorized" in results["5.1.1"].actual


GOOD = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
    {"level": "None", "users": ["system:kube-proxy"]},
    {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets", "configmaps"]},
                                        {"group": "authentication.k8s.io", "resources": ["tokenreviews"]}]},
    {"level": "RequestResponse", "verbs": ["create", "update", "patch", "delete"],
     "resources": [{"group": "", "resources": ["pods"]}, {"group": "apps", "resources": ["deployments"]}]},
    {"level": "Metadata"}]}


def test_audit_policy_first_match_semantics():
    assert cc.audit_policy_gaps(GOOD) == []
    assert cc.audit_level(GOOD, "get", "", "secrets") == "Metadata"
    assert cc.audit_level(GOOD, "create", "", "pods") == "RequestResponse"
    assert cc.audit_level(GOOD, "create", "", "pods", "exec") == "Metadata"   # falls through to catch-all
    # a broad Request rule before the secrets rule logs secret bodies
    leaky = dict(GOOD, rules=[{"level": "Request", "verbs": ["get"]}] + GOOD["rules"])
    assert cc.audit_policy_gaps(leaky) == ["secrets get logged at Request (want Metadata)",
                                           "configmaps get logged at Request (want Metadata)"]
    silent = dict(GOOD, rules=[{"level": "None", "resources": [{"group": "", "resources": ["pods/*"]}]}]
                  + GOOD["rules"])
    assert "pods/exec create not logged" in cc.audit_policy_gaps(silent)
    assert len(cc.audit_policy_gaps({"kind": "Policy", "rules": []})) == len(cc.AUDIT_REQUIREMENTS)


def _apiserver_facts(flag: str, path: str) -> Facts:
    argv = base64.b64encode(f"kube-apiserver\0{flag}={path}\0".encode()).decode()
    return parse_probe_output(f"HARDEN-PROBE|1|\nP|1|kube-apiserver||{argv}\nEND|\n")


def test_audit_policy_check_reads_the_file_the_apiserver_names(catalogue):
    facts = _apiserver_facts("--audit-policy-file", "/etc/kubernetes/audit.yaml")
    facts.contents["/proc/1/root/etc/kubernetes/audit.yaml"] = yaml.safe_dump(GOOD)
    results = {r.id: r for r in evaluate_host("cp", facts, catalogue)}
    assert results["3.2.2"].status == "PASS" and results["3.2.1"].status == "PASS"
    facts.contents["/proc/1/root/etc/kubernetes/audit.yaml"] = "kind: Policy\nrules:\n- level: RequestResponse\n"
    results = {r.id: r for r in evaluate_host("cp", facts, catalogue)}
    assert results["3.2.2"].status == "WARN" and "secrets get logged at RequestResponse" in results["3.2.2"].actual


def test_encryption_providers(catalogue):
    facts = _apiserver_facts("--encryption-provider-config", "/etc/kubernetes/enc.yaml")
    facts.encryption_providers["/proc/1/root/etc/kubernetes/enc.yaml"] = [["aescbc", "identity"], ["secretbox"]]
    assert {r.id: r for r in evaluate_host("cp", facts, catalogue)}["1.2.28"].status == "PASS"
    facts.encryption_providers["/proc/1/root/etc/kubernetes/enc.yaml"] = [["aescbc"], ["identity", "aescbc"]]
    result = {r.id: r for r in evaluate_host("cp", facts, catalogue)}["1.2.28"]
    assert result.status == "WARN" and "aescbc, identity" in result.actual
    del facts.encryption_providers["/proc/1/root/etc/kubernetes/enc.yaml"]
    result = {r.id: r for r in evaluate_host("cp", facts, catalogue)}["1.2.28"]
    assert result.status == "WARN" and "not found" in result.actual


def test_can_i_answers(catalogue):
    facts = _facts_with_kubectl({"items": []})
    for query, answer in (("get secrets", "no"), ("list secrets", "no"), ("watch secrets", "yes"),
                          ("create pods", "Warning: resource 'pods' is not namespace scoped\nno")):
        facts.kubectl[f"can-i {query}"] = (0 if answer == "yes" else 1, answer)
    results = {r.id: r for r in evaluate_host("cp", facts, catalogue)}
    assert results["5.1.2"].status == "WARN" and results["5.1.2"].actual == "any authenticated user may watch secrets"
    assert results["5.1.4"].status == "PASS"
    facts.kubectl["can-i create pods"] = (1, "error: the server doesn't have a resource type")
    assert {r.id: r for r in evaluate_host("cp", facts, catalogue)}["5.1.4"].status == "WARN"
