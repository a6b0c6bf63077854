"""`--format json`: the machine contract described in docs/operations.md.

Contract keys come first in every result (host, id, title, status, scored, expected, actual,
remediation), then the context fields (section, node_type, drift, facts). `summary` has every
status key for every host, plus UNREACHABLE (0 or 1), and `unreachable` gives each such host's
reason. With `--compare`, `changes` says what differs from the baseline run: `baseline`,
`new_failures` and `fixed` (each {host, id, title, before, after}), `hosts_added`,
`hosts_removed`. Output is sorted and indented so it diffs cleanly between runs.
"""

from __future__ import annotations

import json

from harden.cis.reports.ordering import host_summary, natural_key, ordered_results
from harden.cis.results import CheckResult, CheckRun

CONTRACT_FIELDS = ("host", "id", "title", "status", "scored", "expected", "actual",
                   "remediation")


def result_dict(result: CheckResult) -> dict:
    data = result.to_json()
    ordered = {key: data.pop(key) for key in CONTRACT_FIELDS}
    ordered.update(data)
    return ordered


def report_dict(run: CheckRun) -> dict:
    doc = {
        "benchmark": run.benchmark,
        "run_id": run.run_id,
        "results": [result_dict(r) for r in ordered_results(run)],
        "summary": host_summary(run),
        "unreachable": {host: run.unreachable[host] for host in sorted(run.unreachable, key=natural_key)},
    }
    if run.changes is not None:      # with --compare: new/fixed FAILs, hosts added/removed
        doc["changes"] = run.changes.to_json()
    return doc


def render_json(run: CheckRun) -> str:
    return json.dumps(report_dict(run), indent=2, ensure_ascii=False) + "\n"
