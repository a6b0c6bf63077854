"""`harden ping`: can harden reach, log in to and (where asked) become root on every host?

Every host's connection settings are worked out first, so a mistake in the inventory (a missing
key file, a bad port) stops the command with exit 1 before any host is contacted. Then each
host gets one session and one read-only command, `id -un`, run under sudo when the host has
ansible_become, so the table shows the user commands will really run as.
"""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harden.ssh.settings import ConnectionSpec, resolve_targets
from harden.errors import HostError
from harden.ssh.parallel import HostOutcome, for_each_host
from harden.ssh.transport import JumpPool, connect

EXIT_OK, EXIT_HOSTS = 0, 4
PING_COMMAND = "id -un"
PING_TIMEOUT = 30.0    # `id` answers at once; a host that hangs must not hold up the whole ping
_STYLE = {"ok": "green", "unreachable": "red", "auth failed": "red",
          "host key mismatch": "bold red", "host key unknown": "yellow",
          "become failed": "magenta"}


def run_ping(inventories: Sequence[str], *, limit: str | None = None, forks: int = 20,
             accept_new_host_keys: bool = False, ask_become_pass: bool = False,
             connect_timeout: float | None = None, console: Console | None = None,
             transport: str | None = None, host_defaults: dict | None = None) -> int:
    """Ping the selected hosts; print the table; return the exit code (0 all ok, else 4)."""
    out = console or Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    hosts, specs = resolve_targets(
        inventories, limit, connect_timeout=connect_timeout, transport=transport,
        accept_new_host_keys=accept_new_host_keys, ask_become_pass=ask_become_pass,
        warn=lambda line: err.print(line, markup=False, highlight=False),
        host_defaults=host_defaults)
    jumps = JumpPool()
    try:
        outcomes = for_each_host(hosts, lambda host: ping_host(specs[host.name], jumps), forks)
    finally:
        jumps.close()
    _print_table(out, specs, outcomes)
    return EXIT_OK if all(o.ok for o in outcomes.values()) else EXIT_HOSTS


def ping_host(spec: ConnectionSpec, jumps: JumpPool | None = None) -> tuple[str, int]:
    """(effective user, exec channels used) after one session and one command on the host."""
    with connect(spec, jumps, one_exec=True) as session:
        result = session.run(PING_COMMAND, timeout=PING_TIMEOUT)
        if result.rc != 0:
            detail = result.stderr.decode(errors="replace").strip() or f"exit {result.rc}"
            raise HostError(spec.host, f"'{PING_COMMAND}' failed: {detail}")
        return result.stdout.decode(errors="replace").strip(), session.exec_count


def _print_table(out: Console, specs: dict[str, ConnectionSpec],
                 outcomes: dict[str, HostOutcome]) -> None:
    """One line per host (long reasons cut short), then every failure's full reason."""
    table = Table(title="harden ping")
    table.add_column("host", no_wrap=True)
    table.add_column("route", overflow="fold", min_width=24)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("time", no_wrap=True, justify="right")
    for name, outcome in outcomes.items():
        detail = f"as {outcome.value[0]}" if outcome.ok else outcome.message
        table.add_row(Text(name), Text(specs[name].route),
                      Text(outcome.kind, style=_STYLE.get(outcome.kind, "red")),
                      Text(detail), f"{outcome.seconds:.2f}s")
    out.print(table)
    failed = [o for o in outcomes.values() if not o.ok]
    for outcome in failed:
        out.print(f"{outcome.host}: {outcome.kind}: {outcome.message}", markup=False,
                  highlight=False, soft_wrap=True)
    out.print(f"{len(outcomes) - len(failed)} ok, {len(failed)} failed", highlight=False)
