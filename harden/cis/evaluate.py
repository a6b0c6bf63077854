"""The per-host evaluation driver: every applicable catalogue check over one host's probe facts.

Component checks are evaluated on both views of harden/cis/component_views.py. The verdict comes
from the effective view (a check fails if the running state fails); when the two views disagree,
the result carries a `drift` text. docs/cis-coverage.md lists where harden deliberately differs
from kube-bench.
"""

from __future__ import annotations

from harden.cis import cluster_checks
from harden.cis.catalogue import Catalogue, Check
from harden.cis.component_views import View
from harden.cis.context import HostContext, Verdict
from harden.cis.file_checks import evaluate_files
from harden.cis.kernel_tunables import kernel_tunables
from harden.cis.lookup import Lookup, run_tests
from harden.cis.refusals import refusals
from harden.cis.probe import Facts
from harden.cis.results import CheckResult
from harden.cis.roles import detect_roles
from harden.errors import HostError


def evaluate_host(host: str, facts: Facts, catalogue: Catalogue, role_override=None) -> list[CheckResult]:
    """Every catalogue check that applies to this host's roles, evaluated on its facts."""
    if not facts.complete:
        raise HostError(host, "the fact probe did not run to completion (output truncated)")
    roles = detect_roles(facts, role_override, host)
    context = HostContext(facts)
    results = []
    for check in catalogue.checks:
        if check.node_type in roles:
            results.append(_result(host, check, _evaluate(check, context)))
    return results


def _result(host: str, check: Check, verdict: Verdict) -> CheckResult:
    computed = None
    if verdict.status:
        status = verdict.status
    elif verdict.passed:
        status = "PASS"
    else:
        # kube-bench reports a failed test of an unscored check as WARN; the status agrees
        # with it, and `computed` keeps what the test found, so a review item the objects
        # fail is not mistaken for one nobody checked
        status = "FAIL" if check.scored else "WARN"
        computed = None if check.scored else "FAIL"
    return CheckResult(host=host, id=check.id, title=check.title, status=status, scored=check.scored,
                       expected=check.expected, actual=verdict.actual, remediation=check.remediation,
                       section=f"{check.section} {check.section_title}", node_type=check.node_type,
                       drift=verdict.drift, facts=verdict.facts, computed=computed)


# checks that never read a node file: the cluster's objects (kubectl) and manual ones
_NO_NODE_FILES = ("manual", "kubectl")


def _unread_verdict(check: Check, facts: Facts) -> Verdict | None:
    """ERROR naming the files the probe could not read this time (one changed while it read
    them: Facts.unread) for a check that reads node files: its verdict could rest on a file
    taken for absent. The other checks, and other hosts, are judged as usual."""
    if not facts.unread or check.kind in _NO_NODE_FILES:
        return None
    return Verdict(None, "not evaluated: " + "; ".join(facts.unread.values())
                   + "; run the check again", sorted(facts.unread), status="ERROR")


def _evaluate(check: Check, ctx: HostContext) -> Verdict:
    kind = check.kind
    unread = _unread_verdict(check, ctx.facts)
    if unread:
        return unread
    if kind == "manual":
        return Verdict(None, f"manual check: {check.audit['manual']}", status="WARN")
    if kind == "component":
        return _evaluate_component(check.audit, ctx)
    if kind == "files":
        return evaluate_files(check.audit, ctx)
    if kind == "encryption_providers":
        return cluster_checks.encryption_providers(check.audit["encryption_providers"], ctx)
    if kind == "audit_policy":
        return cluster_checks.audit_policy(ctx)
    if kind == "encryption_stored":
        return cluster_checks.encryption_stored(ctx)
    if kind == "kubeadm_config":
        return cluster_checks.kubeadm_agreement(check.audit["kubeadm_config"], ctx)
    if kind == "kernel_tunables":
        return kernel_tunables(ctx)
    return cluster_checks.kubectl_check(check.audit["kubectl"], ctx.facts)


def _describe_view(view: View, lookups: list[Lookup]) -> str:
    where = view.source + (f", config {view.config_source}" if view.config_source else "")
    notes = f"; {'; '.join(view.notes)}" if view.notes else ""
    return f"{'; '.join(l.describe() for l in lookups)} ({where}{notes})"


def _refused_verdict(component: str, views: list[View]) -> Verdict | None:
    """ERROR naming the argument when a view's command line is one the component refuses: its
    flags never take effect, so testing them as if it ran would be fiction."""
    for view in views:
        why = refusals(view)
        if why:
            return Verdict(None, f"{component} refuses to start with the command line of {view.source}: "
                           + "; ".join(why) + "; its settings are not evaluated", [view.source],
                           status="ERROR")
    return None


def _evaluate_component(audit: dict, ctx: HostContext) -> Verdict:
    component = audit["component"]
    if "authorizers" in audit:
        from_file = cluster_checks.authorizers(audit["authorizers"], ctx)
        if from_file is not None:
            return from_file
    effective, configured = ctx.views(component)
    refused = _refused_verdict(component, [v for v in (effective, configured) if v is not None])
    if refused:
        return refused
    if effective is None and configured is None:
        passed, lookups = run_tests(audit, View("nothing", {}))
        return Verdict(passed, f"{component} is not running and has no configuration on this node; "
                       + "; ".join(l.describe() for l in lookups))
    if effective is None:
        passed, lookups = run_tests(audit, configured)
        text = f"{component} is not running; configured: {_describe_view(configured, lookups)}"
        return Verdict(passed, text, [configured.source],
                       status=None if not passed else "WARN")
    passed, lookups = run_tests(audit, effective)
    used = [effective.source] + ([f"config {effective.config_source}"] if effective.config_source else [])
    drift = None
    if configured is not None:
        conf_passed, conf_lookups = run_tests(audit, configured)
        used.append(configured.source)
        if [l.describe() for l in conf_lookups] != [l.describe() for l in lookups]:
            drift = (f"configured {_describe_view(configured, conf_lookups)} differs from running "
                     f"({'; '.join(l.describe() for l in lookups)}); the configured state would "
                     f"{'pass' if conf_passed else 'fail'} after a restart")
    status = None
    if effective.stale and any("key" in item or "gate" in item for item in audit["tests"]):
        # the file no longer shows what the running kubelet read: a pass cannot be confirmed
        drift = f"{drift}; {effective.stale}" if drift else effective.stale
        status = "WARN" if passed else None
    return Verdict(passed, _describe_view(effective, lookups), used, drift, status)
