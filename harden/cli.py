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
    for line in message.splitlines() or [""]:
        click.echo(f"harden: error: {line}", err=True)
    sys.exit(code)


def _not_built(name: str) -> None:
    _fail(f"'harden {name}' is not built yet in this version ({__version__})")


class _Group(click.Group):
    """Turns HardenError into a clean message and exit 1 instead of a traceback, and click's
    usage errors (unknown option, missing argument) into exit 1 as well: click's own 2 is
    harden's "drift found", and a typo in a cron job must not read as drift."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:          # UsageError and its kin included
            exc.show()
            sys.exit(EXIT_INPUT)
        except click.exceptions.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(EXIT_INPUT)
        sys.exit(code if isinstance(code, int) else EXIT_OK)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HardenError as exc:
            _fail(str(exc), exc.exit_code)


inventory_option = click.option(
    "-i", "--inventory", "inventories", multiple=True, required=True,
    help="Inventory file or directory (Ansible INI or YAML); repeatable.")
config_inventory_option = click.option(
    "-i", "--inventory", "inventories", multiple=True,
    help="Inventory file or directory (Ansible INI or YAML); repeatable. Default: ansible.cfg's "
         "inventory (or $ANSIBLE_INVENTORY).")
limit_option = click.option(
    "-l", "--limit", default=None, help="Ansible host pattern, e.g. 'control_plane:&dc1:!cp3'.")
forks_option = click.option(
    "-f", "--forks", default=20, show_default=True, type=click.IntRange(1, 500),
    help="How many hosts are worked on at once.")
config_forks_option = click.option(
    "-f", "--forks", default=None, type=click.IntRange(1, 500),
    help="How many hosts are worked on at once (default: ansible.cfg's forks, else 20).")


def ansible_login_options(command):
    """ansible-playbook's login and privilege options. Like Ansible, they are defaults that a
    host's own inventory variables (ansible_user, ansible_become, ...) override."""
    for option in reversed((
        click.option("-u", "--user", "remote_user", default=None,
                     help="Log in as this user (a host's ansible_user wins)."),
        click.option("--private-key", "--key-file", "private_key", default=None,
                     type=click.Path(dir_okay=False),
                     help="The SSH private key file (a host's ansible_ssh_private_key_file "
                          "wins)."),
        click.option("-b", "--become", "become", is_flag=True, default=None,
                     help="Run node commands through sudo (a play's or host's become wins)."),
        click.option("--become-user", default=None,
                     help="sudo to this user (default root; a host's ansible_become_user wins)."),
    )):
        command = option(command)
    return command


def _config_inventories(inventories):
    """(ansible.cfg, the inventories): -i, else ansible.cfg's inventory (or
    $ANSIBLE_INVENTORY); an error when there is none."""
    from harden.inventory.ansible_cfg import load_config

    config = load_config()
    found = list(inventories) or list(config.get("inventory", []))
    if not found:
        raise HardenError("no inventory: give -i FILE_OR_DIR, or set inventory in ansible.cfg "
                          f"({config.path or 'none found'}) or $ANSIBLE_INVENTORY")
    return config, found


def _config_run(inventories, forks, remote_user=None, private_key=None, become=None,
                become_user=None):
    """ansible.cfg (as Ansible finds it) under the command line: the inventories, forks and
    the variables every host gets unless its inventory sets them."""
    from harden.inventory.ansible_cfg import host_defaults

    config, found = _config_inventories(inventories)
    defaults = host_defaults(config, user=remote_user, private_key=private_key, become=become,
                             become_user=become_user)
    return config, found, forks or config.get("forks", 20), defaults


def _ask_become_pass(flag: bool, config) -> bool:
    """-K, else ansible.cfg's become_ask_pass (or $ANSIBLE_BECOME_ASK_PASS)."""
    return bool(flag or config.get("become_ask_pass", False))


break_lock_option = click.option(
    "--break-lock", is_flag=True,
    help="Take over a node lock whose holder is provably dead (its run recorded here as "
         "finished, resolved or interrupted, or taken on this controller over 15 min ago by a "
         "process that is gone). Never breaks a live run's lock.")


def connection_options(command):
    """The flags every command that logs in to hosts shares."""
    for option in reversed((
        click.option("--accept-new-host-keys", is_flag=True,
                     help="Trust and record the host key of a host seen for the first time "
                          "(never a changed one)."),
        click.option("-K", "--ask-become-pass", is_flag=True,
                     help="Prompt for the sudo password (or set HARDEN_BECOME_PASSWORD)."),
        click.option("--timeout", default=None, type=float,
                     help="Connect timeout in seconds (default 10, or the host's ConnectTimeout)."),
        click.option("--transport", default=None, type=click.Choice(["paramiko", "openssh"]),
                     help="SSH client for hosts without harden_transport: paramiko (default) or "
                          "openssh (the system ssh, one ControlMaster per host)."),
    )):
        command = option(command)
    return command


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
@config_inventory_option
@limit_option
@config_forks_option
@ansible_login_options
@connection_options
def ping(inventories, limit, forks, remote_user, private_key, become, become_user,
         accept_new_host_keys, ask_become_pass, timeout, transport):
    """Connect to every host (through jump hosts, with become) and run `id -un`.

    Prints one row per host: ok (and the effective user), unreachable (with the reason),
    auth failed, host key mismatch / unknown, or become failed. Exits 0 when every host
    answered, 4 otherwise, 1 (before contacting any host) when a host's connection settings
    are wrong, e.g. a missing key file. Writes nothing on any node.
    """
    from harden.ssh.ping import run_ping

    config, inventories, forks, defaults = _config_run(inventories, forks, remote_user,
                                                       private_key, become, become_user)
    sys.exit(run_ping(inventories, limit=limit, forks=forks,
                      accept_new_host_keys=accept_new_host_keys,
                      ask_become_pass=_ask_become_pass(ask_become_pass, config),
                      connect_timeout=timeout, transport=transport, host_defaults=defaults))


@cli.command()
@config_inventory_option
@limit_option
@click.option("--list", "as_list", is_flag=True, help="JSON in the shape of ansible-inventory --list.")
@click.option("--graph", "as_graph", is_flag=True, help="The group tree.")
@click.option("--show-secrets", is_flag=True, help="Do not mask passwords in --list output.")
@click.option("--resolve", is_flag=True,
              help="With --list: add _meta.harden_connections, each host's endpoint (user, "
                   "address, port, jump hosts, transport) as resolved through the inventory, "
                   "ssh arguments and the OpenSSH config (ssh -G).")
def inventory(inventories, limit, as_list, as_graph, show_secrets, resolve):
    """Show how an inventory resolves: hosts, groups and variables."""
    from harden.inventory.loader import load_inventory

    if as_list == as_graph:
        _fail("give exactly one of --list or --graph")
    inv = load_inventory(_config_inventories(inventories)[1])
    if as_list:
        import json

        from harden.ssh.settings import describe_connections

        listing = inv.to_ansible_list(limit=limit, mask_secrets=not show_secrets)
        if resolve:   # off by default: --list alone is exactly ansible-inventory's output
            listing["_meta"]["harden_connections"] = describe_connections(inv, inv.select(limit))
        click.echo(json.dumps(listing, indent=4, sort_keys=True))
    else:
        click.echo(inv.graph(limit=limit))


@cli.command()
@config_inventory_option
@limit_option
@config_forks_option
@ansible_login_options
@connection_options
@click.option("--benchmark", default="cis-1.12", show_default=True, help="Catalogue to check against.")
@click.option("--format", "fmt", default="text", show_default=True,
              type=click.Choice(["text", "json", "junit", "sarif", "html", "prometheus"]),
              help="Report format (prometheus: the text format node_exporter's textfile "
                   "collector reads).")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Write the report to FILE instead of standard output.")
@click.option("--metrics-file", default=None, type=click.Path(dir_okay=False),
              help="Also write the run's metrics in the Prometheus text format to FILE "
                   "(replaced atomically; e.g. node_exporter's textfile dir/harden.prom).")
@click.option("--by-host", is_flag=True,
              help="Text: every check under each host (the default groups hosts that share a "
                   "verdict; a single host is always shown in full).")
@click.option("--compare", default=None, metavar="RUN_ID|FILE|last",
              help="Show what changed since an earlier check: a run id from `harden runs`, "
                   "a --format json report, or 'last' (the newest earlier check run).")
@click.option("--fail-on", "fail_on", default="any", show_default=True,
              type=click.Choice(["any", "new"]),
              help="Exit 2 on any scored FAIL, or (with --compare) only on new ones.")
def check(inventories, limit, forks, remote_user, private_key, become, become_user,
          accept_new_host_keys, ask_become_pass, timeout, transport, benchmark, fmt, output,
          metrics_file, by_host, compare, fail_on):
    """Audit hosts against the CIS Kubernetes Benchmark over SSH (one probe exec per host).

    Evaluates both the configured state (manifests, kubelet config, drop-ins) and the effective
    one (running processes' arguments); a mismatch is reported as drift. Exits 0 when every
    scored check passes, 2 on a scored FAIL or ERROR, 4 when a host could not be audited.
    Text output groups hosts that share a verdict (FAIL, ERROR, WARN first; PASS counted).
    Every run is kept in the local journal (statuses only) for later --compare.
    """
    from harden.cis.run import run_check

    config, inventories, forks, defaults = _config_run(inventories, forks, remote_user,
                                                       private_key, become, become_user)
    sys.exit(run_check(inventories, limit=limit, forks=forks, benchmark=benchmark, fmt=fmt,
                       output=output, metrics_file=metrics_file, by_host=by_host,
                       compare=compare, fail_on=fail_on,
                       accept_new_host_keys=accept_new_host_keys,
                       ask_become_pass=_ask_become_pass(ask_become_pass, config),
                       connect_timeout=timeout, transport=transport, host_defaults=defaults))


@cli.command()
@config_inventory_option
@click.argument("playbooks", nargs=-1, required=True, metavar="PLAYBOOK...",
                type=click.Path(dir_okay=False))
@limit_option
@click.option("-C", "--check", is_flag=True,
              help="Plan and report, write nothing; exit 2 when changes are pending.")
@click.option("--check-mode", "check_mode", default=None,
              type=click.Choice(["predict", "ansible"]),
              help="How --check plans: 'predict' (the default) plans each task on the node as "
                   "the earlier tasks leave it (what the real run will report); 'ansible' "
                   "judges each task against the node as found, as ansible-playbook --check "
                   "does. Either implies --check.")
@click.option("-D", "--diff", is_flag=True, help="Show what changes in each file (secrets redacted).")
@config_forks_option
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="KEY=VALUE|@FILE",
              help="Variables that override all others: KEY=VALUE, a {YAML/JSON mapping} or "
                   "@FILE (a YAML/JSON mapping; keep secrets such as keys in a 0600 file, not "
                   "on the command line). Repeatable; later ones win.")
@click.option("-t", "--tags", default=None, help="Only tasks with one of these tags (comma-separated).")
@click.option("--skip-tags", "skip_tags", default=None,
              help="Never tasks with one of these tags (comma-separated).")
@click.option("--start-at-task", default=None, metavar="NAME",
              help="Leave out the tasks before the first one named NAME (a glob).")
@click.option("--list-hosts", "listing", flag_value="hosts",
              help="List the hosts each play would run on, then stop (no host is contacted).")
@click.option("--list-tasks", "listing", flag_value="tasks",
              help="List the tasks each play would run (after tag selection), then stop.")
@click.option("--list-tags", "listing", flag_value="tags", help="List every tag, then stop.")
@click.option("--syntax-check", "listing", flag_value="syntax",
              help="Load and validate the playbook and inventory, then stop.")
@click.option("--format", "output_format", default="text", show_default=True,
              type=click.Choice(["text", "json"]))
@click.option("-v", "--verbose", "verbosity", count=True,
              help="-v: execs and time per host; -vv: and each task's time; -vvv: and every "
                   "exec (what it was for, how long).")
@ansible_login_options
@break_lock_option
@connection_options
def apply(inventories, playbooks, limit, check, check_mode, diff, forks, extra_vars, tags,
          skip_tags, start_at_task, listing, output_format, verbosity, remote_user, private_key,
          become, become_user, break_lock, accept_new_host_keys, ask_become_pass, timeout,
          transport):
    """Apply playbooks: plan from facts, change only the difference, verify, roll back on failure.

    Several playbooks run as one run (one lock, one run id). ansible.cfg is read as Ansible
    finds it ($ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg) for the inventory, forks,
    remote_user, private_key_file, host_key_checking, roles_path, become* and ssh_args.
    Exit codes: 0 done, no host failed; 1 bad input (nothing changed); 2 --check found pending
    changes; 4 a host was unreachable, locked by another run or failed (its changes rolled
    back). Every host is connected and locked before the first change.
    """
    from harden.ssh.settings import run_options
    from harden.apply.runner import ApplyOptions, run_apply
    from harden.apply.templating import parse_extra_vars

    config, inventories, forks, defaults = _config_run(inventories, forks, remote_user,
                                                       private_key, become, become_user)
    if listing:
        sys.exit(_list_playbook(inventories, playbooks, limit, listing, _tags(tags),
                                _tags(skip_tags), config.get("roles_path", [])))
    options = ApplyOptions(
        # an explicit --check-mode never means a real run
        check=check or check_mode is not None, check_mode=check_mode or "predict", diff=diff,
        forks=forks, limit=limit,
        tags=_tags(tags), skip_tags=_tags(skip_tags),
        extra_vars=parse_extra_vars(extra_vars), break_lock=break_lock,
        host_defaults=defaults, start_at_task=start_at_task,
        roles_path=config.get("roles_path", []),
        run_options=run_options(connect_timeout=timeout, accept_new_host_keys=accept_new_host_keys,
                                ask_become_pass=_ask_become_pass(ask_become_pass, config),
                                transport=transport))
    if output_format == "json":       # its own module: a JSON run imports no rich
        from harden.apply.json_output import JsonOutput
        output = JsonOutput(options.diff)
    else:
        from harden.apply.output import TextOutput
        output = TextOutput(diff=options.diff, check=options.check, verbosity=verbosity,
                            check_mode=options.check_mode)
    sys.exit(run_apply(inventories, list(playbooks), options, output))


def _tags(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _list_playbook(inventories, playbooks, limit, what: str, tags, skip_tags,
                   roles_path=()) -> int:
    """ansible-playbook's --list-*/--syntax-check: load, validate, print, contact nobody."""
    from harden.apply.listing import list_hosts, list_tags, list_tasks
    from harden.apply.playbook import load_playbooks
    from harden.inventory.loader import load_inventory

    loaded = load_playbooks(list(playbooks), list(roles_path))
    if what == "tags":
        click.echo(list_tags(loaded))
    elif what == "tasks":
        click.echo(list_tasks(loaded, tags, skip_tags))
    else:
        inventory = load_inventory(inventories)
        click.echo(list_hosts(loaded, inventory, limit) if what == "hosts"
                   else "\n".join(f"playbook: {p}" for p in playbooks))
    return EXIT_OK


@cli.command()
@config_inventory_option
@click.argument("run_id")
@limit_option
@click.option("--force", is_flag=True,
              help="Restore even files changed since the run (their later changes are lost). "
                   "Never lifts the encryption-key guard.")
@click.option("--drop-encryption-key", is_flag=True,
              help="Restore even when that takes away an encryption key (or the encryption "
                   "config) the node holds now: whatever the API server wrote with it becomes "
                   "unreadable.")
@break_lock_option
@config_forks_option
@ansible_login_options
@connection_options
def rollback(inventories, run_id, limit, force, drop_encryption_key, break_lock, forks,
             remote_user, private_key, become, become_user, accept_new_host_keys,
             ask_become_pass, timeout, transport):
    """Restore every file a run changed, byte for byte with mode and owner, and wait until healthy.

    Works for finished and interrupted runs (the node's backups are the record), and finishes
    a rollback that was cut off. A file changed since the run is not overwritten without
    --force; its difference is shown. A restore that would take away an encryption key the
    node holds now is refused unless --drop-encryption-key (never by --force alone). RUN_ID is
    in apply's RECAP line and in `harden runs`; an unknown one exits 1 naming the closest known.
    """
    from rich.console import Console

    from harden.ssh.settings import run_options
    from harden.apply.rollback_command import run_rollback

    config, inventories, forks, defaults = _config_run(inventories, forks, remote_user,
                                                       private_key, become, become_user)
    options = run_options(connect_timeout=timeout, accept_new_host_keys=accept_new_host_keys,
                          ask_become_pass=_ask_become_pass(ask_become_pass, config),
                          transport=transport)
    sys.exit(run_rollback(inventories, run_id, limit=limit, force=force, break_lock=break_lock,
                          drop_encryption_key=drop_encryption_key, run_options=options,
                          console=Console(soft_wrap=True, highlight=False), forks=forks,
                          host_defaults=defaults))


@cli.command()
@config_inventory_option
@limit_option
@click.option("--keep", type=int, default=None, metavar="N",
              help="Keep the N newest committed runs on each host (N >= 1).")
@click.option("--older-than", "older_than", type=float, default=None, metavar="DAYS",
              help="Prune committed runs older than DAYS days.")
@click.option("--dry-run", is_flag=True, help="Show what would be pruned; change nothing.")
@break_lock_option
@config_forks_option
@ansible_login_options
@connection_options
def prune(inventories, limit, keep, older_than, dry_run, break_lock, forks, remote_user,
          private_key, become, become_user, accept_new_host_keys, ask_become_pass, timeout,
          transport):
    """Remove old runs' backups from hosts; those runs can then no longer be rolled back.

    Give exactly one of --keep N or --older-than DAYS. Interrupted runs (a backup without a
    node record) are always kept; rolled-back runs have nothing left to undo and are pruned.
    The node record stays, marked pruned. Exit 0, 4 if a host was unreachable or failed,
    1 bad input.
    """
    from rich.console import Console

    from harden.runs.prune import Policy, run_prune

    policy = Policy(keep=keep, older_than=older_than)
    config, inventories, forks, defaults = _config_run(inventories, forks, remote_user,
                                                       private_key, become, become_user)
    sys.exit(run_prune(inventories, limit=limit, policy=policy, dry_run=dry_run, forks=forks,
                       console=Console(soft_wrap=True, highlight=False),
                       accept_new_host_keys=accept_new_host_keys,
                       ask_become_pass=_ask_become_pass(ask_become_pass, config),
                       connect_timeout=timeout, transport=transport, break_lock=break_lock,
                       host_defaults=defaults))


@cli.command()
@click.option("-n", "--last", default=30, show_default=True, type=click.IntRange(1, 10000),
              help="How many runs to show, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--resolve", "resolve", default=None, metavar="RUN_ID",
              help="Close an interrupted run without touching any node, accepting the nodes as "
                   "they are: it stops being reported as unfinished and prune may drop its "
                   "backups. `harden rollback RUN_ID` undoes it instead.")
def runs(last, as_json, resolve):
    """List past runs from the local journal: id, time, playbook (with the -e values of its
    enumerated variables, e.g. rotation_phase=stage), hosts, changed, failed, rolled back, and
    whether the run was interrupted (killed before it finished) or resolved."""
    from rich.console import Console

    from harden.apply.output import print_runs
    from harden.runs.journal import Journal

    journal = Journal()
    try:
        if resolve is not None:
            journal.resolve(resolve)
            click.echo(f"run {resolve} resolved: its changes stay on the nodes as they are; "
                       f"its backups stay until `harden prune`, and a node lock it left is "
                       f"taken over with --break-lock")
            return
        rows = journal.runs(last)
    finally:
        journal.close()
    if as_json:
        import json

        click.echo(json.dumps(rows, indent=2))
    else:
        print_runs(Console(soft_wrap=True, highlight=False), rows)


@cli.command()
@click.argument("check_id")
@click.option("--benchmark", default="cis-1.12", show_default=True, help="Catalogue to look in.")
def explain(check_id, benchmark):
    """Print a CIS check's description, audit, expected state, remediation and the harden
    playbook/tag that fixes it (e.g. `harden explain 1.2.15`)."""
    from harden.cis.catalogue import explain as explain_check
    from harden.cis.catalogue import load_catalogue

    catalogue = load_catalogue(benchmark)
    check = catalogue.get(check_id)
    if check is None:
        _fail(f"no check {check_id!r} in {catalogue.benchmark} "
              f"(ids look like 1.2.15; {len(catalogue.checks)} checks)")
    click.echo(explain_check(check))


@cli.command("kubeadm-config")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("-i", "--inventory", "inventories", multiple=True,
              help="Inventory whose vars (group_vars, host_vars) the playbooks take, as in "
                   "apply; the first control_plane host's view is used. Repeatable.")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="KEY=VALUE|@FILE",
              help="Variables that override all others, as in apply (e.g. "
                   "apiserver_admission_plugins, encryption_key). Repeatable.")
@click.option("--kubeadm-api", "api", default="v1beta4", show_default=True,
              type=click.Choice(["v1beta4", "v1beta3"]),
              help="kubeadm config API: v1beta4 (kubeadm >= 1.31, extraArgs a list) or "
                   "v1beta3 (extraArgs a map).")
@click.option("--kubernetes-version", default=None, metavar="vX.Y.Z",
              help="ClusterConfiguration kubernetesVersion (kubeadm's default when unset).")
@click.option("--control-plane-endpoint", default=None, metavar="HOST[:PORT]",
              help="ClusterConfiguration controlPlaneEndpoint (needed to add control planes).")
@click.option("--advertise-address", default=None, metavar="IP",
              help="InitConfiguration localAPIEndpoint.advertiseAddress (else a placeholder).")
@click.option("--node-name", default=None,
              help="InitConfiguration nodeRegistration.name (else a placeholder).")
@click.option("--playbook", "playbooks", multiple=True, type=click.Path(dir_okay=False),
              help="Playbooks to take the hardening from (default: the shipped site.yml and "
                   "encryption-at-rest.yml). Repeatable.")
@click.option("--host", default=None,
              help="Inventory host whose variables are used (default: the first control_plane).")
def kubeadm_config(out_dir, inventories, extra_vars, api, kubernetes_version,
                   control_plane_endpoint, advertise_address, node_name, playbooks, host):
    """Write a hardened kubeadm config for `kubeadm init --config` and the files it names.

    DIR/kubeadm-config.yaml holds an InitConfiguration skeleton, the ClusterConfiguration
    (extraArgs and extraVolumes) and the KubeletConfiguration; DIR/files/ holds the audit
    policy, admission config, encryption config (a fresh key unless -e encryption_key) and the
    kernel settings, under the absolute paths they take on the nodes. Everything is derived
    from the same playbooks `harden apply` runs, with the same variables. DIR must not exist
    or be empty. Exit 0 written, 1 bad input (nothing written).
    """
    from harden.apply.kubeadm_init import Options, generate
    from harden.apply.templating import parse_extra_vars

    options = Options(api=api, kubernetes_version=kubernetes_version,
                      control_plane_endpoint=control_plane_endpoint,
                      advertise_address=advertise_address, node_name=node_name)
    result = generate(out_dir, list(inventories) or None, parse_extra_vars(extra_vars),
                      options, list(playbooks) or None, host)
    for path in result.written:
        click.echo(f"wrote {path}")
    for path in result.secret_files:
        click.echo(f"SECRET: files{path} holds the encryption key (mode 0600). Copy it to "
                   f"{path} on EVERY control plane before `kubeadm init` / `kubeadm join "
                   f"--control-plane`, keep a backup: without it the encrypted data is lost.")
    for path in result.node_files:
        click.echo(f"every node: copy files{path} to {path} and run `sysctl --system` before "
                   f"the kubelet starts (protectKernelDefaults).")
    if result.todo:
        click.echo(f"FILL IN before kubeadm init: {', '.join(result.todo)} in "
                   f"{out_dir}/kubeadm-config.yaml")


@cli.group()
def lab():
    """A lab of real OpenSSH 'nodes' on loopback addresses, laid out like kubeadm nodes (root)."""


lab_dir_option = click.option(
    "--dir", "lab_dir", default=".lab", show_default=True,
    type=click.Path(file_okay=False, path_type=Path), help="Where the lab keeps its files.")


def _name_values(option: str, items: tuple[str, ...]) -> dict[str, str]:
    """NAME=VALUE arguments as a dict; one without '=' is a usage error naming the option."""
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.UsageError(f"{option} {item!r}: NAME=VALUE expected")
        pairs[name] = value
    return pairs


@lab.command("up")
@lab_dir_option
@click.option("--control-planes", default=1, show_default=True, type=click.IntRange(0, 240))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(0, 240))
@click.option("--profile", default="kubeadm", show_default=True,
              type=click.Choice(["kubeadm", "weak"]),
              help="kubeadm: files as kubeadm writes them; weak: deliberately insecure.")
@click.option("--net", default=None, metavar="127.A.B",
              help="Loopback /24 for the nodes (node i is 127.A.B.(10+i)); random free one if unset.")
@click.option("--secrets", default=0, show_default=True, type=click.IntRange(0, 100000),
              help="Extra secrets the API servers seed across namespaces (rotation tests).")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until every static pod is ready, not only until sshd answers.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for readiness.")
@click.option("--ssh-algorithms", default="default", show_default=True,
              type=click.Choice(["default", "modern"]),
              help="modern: sshd allows only sntrup761x25519/curve25519-sha256, "
                   "chacha20-poly1305 and hmac-sha2-512-etm (reachable with --transport openssh).")
@click.option("--user-ca", is_flag=True,
              help="Nodes trust an SSH user CA (DIR/user_ca) for certificate logins.")
@click.option("--host-ca", is_flag=True,
              help="An SSH host CA (DIR/host_ca) certifies every node's host key; "
                   "DIR/known_hosts_ca trusts it (@cert-authority).")
@click.option("--kubeadm-api", default="v1beta4", show_default=True,
              type=click.Choice(["v1beta3", "v1beta4"]),
              help="Shape of the ClusterConfiguration seeded into kube-system/kubeadm-config.")
@click.option("--kubeadm-config", "kubeadm_config_dir", default=None,
              type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Start from a kubeadm config: DIR/kubeadm-config.yaml (+ DIR/files/ copied "
                   "to every control plane), as kubeadm init/join would.")
@click.option("--sshd-option", "sshd_options", multiple=True, metavar="LINE",
              help="A line appended to every node's sshd_config (repeatable; a `Match ...` "
                   "line starts a block), e.g. 'GSSAPIAuthentication yes'.")
@click.option("--sshd-env", "sshd_env", multiple=True, metavar="NAME=VALUE",
              help="An environment variable for every node's sshd (repeatable), e.g. "
                   "KRB5_KTNAME=/path/to/keytab.")
def lab_up(lab_dir, control_planes, workers, profile, net, secrets, wait, timeout,
           ssh_algorithms, user_ca, host_ca, kubeadm_api, kubeadm_config_dir, sshd_options,
           sshd_env):
    """Start the nodes; returns once every sshd answers (and, with --wait, every pod is ready)."""
    import time

    from harden.lab import cluster

    started = time.monotonic()
    state = cluster.up(lab_dir, control_planes=control_planes, workers=workers,
                       profile=profile, net=net, ssh_algorithms=ssh_algorithms, user_ca=user_ca,
                       host_ca=host_ca, seed_secrets=secrets, kubeadm_api=kubeadm_api,
                       kubeadm_config_dir=kubeadm_config_dir, sshd_options=sshd_options,
                       sshd_env=_name_values("--sshd-env", sshd_env))
    for node in state["nodes"]:
        click.echo(f"{node['name']:<6} {node['role']:<14} {node['address']}")
    click.echo(f"lab up in {state['started_seconds']:.2f}s: inventory {state['dir']}/inventory.ini"
               f" (root), {state['dir']}/inventory-sudo.ini (labops + sudo)")
    if wait:
        cluster.wait_ready(lab_dir, timeout)
        click.echo(f"every node and static pod ready {time.monotonic() - started:.2f}s after start")


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
