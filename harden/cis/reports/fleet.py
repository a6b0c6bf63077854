"""Arranging a run for fleets: the same verdict on many hosts is said once, with the hosts.

A 50-node check gives thousands of results but only a few dozen distinct findings, because
nodes of one role are built alike. These helpers fold results by check and verdict, name host
sets compactly (`w[1-20,23]`), tell each host's role from the checks that applied to it, and
find hosts whose whole result set is identical. Text and HTML share them so both group alike.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from harden.cis.reports.ordering import natural_key, ordered_hosts, ordered_results
from harden.cis.results import CheckResult, CheckRun

ROLE_ORDER = ("control-plane", "etcd", "worker")
ROLE_PLURAL = {"control-plane": "control planes", "etcd": "etcd nodes", "worker": "workers"}
ROLE_SINGULAR = {"control-plane": "control plane", "etcd": "etcd node", "worker": "worker"}
# process ids differ from node to node although the finding is the same
_PID = re.compile(r"\bprocess \d+")
_DIGITS = re.compile(r"(\d+)")
# an address in an unreachable reason ("timed out (127.0.9.15:22)") differs per host
_ADDRESS = re.compile(r"\s*\(?\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\)?")


def role_label(role: str, count: int) -> str:
    return (ROLE_SINGULAR if count == 1 else ROLE_PLURAL).get(role, role)


def compress_hosts(names) -> str:
    """`cp1 cp2 cp3 w1 w2 w7` -> `cp[1-3] w[1-2,7]`: names alike but for one number (`a1.dc1`,
    `a2.dc1` -> `a[1-2].dc1`; zero padding kept) share a bracket; others stay as they are."""
    shapes: dict[tuple, list[list[str]]] = defaultdict(list)
    for name in names:
        parts = _DIGITS.split(name)          # text, number, text, number, ..., text
        shapes[tuple(parts[0::2])].append(parts)
    entries: list[tuple[str, str]] = []
    for members in shapes.values():
        entries.extend(_fold_shape(members))
    return " ".join(text for _, text in sorted(entries, key=lambda e: natural_key(e[0])))


def _fold_shape(members: list[list[str]]) -> list[tuple[str, str]]:
    """(sort key, text) per folded family of names that share their non-digit parts."""
    numbers = range(1, len(members[0]), 2)
    varying = [i for i in numbers if len({m[i] for m in members}) > 1]
    if len(members) == 1 or len(varying) != 1:
        return [("".join(m), "".join(m)) for m in members]
    at = varying[0]
    padded = {len(m[at]) for m in members if m[at].startswith("0") and len(m[at]) > 1}
    families: dict[int, list[int]] = defaultdict(list)
    for m in members:
        families[len(m[at]) if len(m[at]) in padded else 0].append(int(m[at]))
    out = []
    for width, values in families.items():
        values = sorted(set(values))
        head, tail = "".join(members[0][:at]), "".join(members[0][at + 1:])
        middle = f"{values[0]:0{width}d}" if len(values) == 1 else \
            "[" + ",".join(_ranges(values, width)) + "]"
        out.append((f"{head}{values[0]:0{width}d}{tail}", f"{head}{middle}{tail}"))
    return out


def _ranges(numbers: list[int], width: int) -> list[str]:
    out, start, prev = [], numbers[0], numbers[0]
    for n in numbers[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start:0{width}d}" if start == prev else
                   f"{start:0{width}d}-{prev:0{width}d}")
        if n is not None:
            start = prev = n
    return out


def host_roles(run: CheckRun) -> dict[str, str]:
    """Each audited host's role, from the checks that applied to it: a control plane if any
    control-plane check was decided there, else etcd, else worker."""
    seen: dict[str, set[str]] = defaultdict(set)
    for r in run.results:
        if r.status != "SKIP" and r.node_type:
            seen[r.host].add(r.node_type)
        else:
            seen[r.host]
    return {host: next((role for role in ROLE_ORDER if role in roles), "worker")
            for host, roles in seen.items()}


def comparable(actual: str) -> str:
    """The finding with node-local noise (process ids) masked, so equal findings fold."""
    return _PID.sub("process …", actual)


@dataclass
class VerdictGroup:
    """One check with one status on a set of hosts (the hosts whose verdict it is)."""

    id: str
    title: str
    status: str
    scored: bool
    expected: str
    remediation: str
    hosts: list[str]                         # natural order
    of: int                                  # hosts the check was evaluated on
    role: str                                # the check's node type
    actuals: dict[str, list[str]] = field(default_factory=dict)   # masked actual -> hosts
    drifts: dict[str, list[str]] = field(default_factory=dict)    # drift -> hosts
    test_failed: list[str] = field(default_factory=list)   # hosts where an unscored test FAILs


def verdict_groups(run: CheckRun) -> list[VerdictGroup]:
    """Per check id and status, the hosts sharing that status, in check-id order."""
    groups: dict[tuple[str, str], VerdictGroup] = {}
    evaluated: dict[str, int] = defaultdict(int)
    for r in ordered_results(run):
        evaluated[r.id] += 1
        group = groups.get((r.id, r.status))
        if group is None:
            group = groups[(r.id, r.status)] = VerdictGroup(
                r.id, r.title, r.status, r.scored, r.expected, r.remediation, [], 0,
                r.node_type)
        group.hosts.append(r.host)
        group.actuals.setdefault(comparable(r.actual), []).append(r.host)
        if r.drift:
            group.drifts.setdefault(r.drift, []).append(r.host)
        if r.computed == "FAIL":
            group.test_failed.append(r.host)
    for group in groups.values():
        group.of = evaluated[group.id]
    return sorted(groups.values(), key=lambda g: natural_key(g.id))


@dataclass
class HostGroup:
    """Hosts of one role whose results are identical (same status for every check)."""

    role: str
    hosts: list[str]
    counts: dict[str, int]
    failing: list[str]                        # ids of FAIL/ERROR checks
    warning: list[str]                        # ids of WARN checks


def identical_host_groups(run: CheckRun) -> list[HostGroup]:
    """Audited hosts folded by role and result set; failing groups first, then by role."""
    roles = host_roles(run)
    signatures: dict[str, list[tuple[str, str]]] = defaultdict(list)
    by_host: dict[str, list[CheckResult]] = defaultdict(list)
    for r in ordered_results(run):
        signatures[r.host].append((r.id, r.status))
        by_host[r.host].append(r)
    folded: dict[tuple, HostGroup] = {}
    for host in ordered_hosts(run):
        if host in run.unreachable:
            continue
        key = (roles.get(host, "worker"), tuple(signatures[host]))
        group = folded.get(key)
        if group is None:
            results = by_host[host]
            counts: dict[str, int] = defaultdict(int)
            for r in results:
                counts[r.status] += 1
            group = folded[key] = HostGroup(
                key[0], [], dict(counts),
                [r.id for r in results if r.status in ("FAIL", "ERROR")],
                [r.id for r in results if r.status == "WARN"])
        group.hosts.append(host)
    return sorted(folded.values(), key=lambda g: (not g.failing, _role_rank(g.role),
                                                  natural_key(g.hosts[0])))


def _role_rank(role: str) -> int:
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)


def unreachable_groups(run: CheckRun) -> list[tuple[str, list[str]]]:
    """(reason, hosts) with hosts sharing a reason folded together."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for host in sorted(run.unreachable, key=natural_key):
        by_reason[_ADDRESS.sub("", run.unreachable[host]).strip()].append(host)
    return sorted(by_reason.items(), key=lambda item: natural_key(item[1][0]))
