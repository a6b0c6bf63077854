"""`harden check`: audit every selected host against a CIS catalogue, from one place.

Per host: one SSH session, one exec (the fact probe, as root), then evaluation on the
controller; a control plane whose declared cluster (`harden_cluster`) got no shared section-5
answer in the probes gets a second exec (harden.cis.cluster_reads). Hosts are worked on
`--forks` at a time; an unreachable host is reported as such and never stops the others. The
exit code follows the contract in docs/operations.md: 0 every scored item passes, 2 a scored
FAIL, 4 a host could not be audited, 1 bad input (before any host is contacted).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Sequence

import click

from harden.cis import cluster_reads
from harden.cis.catalogue import benchmark_path
from harden.ssh.settings import resolve_targets
from harden.errors import InputError
from harden.progress import HostProgress, wanted
from harden.runs.journal import Journal, new_run_id, record_check
from harden.ssh.parallel import HostOutcome, for_each_host
from harden.cis.probe import Facts, gather_cluster_facts, gather_facts
from harden.cis.reports import FORMATS, render
from harden.cis.results import CheckResult, CheckRun
from harden.ssh.transport import JumpPool, connect

if TYPE_CHECKING:
    from harden.cis.catalogue import Catalogue

# What comes into play only once a host's facts are in (the evaluators, the catalogue, and
# --compare's baseline) is imported where it is used: a check's first connection then waits
# for none of it (see CatalogueLoad).

EXIT_OK, EXIT_INPUT, EXIT_FINDINGS, EXIT_HOSTS = 0, 1, 2, 4


def run_check(inventories: Sequence[str], *, limit: str | None, forks: int, benchmark: str,
              fmt: str, output: str | None, metrics_file: str | None = None,
              by_host: bool = False, compare: str | None = None,
              fail_on: str = "any", accept_new_host_keys: bool = False,
              ask_become_pass: bool = False, connect_timeout: float | None = None,
              transport: str | None = None, host_defaults: dict | None = None) -> int:
    """Audit the selected hosts, write the report, keep the run in the journal, return the
    exit code."""
    if fmt not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fail_on == "new" and compare is None:
        raise InputError("--fail-on new needs --compare RUN_ID|FILE|last (new since what?)")
    catalogue = CatalogueLoad(benchmark)       # an unknown name fails here, before any host
    journal = None
    try:
        baseline = None
        if compare:        # a bad baseline is bad input: found before any host is contacted
            from harden.cis.compare import load_baseline
            journal = _open_journal()
            baseline = load_baseline(compare, catalogue.get().benchmark, journal)
        run = _audit(inventories, limit, forks, catalogue, fmt, accept_new_host_keys,
                     ask_become_pass, connect_timeout, transport, host_defaults)
        if baseline is not None:
            from harden.cis.compare import compute_changes
            run.changes = compute_changes(baseline, run)
        code = exit_code(run, fail_on)
        if journal is None:      # opened only now: the audit does not need it
            journal = _open_journal()
        _journal_run(journal, run, code)
    finally:
        if journal is not None:
            journal.close()
    _write_report(run, fmt, output, by_host)
    if metrics_file is not None:
        _write_report(run, "prometheus", metrics_file)
    return code


class CatalogueLoad:
    """The catalogue, loaded in a thread of its own while the hosts are connected and probed.

    A check needs the catalogue only to evaluate a host's facts, which arrive after the SSH
    login and the probe's round trip; loading it (YAML and validation, ~45 ms of CPU) before
    the first connection made every host wait for it. The name is checked at once
    (catalogue.benchmark_path), so an unknown benchmark still fails before any host is
    contacted. `start` is called by a paramiko host once it is logged in (the load then
    overlaps the probe's wait on the node), `get` by whoever needs the catalogue first; both
    may come from any thread, and `get` starts the load itself if no host did. An OpenSSH
    one-exec session logs in with the probe's own `ssh` process, spawned inside the probe
    call: a load started before it delayed the spawns and cost the controller CPU (measured),
    so there the first host whose facts are in loads it while the others' probes still run.
    """

    def __init__(self, name: str, loaded: Catalogue | None = None):
        if loaded is None:
            benchmark_path(name)
        self.name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._value = loaded
        self._error: BaseException | None = None

    @classmethod
    def of(cls, catalogue: Catalogue) -> CatalogueLoad:
        """One that is already loaded (tests, callers holding a Catalogue)."""
        return cls(catalogue.benchmark, catalogue)

    def start(self) -> None:
        with self._lock:
            if self._value is None and self._thread is None:
                self._thread = threading.Thread(target=self._load, name="catalogue",
                                                daemon=True)
                self._thread.start()

    def get(self) -> Catalogue:
        """The catalogue; its load's error (InputError naming the file) raised in the caller."""
        self.start()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def _load(self) -> None:
        try:
            from harden.cis.catalogue import load_catalogue
            self._value = load_catalogue(self.name)
        except BaseException as exc:   # noqa: BLE001 - handed to every get(), in its thread
            self._error = exc


def _audit(inventories, limit, forks, catalogue: CatalogueLoad, fmt: str,
           accept_new_host_keys: bool, ask_become_pass: bool, connect_timeout: float | None,
           transport: str | None = None, host_defaults: dict | None = None) -> CheckRun:
    """Every selected host probed and evaluated, `forks` at a time, with progress on a
    terminal."""
    hosts, specs = resolve_targets(
        inventories, limit, connect_timeout=connect_timeout, transport=transport,
        accept_new_host_keys=accept_new_host_keys, ask_become_pass=ask_become_pass,
        warn=lambda line: click.echo(line, err=True), host_defaults=host_defaults)
    asking = cluster_reads.askers(hosts)
    run_id, started_at = new_run_id(), datetime.now(timezone.utc)
    started = time.monotonic()
    jumps = JumpPool()
    progress = HostProgress("harden check", len(hosts), enabled=wanted(fmt))
    try:
        with progress:
            outcomes = for_each_host(hosts, progress.around(
                lambda host: audit_host(host, specs[host.name], catalogue, jumps,
                                        progress.host_step, host.name in asking)), forks)
        facts = {name: o.value.facts for name, o in outcomes.items() if o.ok}
        failed = cluster_reads.share(
            hosts, facts, lambda host: ask_cluster(host, specs[host.name], jumps), forks)
    finally:
        jumps.close()
    run = CheckRun(benchmark=catalogue.get().benchmark, run_id=run_id, results=[],
                   started_at=started_at)
    roles = {host.name: host.vars.get("harden_node_role") for host in hosts}
    for name, outcome in outcomes.items():
        if name in failed:                  # its second exec failed: as a failed probe
            outcome = HostOutcome(name, error=failed[name])
        elif outcome.ok and outcome.value.results is None:
            outcome = _evaluate_late(name, facts[name], catalogue, roles[name])
        if outcome.ok:
            run.results.extend(outcome.value.results)
        else:
            run.unreachable[name] = f"{outcome.kind}: {outcome.message}"
    run.seconds = time.monotonic() - started
    return run


def _journal_run(journal: Journal | None, run: CheckRun, code: int) -> None:
    """Keep the run for later --compare; a journal that fails to write only costs a warning."""
    if journal is None:
        return
    try:
        record_check(journal, run, code)
    except sqlite3.Error as exc:
        click.echo(f"harden: warning: check run not journaled: {exc}", err=True)


def _open_journal() -> Journal | None:
    """The local journal, or None (with a warning) when it cannot be opened: a read-only home
    must not stop an audit, it only means this run cannot be compared against later."""
    try:
        return Journal()
    except (OSError, sqlite3.Error) as exc:
        click.echo(f"harden: warning: check run not journaled: {exc}", err=True)
        return None


@dataclass
class Audited:
    """One host's facts and, unless its section 5 waits for another control plane, its
    results."""

    facts: Facts
    results: list[CheckResult] | None


def audit_host(host, spec, catalogue: CatalogueLoad, jumps: JumpPool | None = None,
               step=lambda host, text: None, ask_cluster: bool = True) -> Audited:
    """One session, one probe exec, then every applicable check evaluated locally (later, by
    _audit, when another control plane of its cluster answers section 5 for it)."""
    step(host.name, "connecting")
    with connect(spec, jumps, one_exec=True) as session:
        if spec.transport != "openssh":
            catalogue.start()             # logged in: it loads while the node runs the probe
        step(host.name, "probing")
        facts = gather_facts(session, host.name, ask_cluster=ask_cluster)
    if facts.kubectl_deferred:
        return Audited(facts, None)
    step(host.name, "evaluating")
    return Audited(facts, _evaluate(host.name, facts, catalogue.get(),
                                    host.vars.get("harden_node_role")))


def _evaluate(name: str, facts: Facts, catalogue: Catalogue, role) -> list[CheckResult]:
    """harden.cis.evaluate, imported with the first host's facts rather than before the
    first connection."""
    from harden.cis.evaluate import evaluate_host
    return evaluate_host(name, facts, catalogue, role)


def ask_cluster(host, spec, jumps: JumpPool | None = None) -> Facts:
    """Section 5 asked of this control plane in an exec of its own (cluster_reads.share)."""
    with connect(spec, jumps, one_exec=True) as session:
        return gather_cluster_facts(session, host.name)


def _evaluate_late(name: str, facts: Facts, catalogue: CatalogueLoad, role) -> HostOutcome:
    """A host evaluated once its cluster's answers are in; an error is its outcome, as in
    for_each_host."""
    try:
        return HostOutcome(name, Audited(facts, _evaluate(name, facts, catalogue.get(), role)))
    except Exception as exc:   # noqa: BLE001 - one host's failure must not stop the others
        return HostOutcome(name, error=exc)


def exit_code(run: CheckRun, fail_on: str = "any") -> int:
    """4 if a host could not be audited, else 2 if a scored check failed or its component
    would refuse its command line (ERROR) (with `fail_on="new"`: only such a result that is
    new since the baseline), else 0."""
    from harden.cis.compare import FAILING, new_scored_failures

    if run.unreachable:
        return EXIT_HOSTS
    if fail_on == "new" and run.changes is not None:
        return EXIT_FINDINGS if new_scored_failures(run.changes, run) else EXIT_OK
    if any(r.scored and r.status in FAILING for r in run.results):
        return EXIT_FINDINGS
    return EXIT_OK


def _write_report(run: CheckRun, fmt: str, output: str | None, by_host: bool = False) -> None:
    if output is None:
        click.echo(render(run, fmt, generated_at=run.started_at, by_host=by_host), nl=False)
        return
    text = render(run, fmt, color=False, generated_at=run.started_at, by_host=by_host)
    try:
        if os.path.exists(output) and not os.path.isfile(output):
            with open(output, "w", encoding="utf-8") as fh:    # /dev/null, a pipe: never replace
                fh.write(text)
        else:
            tmp = f"{output}.tmp{os.getpid()}"                 # readers never see half a report
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, output)
    except OSError as exc:
        raise InputError(f"cannot write the report: {exc.strerror}", output) from exc
    click.echo(f"report written to {output} ({fmt})", err=True)
