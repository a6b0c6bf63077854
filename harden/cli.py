"""The `harden` command line: a thin layer that parses options and hands off to one module
per command. Errors from below arrive as HardenError and leave as one line plus exit code 1.
"""

from __future__ import annotations

import sys

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
def explain(check_id):
    """Print a CIS check's description, audit and remediation. Not built yet."""
    _not_built("explain")


@cli.group()
def lab():
    """A lab of real OpenSSH 'nodes' on loopback addresses, laid out like kubeadm nodes (root)."""


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
