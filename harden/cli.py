"""The `harden` command line: a thin layer that parses options and hands off to one module
per command. Errors from below arrive as HardenError and leave as one line plus exit code 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from harden import __version__
from harden.errors import HardenError

EXIT_OK, EXIT_INPUT, EXIT_FINDINGS, EXIT_HOSTS = 0, 1, 2, 4


def _fail(message: str, code: int = EXIT_INPUT) -> None:
    click.echo(f"harden: error: {message}", err=True)
    sys.exit(code)


def _not_built(name: str) -> None:
    _fail(f"'harden {name}' is not built yet in this version ({__version__})")


class _Group(click.Group):
    """Turns HardenError into a clean message and exit 1 instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HardenError as exc:
            _fail(str(exc), exc.exit_code)


inventory_option = click.option(
    "-i", "--inventory", "inventories", multiple=True, required=True,
    help="Inventory file or directory (Ansible INI or YAML); repeatable.")
limit_option = click.option(
    "-l", "--limit", default=None, help="Ansible host pattern, e.g. 'control_plane:&dc1:!cp3'.")
forks_option = click.option(
    "-f", "--forks", default=20, show_default=True, type=click.IntRange(1, 500),
    help="How many hosts are worked on at once.")
hostkey_option = click.option(
    "--accept-new-host-keys", is_flag=True,
    help="Trust and record the host key of a host seen for the first time (never a changed one).")
become_pass_option = click.option(
    "-K", "--ask-become-pass", is_flag=True,
    help="Prompt for the sudo password (or set HARDEN_BECOME_PASSWORD).")


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="harden")
def cli() -> None:
    """Apply and verify Kubernetes control-plane and node hardening over SSH.

    Agentless: nodes need sh, coreutils and ps (and sudo when not logging in as root).
    Inventories and playbooks are Ansible-shaped. Exit codes: 0 ok, 1 bad input or internal
    error (nothing changed), 2 check found a scored FAIL / apply --check found drift,
    4 a host was unreachable or failed.
    """


@cli.command()
@inventory_option
@limit_option
@forks_option
@hostkey_option
@become_pass_option
@click.option("--timeout", default=None, type=float, help="Connect timeout in seconds (default 10).")
def ping(inventories, limit, forks, accept_new_host_keys, ask_become_pass, timeout):
    """Connect to every host (through jump hosts, with become) and run a trivial command.

    Prints one row per host: ok, unreachable (with the reason), auth failed or host key
    mismatch. Exits 0 when every host answered, 4 otherwise. Writes nothing on any node.
    """
    from harden.ping import run_ping

    sys.exit(run_ping(inventories, limit=limit, forks=forks,
                      accept_new_host_keys=accept_new_host_keys,
                      ask_become_pass=ask_become_pass, connect_timeout=timeout))


@cli.command()
@inventory_option
@limit_option
@click.option("--list", "as_list", is_flag=True, help="JSON in the shape of ansible-inventory --list.")
@click.option("--graph", "as_graph", is_flag=True, help="The group tree.")
@click.option("--show-secrets", is_flag=True, help="Do not mask passwords in --list output.")
def inventory(inventories, limit, as_list, as_graph, show_secrets):
    """Show how an inventory resolves: hosts, groups and variables."""
    from harden.inventory import load_inventory

    if as_list == as_graph:
        _fail("give exactly one of --list or --graph")
    inv = load_inventory(inventories)
    if as_list:
        import json

        click.echo(json.dumps(inv.to_ansible_list(limit=limit, mask_secrets=not show_secrets),
                              indent=4, sort_keys=True))
    else:
        click.echo(inv.graph(limit=limit))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def check(ctx):
    """Audit hosts against the CIS Kubernetes Benchmark over SSH (one probe per host).

    Usage: harden check -i INV [-l PATTERN] [--benchmark cis-1.12]
    [--format text|json|junit|sarif|html] [-o FILE]. Not built yet.
    """
    _not_built("check")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def apply(ctx):
    """Apply a playbook: plan from facts, change only the difference, verify, roll back on failure.

    Usage: harden apply -i INV PLAYBOOK [-l PATTERN] [--check] [--diff] [-f FORKS]
    [-e KEY=VALUE] [-t TAGS] [--format text|json]. Not built yet.
    """
    _not_built("apply")


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def rollback(ctx):
    """Restore every file a run changed, byte for byte, and wait until healthy.

    Usage: harden rollback -i INV RUN_ID [-l PATTERN] [--force]. Not built yet.
    """
    _not_built("rollback")


@cli.command()
def runs():
    """List past runs from the local journal. Not built yet."""
    _not_built("runs")


@cli.command()
@click.argument("check_id")
@click.option("--benchmark", default="cis-1.12", show_default=True, help="Catalogue to look in.")
def explain(check_id, benchmark):
    """Print a CIS check's description, audit, expected state, remediation and the harden
    playbook/tag that fixes it (e.g. `harden explain 1.2.15`)."""
    from harden.checks import explain as explain_check
    from harden.checks import load_catalogue

    catalogue = load_catalogue(benchmark)
    check = catalogue.get(check_id)
    if check is None:
        _fail(f"no check {check_id!r} in {catalogue.benchmark} "
              f"(ids look like 1.2.15; {len(catalogue.checks)} checks)")
    click.echo(explain_check(check))


@cli.group()
def lab():
    """A lab of real OpenSSH 'nodes' on loopback addresses, laid out like kubeadm nodes (root)."""


lab_dir_option = click.option(
    "--dir", "lab_dir", default=".lab", show_default=True,
    type=click.Path(file_okay=False, path_type=Path), help="Where the lab keeps its files.")


@lab.command("up")
@lab_dir_option
@click.option("--control-planes", default=1, show_default=True, type=click.IntRange(0, 240))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(0, 240))
@click.option("--profile", default="kubeadm", show_default=True,
              type=click.Choice(["kubeadm", "weak"]),
              help="kubeadm: files as kubeadm writes them; weak: deliberately insecure.")
@click.option("--net", default=None, metavar="127.A.B",
              help="Loopback /24 for the nodes (node i is 127.A.B.(10+i)); random free one if unset.")
def lab_up(lab_dir, control_planes, workers, profile, net):
    """Start the nodes; returns once every node's sshd accepts connections."""
    from harden.lab import cluster

    state = cluster.up(lab_dir, control_planes=control_planes, workers=workers,
                       profile=profile, net=net)
    for node in state["nodes"]:
        click.echo(f"{node['name']:<6} {node['role']:<14} {node['address']}")
    click.echo(f"lab up in {state['started_seconds']:.2f}s: inventory {state['dir']}/inventory.ini"
               f" (root), {state['dir']}/inventory-sudo.ini (labops + sudo)")


@lab.command("down")
@lab_dir_option
def lab_down(lab_dir):
    """Stop the lab's nodes (only the processes this lab started). Safe to repeat."""
    from harden.lab import cluster

    stopped = cluster.down(lab_dir)
    click.echo(f"stopped {', '.join(stopped)}" if stopped else "no node of this lab was running")


@lab.command("status")
@lab_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lab_status(lab_dir, as_json):
    """Per node: address, whether sshd answers, the services and their state."""
    from harden.lab import cluster

    report = cluster.status(lab_dir)
    if as_json:
        import json

        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(cluster.format_status(report))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
