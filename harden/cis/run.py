"""`harden check`: audit every selected host against a CIS catalogue, from one place.

Per host: one SSH session, one exec (the fact probe, as root), then evaluation on the
controller. Hosts are worked on `--forks` at a time; an unreachable host is reported as such and
never stops the others. The exit code follows the contract in docs/operations.md: 0 every scored
item passes, 2 a scored FAIL, 4 a host could not be audited, 1 bad input (before any host is
contacted).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Sequence

import click

from harden.cis.catalogue import Catalogue, load_catalogue
from harden.cis.evaluate import evaluate_host
from harden.ssh.settings import resolve_targets
from harden.errors import InputError
from harden.runs.journal import new_run_id
from harden.ssh.parallel import for_each_host
from harden.cis.probe import gather_facts
from harden.cis.reports import FORMATS, render
from harden.cis.results import CheckResult, CheckRun
from harden.ssh.transport import JumpPool, connect

EXIT_OK, EXIT_INPUT, EXIT_FINDINGS, EXIT_HOSTS = 0, 1, 2, 4


def run_check(inventories: Sequence[str], *, limit: str | None, forks: int, benchmark: str,
              fmt: str, output: str | None, accept_new_host_keys: bool = False,
              ask_become_pass: bool = False, connect_timeout: float | None = None,
              transport: str | None = None) -> int:
    """Audit the selected hosts, write the report, return the exit code."""
    if fmt not in FORMATS:
        raise InputError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    catalogue = load_catalogue(benchmark)
    hosts, specs = resolve_targets(
        inventories, limit, connect_timeout=connect_timeout, transport=transport,
        accept_new_host_keys=accept_new_host_keys, ask_become_pass=ask_become_pass,
        warn=lambda line: click.echo(line, err=True))
    run = CheckRun(benchmark=catalogue.benchmark, run_id=new_run_id(), results=[],
                   started_at=datetime.now(timezone.utc))
    jumps = JumpPool()
    try:
        outcomes = for_each_host(
            hosts, lambda host: audit_host(host, specs[host.name], catalogue, jumps), forks)
    finally:
        jumps.close()
    for name, outcome in outcomes.items():
        if outcome.ok:
            run.results.extend(outcome.value)
        else:
            run.unreachable[name] = f"{outcome.kind}: {outcome.message}"
    _write_report(run, fmt, output)
    return exit_code(run)


def audit_host(host, spec, catalogue: Catalogue, jumps: JumpPool | None = None) -> list[CheckResult]:
    """One session, one probe exec, then every applicable check evaluated locally."""
    with connect(spec, jumps) as session:
        facts = gather_facts(session, host.name)
    return evaluate_host(host.name, facts, catalogue, host.vars.get("harden_node_role"))


def exit_code(run: CheckRun) -> int:
    """4 if a host could not be audited, else 2 if a scored check failed, else 0."""
    if run.unreachable:
        return EXIT_HOSTS
    if any(r.scored and r.status == "FAIL" for r in run.results):
        return EXIT_FINDINGS
    return EXIT_OK


def _write_report(run: CheckRun, fmt: str, output: str | None) -> None:
    if output is None:
        click.echo(render(run, fmt, generated_at=run.started_at), nl=False)
        return
    text = render(run, fmt, color=False, generated_at=run.started_at)
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
