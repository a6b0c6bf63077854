"""`harden inventory` prints what ansible-inventory prints and fails with file:line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from harden.cli import cli
from support.paths import FIXTURES as FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "inventories"
INI = str(FIXTURES / "ini" / "hosts.ini")


def _run(*args):
    return CliRunner().invoke(cli, ["inventory", *args])


def test_list_with_show_secrets_is_ansible_inventory_output():
    result = _run("-i", INI, "--list", "--show-secrets")
    assert result.exit_code == 0, result.output
    expected = json.loads((FIXTURES / "expected" / "ini-list.json").read_text())
    assert json.loads(result.output) == expected


def test_list_masks_secrets_by_default():
    result = _run("-i", INI, "--list")
    assert result.exit_code == 0
    assert "topsecret" not in result.output and "hunter2" not in result.output
    hostvars = json.loads(result.output)["_meta"]["hostvars"]
    assert hostvars["cp1"]["ansible_ssh_pass"] == "********"


def test_graph_and_limit():
    result = _run("-i", str(FIXTURES / "dir"), "--graph")
    assert result.exit_code == 0
    assert result.output == (FIXTURES / "expected" / "dir-graph.txt").read_text()
    limited = _run("-i", INI, "--list", "--show-secrets", "-l", "workers:&dc1:!w02")
    expected = json.loads((FIXTURES / "expected" / "ini-list-limit-intersection.json").read_text())
    assert json.loads(limited.output) == expected


def test_multiple_inventories():
    result = _run("-i", INI, "-i", str(FIXTURES / "multi" / "extra.yml"), "--list",
                  "--show-secrets")
    expected = json.loads((FIXTURES / "expected" / "multi-list.json").read_text())
    assert json.loads(result.output) == expected


def test_bad_inventory_exits_1_with_file_and_line(tmp_path):
    bad = tmp_path / "hosts.ini"
    bad.write_text("[web]\nw1\n[web:nope]\n")
    result = _run("-i", str(bad), "--list")
    assert result.exit_code == 1
    assert result.output.startswith(f"harden: error: {bad}:3: section [web:nope] has unknown")


def test_limit_matching_nothing_exits_1():
    result = _run("-i", INI, "--graph", "-l", "nosuch")
    assert result.exit_code == 1
    assert "harden: error: --limit: no hosts match pattern 'nosuch'" in result.output


def test_missing_inventory_exits_1(tmp_path):
    result = _run("-i", str(tmp_path / "absent"), "--list")
    assert result.exit_code == 1
    assert "inventory path does not exist" in result.output


def test_needs_exactly_one_of_list_or_graph():
    assert _run("-i", INI).exit_code == 1
    assert _run("-i", INI, "--list", "--graph").exit_code == 1
