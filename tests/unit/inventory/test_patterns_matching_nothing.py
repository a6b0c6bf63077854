"""A host pattern that names nothing says which groups the inventory has, and where the
pattern came from: the play's file and line for `hosts:`, `--limit` for the option. Exit 1,
before any host is contacted (the inventory's hosts do not exist). A `--limit` that only leaves
a play without hosts skips that play, as ansible-playbook does."""

from __future__ import annotations

from click.testing import CliRunner

from harden.cli import cli

INVENTORY = """[control_plane]
cp1 ansible_host=127.0.0.1 ansible_port=1
[workers]
w1 ansible_host=127.0.0.1 ansible_port=1
[k8s:children]
control_plane
workers
"""
GROUPS = "groups: all, control_plane, k8s, ungrouped, workers"


def _run(tmp_path, *args):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(INVENTORY)
    return CliRunner().invoke(cli, [args[0], "-i", str(inventory), *args[1:]],
                              env={"HARDEN_STATE_DIR": str(tmp_path / "state")})


def test_a_play_whose_hosts_name_no_group_lists_the_groups_at_file_and_line(tmp_path):
    playbook = tmp_path / "site.yml"
    playbook.write_text("- name: first\n  hosts: all\n  tasks: []\n"
                        "- name: typo\n  hosts: control_planes\n  tasks: []\n")
    result = _run(tmp_path, "apply", str(playbook))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"harden: error: {playbook}:5: hosts 'control_planes': no hosts match pattern "
        f"'control_planes' (it names no group or host in the inventory); {GROUPS}")


def test_a_limit_naming_no_group_says_it_is_the_limit_and_lists_the_groups(tmp_path):
    result = _run(tmp_path, "ping", "-l", "worker")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "harden: error: --limit: no hosts match pattern 'worker' (it names no group or host "
        f"in the inventory); {GROUPS}")


def test_a_limit_outside_the_play_skips_it_as_ansible_playbook(tmp_path):
    playbook = tmp_path / "site.yml"
    playbook.write_text("- hosts: workers\n  tasks: []\n")
    result = _run(tmp_path, "apply", str(playbook), "-l", "cp1")
    assert result.exit_code == 0, result.output
    assert "skipping: no hosts matched" in result.output
