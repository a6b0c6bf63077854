"""Ordering and grouping shared by every report format.

The engine gathers hosts in parallel, so the order results arrive in says nothing. Every format
sorts the same way (hosts and CIS ids in natural order: cp-2 before cp-10, 1.2.9 before 1.2.10)
so two runs over the same state give byte-identical reports that diff cleanly.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from harden.cis.results import STATUSES, CheckResult, CheckRun

UNREACHABLE = "UNREACHABLE"
SUMMARY_KEYS = STATUSES + (UNREACHABLE,)


@functools.lru_cache(maxsize=65536)
def natural_key(text: str) -> tuple:
    """Split digits from the rest so numbers compare as numbers (cached: a 500-host report
    sorts the same few hundred names and ids tens of thousands of times)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                 for part in re.split(r"(\d+)", text) if part)


def ordered_results(run: CheckRun) -> list[CheckResult]:
    return sorted(run.results, key=lambda r: (natural_key(r.host), natural_key(r.id)))


def ordered_hosts(run: CheckRun) -> list[str]:
    """Every host of the run, reachable or not."""
    names = {r.host for r in run.results} | set(run.unreachable)
    return sorted(names, key=natural_key)


def host_summary(run: CheckRun) -> dict[str, dict[str, int]]:
    """Per-host counts with every key present (0 when none), so consumers need no defaults."""
    raw = run.summary()
    return {host: {key: raw.get(host, {}).get(key, 0) for key in SUMMARY_KEYS}
            for host in ordered_hosts(run)}


def section_of(result: CheckResult) -> str:
    """The section label, falling back to the id's first two levels when the engine gave none."""
    if result.section:
        return result.section
    return ".".join(result.id.split(".")[:2])


@dataclass
class CheckRow:
    """One check id across hosts: what the HTML matrix and the SARIF rules are built from."""

    id: str
    title: str
    section: str
    scored: bool
    node_type: str
    remediation: str
    expected: str
    by_host: dict[str, CheckResult]


def check_rows(run: CheckRun) -> list[CheckRow]:
    """One row per check id in id order; the first host's wording stands for the check."""
    rows: dict[str, CheckRow] = {}
    for r in ordered_results(run):
        row = rows.get(r.id)
        if row is None:
            row = rows[r.id] = CheckRow(r.id, r.title, section_of(r), r.scored, r.node_type,
                                        r.remediation, r.expected, {})
        row.by_host[r.host] = r
    return sorted(rows.values(), key=lambda row: natural_key(row.id))
