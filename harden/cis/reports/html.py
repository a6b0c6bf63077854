"""`--format html`: one self-contained page for people (auditors, the on-call engineer).

Everything is inline (CSS, JS, no fonts or images from anywhere) so the file can be mailed,
attached to a ticket or opened offline. The page is rendered on the server side with
autoescaping, so it reads fine without JavaScript; the small script only filters and expands.
Every string in it came from a node or the catalogue and is escaped by Jinja2.

Built for fleets: nothing on the page grows with hosts × checks. Checks are listed once with
the hosts sharing each verdict (failing checks first), hosts are folded by role and identical
result sets ("44 workers identical"), and the host table lists failing hosts first; a search
box narrows all three to the hosts whose names match.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from harden import __version__
from harden.cis.reports.fleet import (HostGroup, VerdictGroup, compress_hosts, host_roles,
                                      identical_host_groups, role_label, verdict_groups)
from harden.cis.reports.ordering import host_summary, natural_key, section_of
from harden.cis.results import STATUSES, CheckRun

TEMPLATE = "report.html.j2"
SEVERITY = ("FAIL", "ERROR", "WARN", "PASS", "SKIP")      # order of verdicts on a check
MAX_FINDINGS = 8        # distinct findings shown per verdict: a page that does not grow per host


@dataclass
class HostView:
    name: str
    role: str
    counts: dict[str, int]
    unreachable: str | None
    group: str = ""                      # the label of its identical-results group
    failing: list[str] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(self.counts[s] for s in STATUSES)


@dataclass
class CheckView:
    """One check across the fleet: its verdict groups, worst first."""

    id: str
    title: str
    section: str
    scored: bool
    expected: str
    remediation: str
    verdicts: list[VerdictGroup]
    drift: bool

    @property
    def worst(self) -> str:
        return self.verdicts[0].status

    @property
    def bad_hosts(self) -> list[str]:
        return [h for v in self.verdicts if v.status in ("FAIL", "ERROR", "WARN") for h in v.hosts]

    @property
    def findings(self) -> list[str]:
        """What the search box matches: the first few distinct findings of each verdict."""
        return [a for v in self.verdicts for a in list(v.actuals)[:MAX_FINDINGS]]

    @property
    def statuses(self) -> str:
        return " ".join(v.status for v in self.verdicts)


@dataclass
class GroupView:
    label: str
    hosts_text: str
    group: HostGroup


def render_html(run: CheckRun, generated_at: datetime | None = None) -> str:
    generated = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    hosts = _hosts(run)
    checks = _checks(run)
    groups = [GroupView(_group_label(g), compress_hosts(g.hosts), g)
              for g in identical_host_groups(run)]
    for view in groups:
        for name in view.group.hosts:
            hosts[name].group = view.label
    totals = {s: sum(h.counts[s] for h in hosts.values()) for s in STATUSES}
    roles = defaultdict(int)
    for h in hosts.values():
        if not h.unreachable:
            roles[h.role] += 1
    return _environment().get_template(TEMPLATE).render(
        run=run, version=__version__, generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        hosts=sorted(hosts.values(), key=_host_order), checks=checks, groups=groups,
        check_count=len(checks), statuses=STATUSES, totals=totals, score=_scored_pass_rate(run),
        roles=", ".join(f"{n} {role_label(r, n)}" for r, n in roles.items()),
        changes=run.changes, compress=compress_hosts, max_findings=MAX_FINDINGS, role_label=role_label,
        sections=sorted({c.section for c in checks}, key=natural_key))


def _hosts(run: CheckRun) -> dict[str, HostView]:
    roles = host_roles(run)
    views = {name: HostView(name, roles.get(name, ""), counts, run.unreachable.get(name))
             for name, counts in host_summary(run).items()}
    for r in run.results:
        if r.status in ("FAIL", "ERROR"):
            views[r.host].failing.append(r.id)
    for view in views.values():
        view.failing.sort(key=natural_key)
    return views


def _host_order(host: HostView) -> tuple:
    """Unreachable first, then the most failures, then by name."""
    return (host.unreachable is None, -host.counts["FAIL"] - host.counts["ERROR"],
            -host.counts["WARN"], natural_key(host.name))


def _checks(run: CheckRun) -> list[CheckView]:
    by_id: dict[str, list[VerdictGroup]] = defaultdict(list)
    for group in verdict_groups(run):
        by_id[group.id].append(group)
    first = {}
    for r in run.results:
        first.setdefault(r.id, r)
    views = []
    for check_id, verdicts in by_id.items():
        verdicts.sort(key=lambda v: SEVERITY.index(v.status))
        r = first[check_id]
        views.append(CheckView(check_id, r.title, section_of(r), r.scored, r.expected,
                               r.remediation, verdicts, any(v.drifts for v in verdicts)))
    return sorted(views, key=lambda c: (SEVERITY.index(c.worst), natural_key(c.id)))


def _group_label(group: HostGroup) -> str:
    n = len(group.hosts)
    return f"{n} {role_label(group.role, n)}" + (" identical" if n > 1 else "")


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
