"""The human report. By default grouped for fleets: one line per check and verdict naming the
hosts that share it (FAIL, ERROR, WARN first; PASS and SKIP only counted), then hosts folded by
role and identical results. `by_host` (and any run of a single host) gives the full per-host
view: every check under each host, grouped by section, then a summary table.

Built from rich Text objects, never markup strings: titles and actual values come from nodes
and may contain square brackets that rich markup would swallow or misread.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from itertools import groupby

from rich.console import Console, Group
from rich.padding import Padding
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from harden.cis.reports.fleet import (ROLE_ORDER, compress_hosts, host_roles,
                                      identical_host_groups, role_label, unreachable_groups,
                                      verdict_groups)
from harden.cis.reports.ordering import (UNREACHABLE, host_summary, natural_key, ordered_hosts,
                                         ordered_results, section_of)
from harden.cis.results import STATUSES, CheckResult, CheckRun

STATUS_STYLES = {
    "PASS": "bold green",
    "FAIL": "bold red",
    "WARN": "bold yellow",
    "SKIP": "dim",
    "ERROR": "bold magenta",
    UNREACHABLE: "bold white on red",
}
DETAIL_INDENT = 13          # lines up details under the title column


def wants_color(stream=None) -> bool:
    """Colour for a terminal only; NO_COLOR (no-color.org) and FORCE_COLOR override."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


PLAIN_WIDTH = 110


def render_text(run: CheckRun, color: bool | None = None, by_host: bool = False) -> str:
    color = wants_color() if color is None else color
    buffer = io.StringIO()
    # A terminal gets its own width; files and pipes get a fixed one, so a report written by
    # cron or CI reads the same whatever launched it.
    width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns if color else PLAIN_WIDTH
    console = Console(file=buffer, force_terminal=color, color_system="auto" if color else None,
                      width=width, highlight=False, emoji=False, markup=False)
    console.print(_heading(run))
    if run.changes is not None:
        console.print()
        console.print(changes_block(run))
    if by_host or len(ordered_hosts(run)) <= 1:
        _print_by_host(console, run)
    else:
        print_grouped(console, run)
    # rich pads table cells to full width; trailing blanks only add noise to files and diffs
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _print_by_host(console: Console, run: CheckRun) -> None:
    by_host = {host: list(rs) for host, rs in groupby(ordered_results(run), key=lambda r: r.host)}
    for host in ordered_hosts(run):
        console.print()
        console.print(_host_block(host, by_host.get(host, []), run.unreachable.get(host)))
    console.print()
    console.print(summary_table(run))


def _heading(run: CheckRun) -> Text:
    return Text.assemble(("harden check", "bold"), f"  benchmark {run.benchmark}  run {run.run_id}")


def _host_block(host: str, results: list[CheckResult], unreachable_reason: str | None) -> Group:
    parts: list = [Rule(Text(host, style="bold cyan"), align="left")]
    if unreachable_reason is not None:
        parts.append(Text.assemble((" UNREACHABLE ", STATUS_STYLES[UNREACHABLE]), "  ",
                                   unreachable_reason))
        return Group(*parts)
    for section, items in groupby(results, key=section_of):
        items = list(items)
        parts.append(Text(section, style="bold underline"))
        reasons = {r.actual for r in items}
        if len(items) > 1 and len(reasons) == 1 and all(r.status == "SKIP" for r in items):
            # a worker shows dozens of control-plane checks as SKIP for one reason: say it once
            parts.append(Text.assemble("  ", ("SKIP ", STATUS_STYLES["SKIP"]), "  ",
                                       f"all {len(items)} checks: {reasons.pop()}"))
            continue
        for result in items:
            parts.extend(_result_lines(result))
    return Group(*parts)


def _result_lines(result: CheckResult) -> list:
    line = Text.assemble("  ", (f"{result.status:<5}", STATUS_STYLES[result.status]), "  ",
                         (f"{result.id:<7}", "bold"), " ", result.title)
    if result.computed:
        line.append(f"  (manual in CIS; its test {result.computed}s)", style="yellow")
    elif not result.scored:
        line.append("  (manual)", style="dim")
    lines: list = [line]
    details = _details(result)
    if details:
        lines.append(Padding(details, (0, 0, 0, DETAIL_INDENT)))
    return lines


def _details(result: CheckResult) -> Table | None:
    """Why it is not a PASS, and what to do: expected/actual for anything but PASS and SKIP,
    remediation under each FAIL, and drift wherever the engine saw it."""
    rows: list[tuple[str, str, str]] = []
    if result.status in ("FAIL", "WARN", "ERROR"):
        rows += [("expected", result.expected, ""), ("actual", result.actual, "")]
    if result.computed:
        rows.append(("test", f"{result.computed} (not scored: reported as {result.status}, "
                             f"as kube-bench does)", "yellow"))
    if result.drift:
        rows.append(("drift", result.drift, "yellow"))
    if result.status == "FAIL" and result.remediation:
        rows.append(("fix", result.remediation.strip(), "cyan"))
    if not rows:
        return None
    return detail_grid(rows)


def summary_table(run: CheckRun) -> Table:
    """Host × status counts; an unreachable host gets a red note instead of zeros."""
    table = Table(title="Summary", title_justify="left", show_footer=True)
    table.add_column("host", footer="total", style="bold")
    summary = host_summary(run)
    totals = {s: sum(counts[s] for counts in summary.values()) for s in STATUSES}
    for status in STATUSES:
        table.add_column(status, justify="right", header_style=STATUS_STYLES[status],
                         footer=str(totals[status]))
    table.add_column("note")
    for host, counts in summary.items():
        if counts[UNREACHABLE]:
            note = Text("UNREACHABLE: " + run.unreachable[host], style="bold red")
            table.add_row(host, *["-"] * len(STATUSES), note)
            continue
        cells = [Text(str(counts[s]), style=STATUS_STYLES[s] if counts[s] else "dim")
                 for s in STATUSES]
        table.add_row(host, *cells, "")
    return table


# ---- grouped (fleet) view -------------------------------------------------------------------

GROUPED_ORDER = ("FAIL", "ERROR", "WARN")
MAX_ACTUALS = 4          # distinct findings listed under one group before "and N more"


def print_grouped(console: Console, run: CheckRun) -> None:
    """Findings once per check with their hosts, then passes counted, then hosts folded."""
    groups = verdict_groups(run)
    if run.changes is not None:
        console.print()
    console.print(_fleet_line(run))
    for status in GROUPED_ORDER:
        chosen = [g for g in groups if g.status == status]
        if chosen:
            console.print()
        for group in chosen:
            console.print(_group_line(group))
            details = _group_details(group) if status != "WARN" else None
            if details is not None:
                console.print(Padding(details, (0, 0, 0, DETAIL_INDENT)))
    console.print()
    for status in ("PASS", "SKIP"):
        line = _counted_line(groups, status)
        if line is not None:
            console.print(line)
    for reason, hosts in unreachable_groups(run):
        console.print(Text.assemble((f"{UNREACHABLE} ", STATUS_STYLES[UNREACHABLE]), " ",
                                    (compress_hosts(hosts), "bold"), f": {reason}"))
    console.print()
    console.print(hosts_block(run))
    console.print(Text("`--by-host` lists every check per host; `-l HOST` shows one host in full.",
                       style="dim"))


def _fleet_line(run: CheckRun) -> Text:
    roles = host_roles(run)
    counts: dict[str, int] = {}
    for role in roles.values():
        counts[role] = counts.get(role, 0) + 1
    parts = [f"{n} {role_label(role, n)}" for role, n in
             sorted(counts.items(), key=lambda item: ROLE_ORDER.index(item[0])
                    if item[0] in ROLE_ORDER else 9)]
    failing = {r.host for r in run.results if r.status == "FAIL" and r.scored}
    line = Text(f"{len(ordered_hosts(run))} hosts: {', '.join(parts) or 'none audited'}")
    line.append(f" · {len(failing)} with a scored FAIL",
                style=STATUS_STYLES["FAIL"] if failing else "dim")
    if run.unreachable:
        line.append(f" · {len(run.unreachable)} unreachable", style="bold red")
    if run.seconds is not None:
        line.append(f" · {run.seconds:.1f}s", style="dim")
    return line


def _group_line(group) -> Text:
    line = Text.assemble((f"{group.status:<5}", STATUS_STYLES[group.status]), "  ",
                         (f"{group.id:<7}", "bold"), " ", group.title, " — ",
                         (compress_hosts(group.hosts), "bold cyan"),
                         (f" ({len(group.hosts)}/{group.of} {role_label(group.role, group.of)})",
                          "dim"))
    if not group.scored and group.status != "WARN":     # a WARN is a review item anyway
        line.append("  (manual)", style="dim")
    if group.test_failed:                               # not a review item nobody checked
        hosts = "" if group.test_failed == group.hosts else \
            f" on {compress_hosts(group.test_failed)}"
        line.append(f"  (its test FAILs{hosts}; not scored)", style="yellow")
    return line


def _group_details(group) -> Table | None:
    rows: list[tuple[str, str, str]] = [("expected", group.expected, "")]
    actuals = list(group.actuals.items())
    for actual, hosts in actuals[:MAX_ACTUALS]:
        where = "" if len(actuals) == 1 else f"  [{compress_hosts(hosts)}]"
        rows.append(("actual", actual + where, ""))
    if len(actuals) > MAX_ACTUALS:
        rows.append(("actual", f"… {len(actuals) - MAX_ACTUALS} more distinct findings "
                               "(--by-host shows each)", "dim"))
    for drift, hosts in group.drifts.items():
        rows.append(("drift", f"{drift}  [{compress_hosts(hosts)}]", "yellow"))
    if group.status == "FAIL" and group.remediation:
        rows.append(("fix", group.remediation.strip(), "cyan"))
    return detail_grid(rows)


def _counted_line(groups, status: str) -> Text | None:
    """PASS/SKIP are not listed: how many checks had that verdict everywhere, and on some."""
    chosen = [g for g in groups if g.status == status]
    if not chosen:
        return None
    everywhere = sum(len(g.hosts) == g.of for g in chosen)
    results = sum(len(g.hosts) for g in chosen)
    text = f"{everywhere} checks on every host they apply to"
    if len(chosen) > everywhere:
        text += f", {len(chosen) - everywhere} on some hosts"
    return Text.assemble((f"{status:<5}", STATUS_STYLES[status]), "  ", text,
                         (f" ({results} results)", "dim"))


def hosts_block(run: CheckRun) -> Table:
    """Hosts folded by role and identical results: a fleet of alike nodes is a few rows."""
    table = Table(title="Hosts (grouped by role and identical results)", title_justify="left",
                  box=None, padding=(0, 2, 0, 0), show_header=True, header_style="dim")
    table.add_column("hosts", style="bold", overflow="fold")
    table.add_column("role")
    for status in STATUSES:
        table.add_column(status, justify="right", header_style=STATUS_STYLES[status])
    for group in identical_host_groups(run):
        n = len(group.hosts)
        role = f"{n} {role_label(group.role, n)}" + (" identical" if n > 1 else "")
        cells = [Text(str(group.counts.get(s, 0)),
                      style=STATUS_STYLES[s] if group.counts.get(s) else "dim") for s in STATUSES]
        table.add_row(compress_hosts(group.hosts), role, *cells)
    for reason, hosts in unreachable_groups(run):
        table.add_row(compress_hosts(hosts), Text(UNREACHABLE, style="bold red"),
                      *["-"] * len(STATUSES))
    return table


def changes_block(run: CheckRun) -> Group:
    """What changed since the baseline: new FAILs and fixed ones folded by check, hosts
    added/removed. Printed first: on a periodic run it is the question being asked."""
    changes = run.changes
    since = changes.baseline + (f" ({changes.baseline_started})" if changes.baseline_started
                                else "")
    parts: list = [Text.assemble(("Changes since ", "bold"), (since, "bold"))]
    for label, style, items in (("NEW", "bold red", changes.new_failures),
                                ("FIXED", "bold green", changes.fixed)):
        folded: dict[str, list] = {}
        for change in items:
            folded.setdefault(change.id, []).append(change)
        for check_id in sorted(folded, key=natural_key):
            hosts = [c.host for c in folded[check_id]]
            parts.append(Text.assemble("  ", (f"{label:<6}", style), (f"{check_id:<7}", "bold"),
                                       " ", folded[check_id][0].title, " — ",
                                       (compress_hosts(hosts), "bold cyan")))
    if changes.hosts_added:
        parts.append(Text(f"  hosts added: {compress_hosts(changes.hosts_added)}"))
    if changes.hosts_removed:
        parts.append(Text(f"  hosts removed: {compress_hosts(changes.hosts_removed)}"))
    if len(parts) == 1:
        parts.append(Text("  no new or fixed FAIL, same hosts", style="dim"))
    return Group(*parts)


def detail_grid(rows: list[tuple[str, str, str]]) -> Table:
    """The indented `label: value` lines under a result (expected, actual, drift, fix), shared
    by the per-host and the grouped views."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value, style in rows:
        grid.add_row(f"{label}:", Text(value, style=style))
    return grid
