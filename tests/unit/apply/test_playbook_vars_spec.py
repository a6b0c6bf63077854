"""`vars_spec`: an enumerated playbook variable given a value outside its choices stops the run
with exit 1 before any host is contacted (the inventory's hosts do not exist), naming the
playbook line, where the value came from and the valid values."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from harden.apply.playbook import load_playbook
from harden.cli import cli
from harden.errors import InputError
from support.paths import REPO

INVENTORY = "[control_plane]\ncp1 ansible_host=127.0.0.1 ansible_port=1\n"
PLAY = """- name: phased
  hosts: control_plane
  vars_spec:
    phase: {choices: [prepare, enable]}
  tasks: []
"""


def _apply(tmp_path, playbook_text: str, *args, inventory: str = INVENTORY):
    (tmp_path / "hosts.ini").write_text(inventory)
    (tmp_path / "play.yml").write_text(playbook_text)
    return CliRunner().invoke(cli, ["apply", "-i", str(tmp_path / "hosts.ini"),
                                    str(tmp_path / "play.yml"), "--timeout", "1", *args],
                              env={"HARDEN_STATE_DIR": str(tmp_path / "state")})


def test_a_phase_typo_from_e_is_exit_1_listing_the_valid_phases(tmp_path):
    result = _apply(tmp_path, PLAY, "-e", "phase=enabel")
    assert result.exit_code == 1
    assert result.output.strip() == (f"harden: error: {tmp_path}/play.yml:4: phase='enabel' "
                                     "(from -e) is not one of: prepare, enable")


def test_a_bad_value_from_the_inventory_names_the_host(tmp_path):
    inventory = INVENTORY.replace("ansible_port=1", "ansible_port=1 phase=later")
    result = _apply(tmp_path, PLAY, inventory=inventory)
    assert result.exit_code == 1
    assert "phase='later' (from the inventory of host cp1) is not one of: prepare, enable" \
        in result.output


def test_e_wins_over_a_bad_inventory_value_as_in_templating(tmp_path):
    inventory = INVENTORY.replace("ansible_port=1", "ansible_port=1 phase=later")
    result = _apply(tmp_path, PLAY, "-e", "phase=enable", inventory=inventory)
    # the spec passes; the run goes on and cannot reach the (closed) port: exit 4, not 1
    assert result.exit_code == 4, result.output


def test_a_template_value_is_left_to_the_host(tmp_path):
    result = _apply(tmp_path, PLAY, "-e", "phase={{ other }}")
    assert result.exit_code == 4, result.output


@pytest.mark.parametrize("spec, message", [
    ("vars_spec: [phase]", "vars_spec must be a mapping"),
    ("vars_spec: {phase: {}}", "vars_spec: phase needs choices"),
    ("vars_spec: {phase: {choices: []}}", "choices of phase must be a non-empty list"),
    ("vars_spec: {phase: {choices: [a], default: a}}", "unknown vars_spec key 'default'"),
])
def test_a_malformed_vars_spec_is_refused_at_load(tmp_path, spec, message):
    path = tmp_path / "play.yml"
    path.write_text(f"- hosts: all\n  {spec}\n  tasks: []\n")
    with pytest.raises(InputError, match=message) as caught:
        load_playbook(str(path))
    assert caught.value.line == 2


@pytest.mark.parametrize("playbook, variable, choices", [
    ("encryption-at-rest.yml", "encryption_phase", ("prepare", "enable")),
    ("encryption-at-rest.yml", "encryption_provider", ("secretbox", "aescbc", "aesgcm")),
    ("rotate-encryption-key.yml", "rotation_phase", ("stage", "promote", "rewrite", "retire")),
    ("pod-security.yml", "pod_security_enforce", ("privileged", "baseline", "restricted")),
])
def test_shipped_playbooks_declare_their_enumerated_variables(playbook, variable, choices):
    first = load_playbook(str(REPO / "playbooks" / playbook)).plays[0]
    assert {s.name: s.choices for s in first.vars_spec}[variable] == choices
