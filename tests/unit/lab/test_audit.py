"""Audit events of the emulated kube-apiserver follow the policy's first matching rule."""

from __future__ import annotations

import json

from harden.lab.components.audit import AuditLog

POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
          "rules": [{"level": "None", "nonResourceURLs": ["/healthz*", "/livez*"]},
                    {"level": "None", "resources": [{"group": "", "resources": ["events"]}]},
                    {"level": "Request", "users": ["alice"]},
                    {"level": "Metadata"}]}


def events(tmp_path) -> list[dict]:
    path = tmp_path / "audit.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_first_matching_rule_wins_and_none_logs_nothing(tmp_path):
    log = AuditLog(POLICY, str(tmp_path / "audit.log"))
    log.record(None, "/livez", "", "10.0.0.1", 200)
    log.record(None, "/healthz/etcd", "", "10.0.0.1", 200)
    assert events(tmp_path) == []
    log.record(None, "/readyz", "verbose", "10.0.0.1", 401)
    log.record("alice", "/version", "", "10.0.0.2", 200)
    first, second = events(tmp_path)
    assert first["level"] == "Metadata" and first["requestURI"] == "/readyz?verbose"
    assert first["user"]["username"] == "system:anonymous" and first["responseStatus"]["code"] == 401
    assert first["stage"] == "ResponseComplete" and first["sourceIPs"] == ["10.0.0.1"]
    assert second["level"] == "Request"


def test_resource_rules_never_match_non_resource_urls_and_no_match_is_none(tmp_path):
    policy = {"rules": [{"level": "Metadata", "resources": [{"group": ""}]},
                        {"level": "Metadata", "verbs": ["create"]},
                        {"level": "Metadata", "userGroups": ["system:masters"]}]}
    log = AuditLog(policy, str(tmp_path / "audit.log"))
    log.record("bob", "/livez", "", "", 200)
    assert events(tmp_path) == []


def test_both_stages_unless_omitted(tmp_path):
    log = AuditLog({"rules": [{"level": "Metadata", "userGroups": ["system:unauthenticated"]}]},
                   str(tmp_path / "audit.log"))
    log.record(None, "/livez", "", "", 200)
    assert [e["stage"] for e in events(tmp_path)] == ["RequestReceived", "ResponseComplete"]
