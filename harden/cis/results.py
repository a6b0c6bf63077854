"""The result records that the check engine produces and every report consumes.

Kept apart from both so a report never needs to know how a verdict was reached, and the engine
never needs to know how it is shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

STATUSES = ("PASS", "FAIL", "WARN", "SKIP", "ERROR")


@dataclass
class CheckResult:
    """One check evaluated on one host (the JSON contract of docs/operations.md, plus context)."""

    host: str
    id: str                      # CIS id, e.g. "1.2.15"
    title: str
    status: str                  # one of STATUSES
    scored: bool                 # automated/scored items decide the exit code
    expected: str                # the condition, in words: "--profiling is 'false'"
    actual: str                  # what was found: "--profiling is not set"
    remediation: str
    section: str = ""            # e.g. "1.2 API Server"
    node_type: str = ""          # control-plane | worker | etcd
    drift: str | None = None     # configured vs effective mismatch, in words
    facts: list[str] = field(default_factory=list)   # which facts were used (evidence)
    # the test's own verdict where the status hides it: an automated check that is not
    # scored (most of section 5) and fails is WARN, as kube-bench reports it; "FAIL" here
    computed: str | None = None

    def to_json(self) -> dict:
        """The fields in declaration order, as asdict gives them, without asdict's recursive
        deep copy: a report of 50 nodes holds ~5000 results, and asdict was most of the
        time a JSON report took to build (the evidence list is copied, the rest is immutable)."""
        data = {name: getattr(self, name) for name in _RESULT_FIELDS}
        data["facts"] = list(self.facts)
        return data


_RESULT_FIELDS = tuple(f.name for f in fields(CheckResult))


@dataclass
class Change:
    """One host × check whose FAIL appeared or went away since the baseline run."""

    host: str
    id: str
    title: str
    before: str | None            # the baseline's status (None: not evaluated then)
    after: str | None             # this run's status (None: not evaluated now)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Changes:
    """What differs from a baseline run (`--compare`): only results, never node content."""

    baseline: str                                 # the baseline's run id
    baseline_started: str | None                  # ISO time of the baseline, when known
    new_failures: list[Change] = field(default_factory=list)
    fixed: list[Change] = field(default_factory=list)
    hosts_added: list[str] = field(default_factory=list)
    hosts_removed: list[str] = field(default_factory=list)
    before: dict[tuple[str, str], str] = field(default_factory=dict)   # (host, id) -> status

    def to_json(self) -> dict:
        return {"baseline": self.baseline, "baseline_started": self.baseline_started,
                "new_failures": [c.to_json() for c in self.new_failures],
                "fixed": [c.to_json() for c in self.fixed],
                "hosts_added": list(self.hosts_added), "hosts_removed": list(self.hosts_removed)}


@dataclass
class CheckRun:
    """A whole `harden check`: the benchmark, the run id, every result and unreachable hosts."""

    benchmark: str
    run_id: str
    results: list[CheckResult]
    unreachable: dict[str, str] = field(default_factory=dict)   # host -> reason
    started_at: datetime | None = None                            # when the run began (UTC)
    changes: Changes | None = None                                # with --compare
    seconds: float | None = None                                  # how long the run took

    def summary(self) -> dict[str, dict[str, int]]:
        """Per-host counts of each status (unreachable hosts get an UNREACHABLE count of 1)."""
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            counts = out.setdefault(r.host, {s: 0 for s in STATUSES})
            counts[r.status] += 1
        for host in self.unreachable:
            out.setdefault(host, {s: 0 for s in STATUSES})["UNREACHABLE"] = 1
        return out
