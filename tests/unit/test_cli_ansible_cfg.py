"""Every command that takes an inventory reads ansible.cfg as `apply` does: the inventory,
remote_user, private_key_file, host_key_checking, forks, become* and ssh_args."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import harden.ssh.parallel
from harden.cli import cli
from harden.ssh import settings

COMMANDS = {"ping": ["ping"], "check": ["check"], "prune": ["prune", "--keep", "1"]}


@pytest.fixture
def configured(tmp_path, monkeypatch):
    """A directory with ansible.cfg (and its inventory and key), the current directory; what
    the command resolved is captured just before the first host would be contacted."""
    (tmp_path / "hosts.ini").write_text("n1 ansible_host=127.0.0.1\n"
                                        "n2 ansible_host=127.0.0.2 ansible_user=own\n")
    (tmp_path / "id_cfg").write_text("not a real key\n")
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\ninventory = hosts.ini\nremote_user = cfguser\nprivate_key_file = id_cfg\n"
        "host_key_checking = False\nforks = 3\n"
        "[privilege_escalation]\nbecome = True\nbecome_user = admin\n"
        "[ssh_connection]\nssh_args = -o ServerAliveInterval=7\n")
    tmp_path.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_INVENTORY", "ANSIBLE_REMOTE_USER", "ANSIBLE_FORKS",
                 "ANSIBLE_BECOME", "ANSIBLE_BECOME_USER", "ANSIBLE_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    seen: dict = {}
    real = settings.connection_specs

    def capture_specs(hosts, options, inventory=None):
        seen["specs"] = real(hosts, options, inventory)
        return seen["specs"]

    def capture_forks(hosts, work, forks, *args, **kwargs):
        seen["forks"] = forks
        raise SystemExit(77)

    monkeypatch.setattr(settings, "connection_specs", capture_specs)
    for module in ("harden.ssh.ping", "harden.cis.run", "harden.ssh.parallel"):
        monkeypatch.setattr(f"{module}.for_each_host", capture_forks)
    monkeypatch.setattr(harden.ssh.parallel, "for_each_host", capture_forks)
    return tmp_path, seen


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_reads_login_settings_and_forks_from_ansible_cfg(configured, command):
    where, seen = configured
    result = CliRunner().invoke(cli, COMMANDS[command])
    assert result.exit_code == 77, result.output
    n1, n2 = seen["specs"]["n1"], seen["specs"]["n2"]
    assert n1.target.user == "cfguser" and n2.target.user == "own"   # a host's own var wins
    assert n1.become and n1.become_user == "admin"
    assert n1.host_key_policy == "no"
    assert str(where / "id_cfg") in str(n1.target)
    assert seen["forks"] == 3


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_line_beats_ansible_cfg(configured, command):
    _, seen = configured
    result = CliRunner().invoke(cli, [*COMMANDS[command], "-u", "cli", "-f", "5",
                                      "--become-user", "ops"])
    assert result.exit_code == 77, result.output
    assert seen["specs"]["n1"].target.user == "cli" and seen["forks"] == 5
    assert seen["specs"]["n1"].become_user == "ops"


@pytest.mark.parametrize("command", sorted(COMMANDS) + ["inventory"])
def test_command_without_inventory_anywhere_is_an_input_error(configured, command):
    where, _ = configured
    (where / "ansible.cfg").write_text("[defaults]\n")
    args = COMMANDS.get(command, ["inventory", "--list"])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and "no inventory: give -i" in result.output


def test_inventory_command_lists_ansible_cfg_inventory(configured):
    result = CliRunner().invoke(cli, ["inventory", "--graph"])
    assert result.exit_code == 0 and "n1" in result.output and "n2" in result.output
