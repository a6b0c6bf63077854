"""Host patterns resolve to the hosts ansible-core resolves them to (recorded with
`ansible PATTERN --list-hosts`), and a pattern part that names nothing is an error."""

from __future__ import annotations

import json

import pytest

from harden.errors import InputError
from harden.inventory.patterns import (PatternSpace, match_hosts, order_parts, parse_address,
                                 split_pattern)
from harden.inventory.loader import load_inventory
from support.paths import FIXTURES as FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "inventories"
RECORDED = json.loads((FIXTURES / "expected" / "ini-patterns.json").read_text())


@pytest.fixture(scope="module")
def inventory():
    return load_inventory([str(FIXTURES / "ini" / "hosts.ini")])


@pytest.mark.parametrize("pattern", [p for p, hosts in RECORDED.items() if hosts])
def test_pattern_matches_ansible(inventory, pattern):
    assert [host.name for host in inventory.select(pattern)] == RECORDED[pattern]


@pytest.mark.parametrize("pattern", [p for p, hosts in RECORDED.items() if not hosts])
def test_pattern_ansible_resolves_to_nothing_is_an_error(inventory, pattern):
    with pytest.raises(InputError, match="no hosts match"):
        inventory.select(pattern)


SPACE = PatternSpace(
    hosts=["cp1", "cp2", "w1", "w2", "web.example.com"],
    groups={"all": ["cp1", "cp2", "w1", "w2", "web.example.com"], "ungrouped": [],
            "control_plane": ["cp1", "cp2"], "workers": ["w1", "w2"],
            "empty": []},
)


@pytest.mark.parametrize("pattern, hosts", [
    ("all", ["cp1", "cp2", "w1", "w2", "web.example.com"]),
    ("*", ["cp1", "cp2", "w1", "w2", "web.example.com"]),
    ("workers:control_plane", ["w1", "w2", "cp1", "cp2"]),
    ("workers , cp1", ["w1", "w2", "cp1"]),
    ("all:!workers:!cp2", ["cp1", "web.example.com"]),
    ("!workers", ["cp1", "cp2", "web.example.com"]),
    ("&workers:w*", ["w1", "w2"]),
    ("*.example.com", ["web.example.com"]),
    ("~(cp|w)1", ["cp1", "w1"]),
    ("workers[1]", ["w2"]),
    ("control_plane[0:0]", ["cp1"]),
    ("all[-1]", ["web.example.com"]),
    ("all[3:]", ["w2", "web.example.com"]),
    ("all:!empty", ["cp1", "cp2", "w1", "w2", "web.example.com"]),
])
def test_match_hosts(pattern, hosts):
    assert match_hosts(pattern, SPACE) == hosts


@pytest.mark.parametrize("pattern, message", [
    ("nosuch", "no hosts match pattern 'nosuch'"),
    ("workers:!cp3", "no hosts match pattern 'cp3'"),       # a typo in an exclusion
    ("workers:&nosuch", "no hosts match pattern 'nosuch'"),
    ("workers:&control_plane", "no hosts match pattern 'workers:&control_plane'"),
    ("workers[5]", "subscripted pattern 'workers[5]'"),
    ("~(", "invalid host pattern"),
    ("empty", "no hosts match pattern 'empty'"),
    (" , ", "empty host pattern"),
    ("all[-2:]", "no hosts match pattern 'all[-2:]'"),  # not a subscript: a glob class
])
def test_match_errors(pattern, message):
    with pytest.raises(InputError) as caught:
        match_hosts(pattern, SPACE)
    assert message in str(caught.value)


@pytest.mark.parametrize("pattern, parts", [
    ("a:b:&c:!d", ["a", "b", "&c", "!d"]),
    ("a,b:&c", ["a", "b:&c"]),                  # a comma means commas only, as in ansible
    ("node[1:3]", ["node[1:3]"]),              # a host range, not a:b
    ("web:22", ["web:22"]),                    # a host with a port stays whole
    ("10.0.0.1:22", ["10.0.0.1:22"]),
    ("g[1:]:h", ["g[1:]", "h"]),
    ("a, b ,,", ["a", "b"]),
])
def test_split_pattern(pattern, parts):
    assert split_pattern(pattern) == parts


def test_order_parts_puts_unions_first():
    assert order_parts(["!x", "&y", "a", "b"]) == ["a", "b", "&y", "!x"]
    assert order_parts(["!x"]) == ["all", "!x"]


@pytest.mark.parametrize("text, parsed", [
    ("cp1", ("cp1", None)),
    ("cp1:2222", ("cp1", 2222)),
    ("node[01:05]:22", ("node[01:05]", 22)),
    ("192.168.0.[1:9]", ("192.168.0.[1:9]", None)),
    ("[2001:db8::1]:2200", ("2001:db8::1", 2200)),
    ("2001:db8::1", ("2001:db8::1", None)),
    ("web.example.com", ("web.example.com", None)),
    ("bad_", None),
    ("a:b", None),
    ("web*", None),
])
def test_parse_address(text, parsed):
    assert parse_address(text) == parsed
