"""The example inventory in inventories/ loads, its INI and YAML forms agree, the shipped
playbooks find hosts in it, and every variable it mentions is one the playbooks read."""

import re

import pytest

from harden.apply.playbook import load_playbook
from harden.inventory.loader import load_inventory

from support.paths import REPO

EXAMPLE = REPO / "inventories" / "kubeadm"
SHIPPED = sorted((REPO / "playbooks").glob("*.yml"))


def shape(path):
    inventory = load_inventory([str(path)])
    return {h.name: (sorted(h.groups), h.vars) for h in inventory.select("all")}


def test_ini_and_yaml_forms_describe_the_same_cluster():
    ini, yml = shape(EXAMPLE / "hosts.ini"), shape(EXAMPLE / "hosts.yml")
    assert ini == yml
    assert sorted(ini) == ["cp1", "cp2", "cp3", "worker1", "worker2", "worker3"]
    assert ini["cp1"][1]["ansible_become"] is True
    assert "ProxyJump=" in ini["worker3"][1]["ansible_ssh_common_args"]


@pytest.mark.parametrize("playbook", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_playbook_targets_hosts_of_the_example(playbook):
    inventory = load_inventory([str(EXAMPLE / "hosts.ini")])
    for play in load_playbook(str(playbook)).plays:
        assert inventory.select(play.hosts), f"{playbook.name}: {play.hosts} matches no host"


def test_every_variable_the_example_mentions_is_read_by_shipped_content():
    content = "\n".join(p.read_text() for p in [*SHIPPED, *(REPO / "templates").glob("*.j2")])
    code = "\n".join(p.read_text() for p in (REPO / "harden").rglob("*.py"))
    for vars_file in (EXAMPLE / "group_vars").glob("*.yml"):
        named = re.findall(r"^#? ?([a-z][a-z0-9_]+):", vars_file.read_text(), re.M)
        for name in named:
            if name.startswith("ansible_"):
                continue
            assert name in content or name in code, f"{vars_file.name}: {name} is read by nothing"
