"""`harden check --compare`: what changed since an earlier check run.

The question of a periodic drift run is "which nodes drifted since yesterday, and on what?".
A baseline is a run id from the local journal (`harden runs` lists them), `last` (the newest
earlier check run of the same benchmark) or a `--format json` report file. Only statuses are
compared, never what was found on the node.

* new failure: FAIL now on a host audited in the baseline, where that check was not FAIL then;
* fixed: FAIL in the baseline on a host audited now, where that check is no longer FAIL;
* hosts added / removed: in one run's host set (audited or unreachable) but not the other's.
  A host that is new has no "new" failures: its FAILs show as a host added.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone

from harden.cis.reports.ordering import natural_key
from harden.cis.results import Change, Changes, CheckRun
from harden.errors import InputError
from harden.runs.journal import Journal, latest_check, load_check

LAST = "last"


def load_baseline(ref: str, benchmark: str, journal: Journal | None,
                  current_run_id: str | None = None) -> dict:
    """The baseline as {run_id, benchmark, started, results, unreachable}; InputError naming
    what was tried when `ref` is neither a report file nor a check run in the journal."""
    if os.path.isfile(ref):
        return _from_file(ref)
    if journal is None:
        raise InputError(f"--compare {ref}: no such file, and the local journal is not available")
    run_id = latest_check(journal, benchmark, current_run_id) if ref == LAST else ref
    if run_id is None:
        raise InputError(f"--compare last: the journal has no earlier check run of {benchmark} "
                         f"({journal.path})")
    found = load_check(journal, run_id)
    if found is None:
        raise InputError(f"--compare {ref}: not a file, and no check run {ref!r} in the journal "
                         f"{journal.path} (`harden runs` lists the runs)")
    if found["benchmark"] != benchmark:
        raise InputError(f"--compare {ref}: that run checked {found['benchmark']}, "
                         f"this one checks {benchmark}")
    return found


def _from_file(path: str) -> dict:
    """A `harden check --format json` report; a clear error for anything else."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"--compare: not a JSON report ({exc.msg})", path, exc.lineno) from exc
    except OSError as exc:
        raise InputError(f"--compare: cannot read the report: {exc.strerror}", path) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list) \
            or "run_id" not in doc:
        raise InputError("--compare: not a `harden check --format json` report "
                         "(needs run_id and results)", path)
    results = []
    for index, r in enumerate(doc["results"]):
        if not isinstance(r, dict) or not all(k in r for k in ("host", "id", "status")):
            raise InputError(f"--compare: result #{index + 1} lacks host, id or status", path)
        results.append({"host": r["host"], "id": r["id"], "status": r["status"],
                        "scored": bool(r.get("scored", True)), "title": r.get("title", "")})
    return {"run_id": str(doc["run_id"]), "benchmark": doc.get("benchmark"), "started": None,
            "results": results, "unreachable": dict(doc.get("unreachable") or {})}


# A check that FAILs and one the component would refuse to run (ERROR) are both findings.
FAILING = ("FAIL", "ERROR")


def compute_changes(baseline: dict, run: CheckRun) -> Changes:
    """New and fixed FAILs, and hosts added or removed, between `baseline` and `run`."""
    before = {(r["host"], r["id"]): r["status"] for r in baseline["results"]}
    titles = {r["id"]: r.get("title", "") for r in baseline["results"]}
    after = {(r.host, r.id): r.status for r in run.results}
    titles.update({r.id: r.title for r in run.results})
    audited_before = {r["host"] for r in baseline["results"]}
    audited_now = {r.host for r in run.results}
    hosts_before = audited_before | set(baseline["unreachable"])
    hosts_now = audited_now | set(run.unreachable)
    new = [Change(h, i, titles.get(i, ""), before.get((h, i)), status)
           for (h, i), status in after.items()
           if status in FAILING and h in audited_before and before.get((h, i)) not in FAILING]
    fixed = [Change(h, i, titles.get(i, ""), status, after.get((h, i)))
             for (h, i), status in before.items()
             if status in FAILING and h in audited_now and after.get((h, i)) not in FAILING]
    order = lambda c: (natural_key(c.id), natural_key(c.host))  # noqa: E731
    return Changes(
        baseline=baseline["run_id"], baseline_started=_iso(baseline.get("started")),
        new_failures=sorted(new, key=order), fixed=sorted(fixed, key=order),
        hosts_added=sorted(hosts_now - hosts_before, key=natural_key),
        hosts_removed=sorted(hosts_before - hosts_now, key=natural_key),
        before=before)


def _iso(started: float | None) -> str | None:
    if started is None:
        return None
    return datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_scored_failures(changes: Changes, run: CheckRun) -> bool:
    """For `--fail-on new`: a new FAIL of a scored check."""
    scored = {(r.host, r.id) for r in run.results if r.scored}
    return any((c.host, c.id) in scored for c in changes.new_failures)

