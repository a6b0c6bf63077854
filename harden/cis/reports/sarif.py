"""`--format sarif`: SARIF 2.1.0, one run, for code-scanning dashboards and audit archives.

Decisions:

* Rules: one per check id (shortDescription = title, fullDescription = title + expected
  condition, help = remediation, properties: scored, section, node type). A scored check's
  default level is error, a manual one's warning.
* Results, one per host × check, with SARIF's `kind` saying what a status means:
  FAIL -> kind fail, level error; WARN -> kind fail, level warning (it is an unverified item,
  and viewers hide non-fail kinds); PASS -> kind pass; SKIP -> kind notApplicable;
  ERROR -> kind open (the tool could not decide). PASS and SKIP are kept on purpose: an
  auditor needs evidence of what was checked and found compliant, not only the findings;
  viewers that list problems show only kind fail.
* Locations: a logical location per host (kind "resource"), and, when the engine names a file
  among the facts it used ("stat /etc/...", "manifest /etc/...", "config /var/lib/..."), a
  physical location for the first such path as `file://<host>/<path>`, so the same path on
  two nodes stays two artifacts. Facts without a path ("running process 412") give none.
* An unreachable host becomes an error notification on the invocation, which then is not
  `executionSuccessful`.
* partialFingerprints carry host + check id so dashboards track one finding across runs.
* With `--compare`, each result carries `baselineState` against the baseline run: `new` (a
  FAIL that was not one, or a host × check not evaluated then), `unchanged` (same status),
  `updated` (another status, e.g. a fixed FAIL now PASS); the run's properties carry the
  baseline id and the added/removed hosts.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from urllib.parse import quote

from harden import __version__
from harden.cis.reports.ordering import check_rows, natural_key, ordered_results, section_of
from harden.cis.results import CheckResult, CheckRun

# an absolute path inside a fact such as "stat /etc/x", "manifest /etc/x" or "config /a + /b"
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/-])(/[^\s,;()]+)")
SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
# status -> (kind, level)
STATUS_KIND_LEVEL = {
    "FAIL": ("fail", "error"),
    "WARN": ("fail", "warning"),
    "PASS": ("pass", "none"),
    "SKIP": ("notApplicable", "none"),
    "ERROR": ("open", "none"),
}


def render_sarif(run: CheckRun, generated_at: datetime | None = None) -> str:
    return json.dumps(sarif_log(run, generated_at), indent=2, ensure_ascii=False) + "\n"


def sarif_log(run: CheckRun, generated_at: datetime | None = None) -> dict:
    rules = [_rule(row) for row in check_rows(run)]
    rule_index = {rule["id"]: index for index, rule in enumerate(rules)}
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "harden",
                "version": __version__,
                "rules": rules,
            }},
            "automationDetails": {"id": f"harden-check/{run.benchmark}/{run.run_id}"},
            "invocations": [_invocation(run, generated_at)],
            "results": [_with_baseline(_result(r, rule_index[r.id]), r, run)
                        for r in ordered_results(run)],
            "properties": _run_properties(run),
        }],
    }


def _run_properties(run: CheckRun) -> dict:
    properties = {"benchmark": run.benchmark, "runId": run.run_id}
    if run.changes is not None:
        properties.update(baselineRunId=run.changes.baseline,
                          hostsAdded=run.changes.hosts_added,
                          hostsRemoved=run.changes.hosts_removed)
    return properties


def _with_baseline(entry: dict, result: CheckResult, run: CheckRun) -> dict:
    if run.changes is None:
        return entry
    before = run.changes.before.get((result.host, result.id))
    if before is None or (result.status == "FAIL" and before != "FAIL"):
        entry["baselineState"] = "new"
    else:
        entry["baselineState"] = "unchanged" if before == result.status else "updated"
    return entry


def _rule(row) -> dict:
    return {
        "id": row.id,
        "shortDescription": {"text": row.title},
        "fullDescription": {"text": f"{row.title}. Expected: {row.expected}"},
        "help": {"text": row.remediation or "No remediation text in the catalogue."},
        "defaultConfiguration": {"level": "error" if row.scored else "warning"},
        "properties": {"scored": row.scored, "section": row.section,
                       "nodeType": row.node_type, "tags": ["cis", row.section]},
    }


def _result(result: CheckResult, rule_index: int) -> dict:
    kind, level = STATUS_KIND_LEVEL[result.status]
    message = f"{result.host}: {result.status} {result.id} {result.title}: {result.actual}"
    if result.status in ("FAIL", "WARN"):
        message += f" (expected: {result.expected})"
    properties = {"status": result.status, "host": result.host, "section": section_of(result),
                  "expected": result.expected, "actual": result.actual, "scored": result.scored}
    if result.drift:
        message += f"; drift: {result.drift}"
        properties["drift"] = result.drift
    return {
        "ruleId": result.id,
        "ruleIndex": rule_index,
        "kind": kind,
        "level": level,
        "message": {"text": message},
        "locations": _locations(result),
        "partialFingerprints": {"hostCheck/v1": f"{result.host}/{result.id}"},
        "properties": properties,
    }


def _locations(result: CheckResult) -> list[dict]:
    """One location naming the host; it also names the file when the engine recorded one."""
    location: dict = {"logicalLocations": [{"name": result.host, "kind": "resource",
                                            "fullyQualifiedName": result.host}]}
    files = [path for fact in result.facts for path in _ABSOLUTE_PATH.findall(fact)]
    if files:
        uri = f"file://{quote(result.host, safe='')}{quote(files[0])}"
        location["physicalLocation"] = {"artifactLocation": {"uri": uri}}
    return [location]


def _invocation(run: CheckRun, generated_at: datetime | None) -> dict:
    finished = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    notifications = [{
        "level": "error",
        "message": {"text": f"{host}: unreachable: {run.unreachable[host]}"},
        "locations": [{"logicalLocations": [{"name": host, "kind": "resource",
                                             "fullyQualifiedName": host}]}],
        "descriptor": {"id": "host-unreachable"},
    } for host in sorted(run.unreachable, key=natural_key)]
    return {
        "executionSuccessful": not run.unreachable,
        "endTimeUtc": finished.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "toolExecutionNotifications": notifications,
    }
