"""The inventories `harden lab up` writes declare the lab one cluster (harden_cluster), so
`harden check` shares its cluster objects as a documented configuration."""

from __future__ import annotations

from pathlib import Path

from harden.cis.cluster_reads import askers
from harden.inventory.loader import load_inventory
from harden.lab.cluster import NodeState, _inventory, lab_cluster_name


def _nodes() -> list[NodeState]:
    return [NodeState(name, role, f"127.9.0.{11 + i}", f"/nodes/{name}") for i, (name, role)
            in enumerate((("cp1", "control-plane"), ("cp2", "control-plane"), ("w1", "worker")))]


def test_the_lab_cluster_name_comes_from_its_directory_as_one_word():
    assert lab_cluster_name(Path("/tmp/my lab!")) == "lab-my-lab"
    assert lab_cluster_name(Path("/tmp/lab-a1")) == "lab-lab-a1"


def test_lab_inventory_puts_every_node_in_one_harden_cluster(tmp_path):
    lab_dir = tmp_path / "mylab"
    path = tmp_path / "inventory.ini"
    path.write_text(_inventory(lab_dir, _nodes(), user="root", become=False))
    hosts = list(load_inventory([str(path)]).hosts.values())
    assert {h.vars.get("harden_cluster") for h in hosts} == {"lab-mylab"}
    assert askers(hosts) == {"cp1"}
