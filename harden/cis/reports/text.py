"""The default human report: per host, grouped by section, then a summary table.

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

from harden.cis.reports.ordering import UNREACHABLE, host_summary, ordered_hosts, ordered_results, section_of
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


def render_text(run: CheckRun, color: bool | None = None) -> str:
    color = wants_color() if color is None else color
    buffer = io.StringIO()
    # A terminal gets its own width; files and pipes get a fixed one, so a report written by
    # cron or CI reads the same whatever launched it.
    width = shutil.get_terminal_size((PLAIN_WIDTH, 24)).columns if color else PLAIN_WIDTH
    console = Console(file=buffer, force_terminal=color, color_system="auto" if color else None,
                      width=width, highlight=False, emoji=False, markup=False)
    console.print(_heading(run))
    by_host = {host: list(rs) for host, rs in groupby(ordered_results(run), key=lambda r: r.host)}
    for host in ordered_hosts(run):
        console.print()
        console.print(_host_block(host, by_host.get(host, []), run.unreachable.get(host)))
    console.print()
    console.print(summary_table(run))
    # rich pads table cells to full width; trailing blanks only add noise to files and diffs
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


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
    if not result.scored:
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
    if result.drift:
        rows.append(("drift", result.drift, "yellow"))
    if result.status == "FAIL" and result.remediation:
        rows.append(("fix", result.remediation.strip(), "cyan"))
    if not rows:
        return None
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value, style in rows:
        grid.add_row(f"{label}:", Text(value, style=style))
    return grid


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
