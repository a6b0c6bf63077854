"""`--format html`: one self-contained page for people (auditors, the on-call engineer).

Everything is inline (CSS, JS, no fonts or images from anywhere) so the file can be mailed,
attached to a ticket or opened offline. The page is rendered on the server side with
autoescaping, so it reads fine without JavaScript; the small script only filters and expands.
Every string in it came from a node or the catalogue and is escaped by Jinja2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path

import jinja2

from harden import __version__
from harden.cis.reports.ordering import CheckRow, check_rows, host_summary
from harden.cis.results import STATUSES, CheckRun

TEMPLATE = "report.html.j2"


@dataclass
class HostView:
    name: str
    counts: dict[str, int]
    unreachable: str | None

    @property
    def checked(self) -> int:
        return sum(self.counts[s] for s in STATUSES)


@dataclass
class SectionView:
    name: str
    rows: list[CheckRow]


def render_html(run: CheckRun, generated_at: datetime | None = None) -> str:
    generated = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    summary = host_summary(run)
    hosts = [HostView(name, counts, run.unreachable.get(name)) for name, counts in summary.items()]
    rows = check_rows(run)
    sections = [SectionView(name, list(items))
                for name, items in groupby(rows, key=lambda row: row.section)]
    totals = {s: sum(h.counts[s] for h in hosts) for s in STATUSES}
    return _environment().get_template(TEMPLATE).render(
        run=run, version=__version__, generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        hosts=hosts, sections=sections, check_count=len(rows), statuses=STATUSES,
        totals=totals, score=_scored_pass_rate(run))


def _scored_pass_rate(run: CheckRun) -> int | None:
    """Share of decided scored checks that pass, the one number people ask for first."""
    decided = [r for r in run.results if r.scored and r.status in ("PASS", "FAIL")]
    if not decided:
        return None
    return round(100 * sum(r.status == "PASS" for r in decided) / len(decided))


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True)
