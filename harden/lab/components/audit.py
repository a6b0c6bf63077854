"""Audit events for the emulated kube-apiserver, chosen by the audit Policy like the real one.

Only non-resource requests reach the lab server (health checks, /version, ...), so only the
parts of the policy that can match them are evaluated: first matching rule wins; rules naming
resources or namespaces never match a non-resource URL; no match means level None.
"""

from __future__ import annotations

import datetime
import json
import threading
import uuid

STAGES = ("RequestReceived", "ResponseComplete")


def _url_matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def rule_matches(rule: dict, user: str, groups: set[str], verb: str, path: str) -> bool:
    if rule.get("users") and user not in rule["users"]:
        return False
    if rule.get("userGroups") and not groups & set(rule["userGroups"]):
        return False
    if rule.get("verbs") and verb not in rule["verbs"]:
        return False
    if rule.get("resources") or rule.get("namespaces"):
        return False
    urls = rule.get("nonResourceURLs")
    return not urls or any(_url_matches(str(u), path) for u in urls)


class AuditLog:
    """Appends one JSON line per audited stage to the --audit-log-path file."""

    def __init__(self, policy: dict, host_path: str):
        self.policy, self.host_path = policy, host_path
        self.lock = threading.Lock()

    def level(self, user: str, groups: set[str], verb: str, path: str) -> tuple[str, set[str]]:
        """(level, omitted stages) of the first matching rule; ("None", ...) when none match."""
        omitted = set(self.policy.get("omitStages") or [])
        for rule in self.policy.get("rules") or []:
            if rule_matches(rule, user, groups, verb, path):
                return rule.get("level", "None"), omitted | set(rule.get("omitStages") or [])
        return "None", omitted

    def record(self, user: str | None, path: str, query: str, source: str, status: int) -> None:
        username = user or "system:anonymous"
        groups = {"system:authenticated"} if user else {"system:unauthenticated"}
        level, omitted = self.level(username, groups, "get", path)
        if level == "None":
            return
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        base = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level,
                "auditID": str(uuid.uuid4()), "requestURI": path + (f"?{query}" if query else ""),
                "verb": "get", "user": {"username": username, "groups": sorted(groups)},
                "sourceIPs": [source] if source else [], "userAgent": "",
                "requestReceivedTimestamp": now, "stageTimestamp": now}
        lines = []
        for stage in STAGES:
            if stage in omitted:
                continue
            event = {**base, "stage": stage}
            if stage == "ResponseComplete":
                event["responseStatus"] = {"metadata": {}, "code": status}
            lines.append(json.dumps(event) + "\n")
        if lines:
            with self.lock, open(self.host_path, "a") as log:
                log.write("".join(lines))
