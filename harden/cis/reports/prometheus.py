"""`--format prometheus` / `--metrics-file`: the run's summary in the Prometheus text format,
for node_exporter's textfile collector (write it to `<dir>/harden.prom`; the file is replaced
atomically, so the collector never reads half of it).

Series, all gauges:

* `harden_check_result{host, check, status, scored}` 1 per host × check: alert on
  `harden_check_result{status="FAIL",scored="true"}`. One series per host and check, so the
  status is a label and a changed verdict shows as a new series.
* `harden_check_host_results{host, status}`: per host, how many checks had each status.
* `harden_check_host_up{host}`: 1 audited, 0 unreachable (and the reason in
  `harden_check_host_unreachable_info{host, reason}`).
* `harden_check_run_timestamp_seconds`, `harden_check_run_duration_seconds`,
  `harden_check_run_info{benchmark, run_id}`.
* with `--compare`: `harden_check_new_failures`, `harden_check_fixed_failures`.

No `actual` text and no titles: labels carry ids and statuses only (bounded cardinality).
"""

from __future__ import annotations

from datetime import datetime, timezone

from harden.cis.reports.ordering import host_summary, ordered_hosts, ordered_results
from harden.cis.results import STATUSES, CheckRun


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series(name: str, labels: dict[str, str], value) -> str:
    inner = ",".join(f'{key}="{_label(val)}"' for key, val in labels.items())
    return f"{name}{{{inner}}} {value}" if inner else f"{name} {value}"


def _family(name: str, help_text: str, lines: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *lines]


def render_prometheus(run: CheckRun, generated_at: datetime | None = None) -> str:
    started = (run.started_at or generated_at or datetime.now(timezone.utc))
    summary = host_summary(run)
    out: list[str] = []
    out += _family("harden_check_run_info", "The check run: benchmark and run id.",
                   [_series("harden_check_run_info",
                            {"benchmark": run.benchmark, "run_id": run.run_id}, 1)])
    out += _family("harden_check_run_timestamp_seconds", "When the check run started (Unix time).",
                   [_series("harden_check_run_timestamp_seconds", {},
                            f"{started.timestamp():.3f}")])
    if run.seconds is not None:
        out += _family("harden_check_run_duration_seconds", "How long the check run took.",
                       [_series("harden_check_run_duration_seconds", {}, f"{run.seconds:.3f}")])
    out += _family("harden_check_host_up", "1 if the host was audited, 0 if unreachable.",
                   [_series("harden_check_host_up", {"host": h}, 0 if h in run.unreachable else 1)
                    for h in ordered_hosts(run)])
    if run.unreachable:
        out += _family("harden_check_host_unreachable_info", "Why a host could not be audited.",
                       [_series("harden_check_host_unreachable_info",
                                {"host": h, "reason": run.unreachable[h]}, 1)
                        for h in ordered_hosts(run) if h in run.unreachable])
    out += _family("harden_check_host_results", "Checks per host and status.",
                   [_series("harden_check_host_results", {"host": h, "status": s}, counts[s])
                    for h, counts in summary.items() if h not in run.unreachable
                    for s in STATUSES])
    out += _family("harden_check_result", "1 per host and check, labelled with its status.",
                   [_series("harden_check_result",
                            {"host": r.host, "check": r.id, "status": r.status,
                             "scored": "true" if r.scored else "false"}, 1)
                    for r in ordered_results(run)])
    if run.changes is not None:
        out += _family("harden_check_new_failures", "FAILs that are new since the baseline run.",
                       [_series("harden_check_new_failures", {},
                                len(run.changes.new_failures))])
        out += _family("harden_check_fixed_failures", "FAILs of the baseline run now fixed.",
                       [_series("harden_check_fixed_failures", {}, len(run.changes.fixed))])
    return "\n".join(out) + "\n"
