"""harden's inventories against ansible-core's own answers, recorded in
tests/fixtures/inventories/expected/ by record.sh (so no ansible is needed here)."""

from __future__ import annotations

import json

import pytest

from harden.inventory.loader import MASK, is_secret_var, load_inventory
from support.paths import FIXTURES as FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "inventories"
EXPECTED = FIXTURES / "expected"

CASES = {
    "ini": ["ini/hosts.ini"],
    "yaml": ["yaml/hosts.yml"],
    "dir": ["dir"],
    "multi": ["ini/hosts.ini", "multi/extra.yml"],
}


def _load(case: str):
    return load_inventory([str(FIXTURES / source) for source in CASES[case]])


def _as_json(data: dict) -> dict:
    """What the CLI prints, read back: tuples and dict order no longer matter."""
    return json.loads(json.dumps(data, sort_keys=True))


@pytest.mark.parametrize("case", sorted(CASES))
def test_list_matches_ansible_inventory(case):
    expected = json.loads((EXPECTED / f"{case}-list.json").read_text())
    got = _as_json(_load(case).to_ansible_list(mask_secrets=False))
    assert got.keys() == expected.keys()
    for host, host_vars in expected["_meta"]["hostvars"].items():
        assert got["_meta"]["hostvars"].get(host) == host_vars, host
    assert got == expected


@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_matches_ansible_inventory(case):
    expected = (EXPECTED / f"{case}-graph.txt").read_text()
    assert _load(case).graph() + "\n" == expected


@pytest.mark.parametrize("limit, recording", [
    ("workers:&dc1:!w02", "ini-list-limit-intersection.json"),
    ("gpu[1:],cp1", "ini-list-limit-union.json"),
])
def test_list_with_limit_matches_ansible_inventory(limit, recording):
    expected = json.loads((EXPECTED / recording).read_text())
    got = _as_json(_load("ini").to_ansible_list(limit=limit, mask_secrets=False))
    assert got == expected


def test_hosts_are_in_ansible_play_order():
    inventory = _load("ini")
    assert list(inventory.hosts) == [
        "bastion", "cp1", "cp2", "cp3", "etcd-lb", "w01", "w02", "w03", "w04", "w05",
        "gpua", "gpub", "gpuc", "late-host"]
    # as `ansible -i yaml/hosts.yml all --list-hosts` prints it: hosts put directly under
    # 'all' first, then group by group, breadth first
    assert list(_load("yaml").hosts) == [
        "jump", "standalone", "cp1", "cp2", "nodea", "nodeb", "cp3", "cp4", "nodec",
        "node-01", "node-03", "node-05"]


def test_host_groups_include_ancestors_and_all():
    host = _load("ini").hosts["cp1"]
    assert host.groups[0] == "all"
    assert set(host.groups) == {"all", "k8s", "control_plane", "datacenters", "dc1", "dc2",
                                "platform", "monitoring"}
    # precedence order: shallow groups first; dc2 (priority 1) before dc1 (priority 10)
    assert host.groups.index("k8s") < host.groups.index("control_plane")
    assert host.groups.index("dc2") < host.groups.index("dc1")
    assert _load("ini").hosts["bastion"].groups == ["all", "ungrouped"]


def test_precedence_traps_resolve_like_ansible():
    hosts = _load("ini").hosts
    # two sibling groups: ansible_group_priority=10 makes dc1 win over dc2
    assert hosts["cp1"].vars["zone"] == "dc1-zone"
    # host_vars file beats the inline host var
    assert hosts["cp1"].vars["node_role"] == "cp1-host-file"
    # child group's [vars] beats the parent's ([k8s:vars] layer is overridden)...
    assert hosts["gpua"].vars["node_role"] == "gpu"
    # ...but any group_vars file (even all.yml) beats every inline group var
    assert hosts["cp2"].vars["layer"] == "all-file"
    # group_vars/<g>.yaml is used, <g>.json beside it is not (first match wins)
    assert "ignored_because_yaml_wins" not in hosts["cp2"].vars
    # a group_vars/<g>/ directory: files merged in sorted order, README.md and dotfiles skipped
    assert hosts["w02"].vars["kubelet_read_only_port"] == 10255
    assert "hidden" not in hosts["w02"].vars
    # a port on a later line for an existing host is ignored
    assert hosts["cp1"].vars["ansible_port"] == 2222
    # ansible_group_priority is a setting, not a variable
    assert "ansible_group_priority" not in hosts["w01"].vars


def test_later_source_group_vars_win_over_earlier_deeper_group():
    assert _load("multi").hosts["cp2"].vars["node_role"] == "k8s-second-source-file"
    assert _load("ini").hosts["cp2"].vars["node_role"] == "cp-file"


def test_ini_value_typing():
    cp1, w05 = _load("ini").hosts["cp1"], _load("ini").hosts["w05"]
    assert cp1.vars["enabled"] is False          # [g:vars] False -> bool
    assert cp1.vars["upper"] == "FALSE"          # not a Python literal -> string
    assert cp1.vars["kube_version"] == 1.3       # float, as ansible-core does it
    assert cp1.vars["note"] == "keep # this is part of the value"
    assert w05.vars["quoted_number"] == "0644"   # quoted twice -> string kept
    assert w05.vars["mode"] == 0o644
    assert w05.vars["flag"] is True and w05.vars["text"] == "yes"


def test_secrets_are_masked_unless_asked():
    inventory = _load("ini")
    masked = inventory.to_ansible_list()["_meta"]["hostvars"]
    assert masked["cp1"]["ansible_ssh_pass"] == MASK
    assert masked["w05"]["ansible_become_password"] == MASK
    assert masked["w01"]["db_password"] == MASK
    assert masked["w01"]["api_token"] == MASK
    assert masked["cp1"]["ansible_host"] == "127.10.0.11"
    nested = _load("yaml").to_ansible_list()["_meta"]["hostvars"]["cp1"]["etcd_tls"]
    assert nested == {"cert": "/etc/kubernetes/pki/etcd/server.crt", "key_password": MASK}
    shown = inventory.to_ansible_list(mask_secrets=False)["_meta"]["hostvars"]
    assert shown["cp1"]["ansible_ssh_pass"] == "topsecret"
    # masking never changes the inventory itself
    assert inventory.hosts["cp1"].vars["ansible_ssh_pass"] == "topsecret"


@pytest.mark.parametrize("name, secret", [
    ("ansible_password", True), ("ansible_become_pass", True), ("ansible_ssh_pass", True),
    ("ansible_become_password", True), ("vault_token", True), ("Client_Secret", True),
    ("etcd_password_file", True), ("ansible_user", False), ("ansible_host", False),
    ("passthrough", False),
])
def test_is_secret_var(name, secret):
    assert is_secret_var(name) is secret


def test_graph_with_limit_shows_only_selected_hosts_and_their_groups():
    graph = _load("ini").graph(limit="late-host")
    assert graph.splitlines() == [
        "@all:", "  |--@platform:", "  |  |--@monitoring:", "  |  |  |--late-host"]


def test_select_with_limit():
    inventory = _load("ini")
    assert [h.name for h in inventory.select("workers", limit="dc1")] == ["w01", "w02"]
    assert [h.name for h in inventory.select(None)] == list(inventory.hosts)


def test_select_errors_when_limit_leaves_nothing():
    from harden.errors import InputError

    with pytest.raises(InputError, match="no hosts left"):
        _load("ini").select("gpu", limit="dc2")


def test_groups_map_lists_descendant_hosts():
    groups = _load("ini").groups
    assert groups["datacenters"] == ["cp1", "w01", "w02", "w03"]
    assert groups["empty_parent"] == []
    assert groups["ungrouped"] == ["bastion"]


def test_host_list_source(tmp_path):
    inventory = load_inventory(["cp1,10.0.0.2:2222,", str(FIXTURES / "yaml/hosts.yml")])
    assert inventory.hosts["10.0.0.2"].vars["ansible_port"] == 2222
    assert inventory.hosts["cp1"].vars["ansible_become"] is True
    listed = inventory.to_ansible_list()
    assert "10.0.0.2" in listed["ungrouped"]["hosts"]
    assert "cp1" not in listed["ungrouped"]["hosts"]
