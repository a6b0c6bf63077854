"""Check reports: one module per format, each a pure function from a CheckRun to text.

Reports never decide anything about the verdicts; they only arrange what the engine found, so
every format shows the same statuses in the same order (see ordering.py).
"""

from __future__ import annotations

from datetime import datetime

from harden.errors import InputError
from harden.cis.results import CheckRun

FORMATS = ("text", "json", "junit", "sarif", "html", "prometheus")


def render(run: CheckRun, fmt: str, *, color: bool | None = None,
           generated_at: datetime | None = None, by_host: bool = False) -> str:
    """Render `run` in `fmt`.

    `color` only affects text: None colours when stdout is a terminal (and NO_COLOR is unset),
    True/False force it; pass False when writing to a file. `generated_at` is the time shown in
    the HTML header and SARIF invocation (default: now, UTC); tests pin it for stable output.
    `by_host` asks text for the per-host view instead of the grouped one.
    """
    if fmt == "text":
        from harden.cis.reports.text import render_text
        return render_text(run, color=color, by_host=by_host)
    if fmt == "json":
        from harden.cis.reports.json_report import render_json
        return render_json(run)
    if fmt == "junit":
        from harden.cis.reports.junit import render_junit
        return render_junit(run)
    if fmt == "sarif":
        from harden.cis.reports.sarif import render_sarif
        return render_sarif(run, generated_at=generated_at)
    if fmt == "html":
        from harden.cis.reports.html import render_html
        return render_html(run, generated_at=generated_at)
    if fmt == "prometheus":
        from harden.cis.reports.prometheus import render_prometheus
        return render_prometheus(run, generated_at=generated_at)
    raise InputError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")
