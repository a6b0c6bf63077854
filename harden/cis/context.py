"""The types every evaluator shares: one host's context, and what an evaluator concludes.

Kept below the evaluators (component, file and content checks) so that each imports this module
and none imports another's driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harden.cis.component_views import View, component_views
from harden.cis.probe import Facts


@dataclass
class Verdict:
    """What one evaluator concluded, before scoring turns it into a status."""

    passed: bool | None          # None: the check could not be decided (status given below)
    actual: str
    facts: list[str] = field(default_factory=list)
    drift: str | None = None
    status: str | None = None    # forces a status (SKIP, WARN) instead of the pass/fail mapping


class HostContext:
    """One host's facts plus its component views, built once and shared by all checks."""

    def __init__(self, facts: Facts):
        self.facts = facts
        self._views: dict[str, tuple[View | None, View | None]] = {}

    def views(self, component: str) -> tuple[View | None, View | None]:
        if component not in self._views:
            self._views[component] = component_views(component, self.facts)
        return self._views[component]
