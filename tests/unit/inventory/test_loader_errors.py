"""Bad inventories stop with the file and line at fault (ansible-core often only warns)."""

from __future__ import annotations

import pytest

from harden.errors import InputError
from harden.inventory.loader import expand_host_range, load_inventory


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _error(paths) -> InputError:
    with pytest.raises(InputError) as caught:
        load_inventory(paths)
    return caught.value


@pytest.mark.parametrize("text, line, message", [
    ("[web]\nw1 ansible_port\n", 2, "expected key=value host variable assignment"),
    ("[web]\nnode[1:]\n", 2, "must specify an end value"),
    ("[web]\nnode[5:1]\n", 2, "is empty"),
    ("[web]\nnode[a:3]\n", 2, "numbers or single letters"),
    ("[web]\nnode[01:100]\n", 2, "equal-length"),
    ("[web]\nnode[1:3:0]\n", 2, "step must be a positive number"),
    ("[web]\nnode[1:2:3:4]\n", 2, "begin:end or begin:end:step"),
    ("\n[web:hosts]\nw1\n[web:childs]\n", 4, "unknown type 'childs'"),
    ("[web server]\n", 1, "invalid section header"),
    ("[web\nw1\n", 1, "invalid section header"),
    ("[k8s:children]\nweb\ndb\n[web]\nw1\n", 3, "includes group 'db', which is not defined"),
    ("[web]\nw1\n[db:vars]\nx=1\n", 3, "[db:vars] is for group 'db'"),
    ("[web]\nw1 motd='unclosed\n", 2, "No closing quotation"),
    ("[a:children]\nb\n[b:children]\na\n", 4, "dependency loop"),
    ("[web]\nw1:\n", 2, "trailing ':'"),
    ("[web]\nw1\n[web:vars]\nansible_group_priority=high\n", 4, "must be an integer"),
    ("[web:children]\nbad:name\n", 2, "expected a group name"),
    ("---\nall:\n", 1, "YAML file"),
    ("[web]\nw1\n[web:children]\nall\n", 4, "group 'all' cannot be a child"),
])
def test_bad_ini(tmp_path, text, line, message):
    path = _write(tmp_path, "hosts.ini", text)
    error = _error([path])
    assert (error.path, error.line) == (path, line)
    assert message in error.message
    assert str(error).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("text, line, message", [
    ("all:\n  hosts:\n    w1:\n  vars: [1\n", 5, "invalid YAML"),
    ("all:\n  children:\n    web:\n      - w1\n", 3, "group 'web' must be a mapping"),
    ("web: w1\n", 1, "group 'web' must be a mapping"),
    ("all:\n  children:\n    web:\n      host:\n        w1:\n", 4, "unexpected key 'host'"),
    ("web:\n  hosts:\n    - w1\n", 2, "'hosts' of group 'web' must be a mapping"),
    ("web:\n  hosts:\n    w1: [1, 2]\n", 3, "must be a mapping"),
    ("web:\n  hosts:\n    10:\n", 3, "must be a string"),
    ("web:\n  hosts:\n    n[3:1]:\n", 3, "is empty"),
    ("plugin: aws_ec2\nregions: [x]\n", 1, "plugin configuration"),
    ("- web\n- db\n", 1, "must be a mapping of group names"),
    ("web:\n  vars:\n    pw: !vault |\n      $ANSIBLE_VAULT;1.1;AES256\n", 3, "!vault"),
    ("a:\n  children:\n    b:\nb:\n  children:\n    a:\n", 6, "dependency loop"),
])
def test_bad_yaml(tmp_path, text, line, message):
    path = _write(tmp_path, "hosts.yml", text)
    error = _error([path])
    assert (error.path, error.line) == (path, line)
    assert message in error.message


def test_yaml_syntax_error_in_extensionless_file_falls_back_to_ini(tmp_path):
    """No extension: ansible-core tries YAML, then INI; the INI error is the one reported."""
    path = _write(tmp_path, "hosts", "[web]\nw1 port\n")
    error = _error([path])
    assert (error.path, error.line) == (path, 2)


@pytest.mark.parametrize("name, text, line, message", [
    ("host_vars/w1.yml", "a: 1\nb: [\n", 3, "invalid YAML"),
    ("host_vars/w1/main.yaml", "- 1\n- 2\n", 1, "must be a mapping"),
    ("group_vars/web", "x: {\n", 2, "invalid YAML"),
    ("group_vars/all.json", '{"x": 1\n', 2, "invalid YAML"),
])
def test_bad_vars_files(tmp_path, name, text, line, message):
    inventory = _write(tmp_path, "hosts.ini", "[web]\nw1\n")
    bad = _write(tmp_path, name, text)
    error = _error([inventory])
    assert (error.path, error.line) == (bad, line)
    assert message in error.message


def test_vars_files_of_unknown_hosts_are_not_read(tmp_path):
    inventory = _write(tmp_path, "hosts.ini", "[web]\nw1\n")
    _write(tmp_path, "host_vars/other.yml", "broken: [\n")
    assert load_inventory([inventory]).hosts["w1"].vars == {}


def test_missing_path(tmp_path):
    missing = str(tmp_path / "nope.ini")
    error = _error([missing])
    assert error.path == missing and "does not exist" in error.message


def test_directory_without_inventory_files(tmp_path):
    _write(tmp_path, "inv/README.md", "notes\n")
    error = _error([str(tmp_path / "inv")])
    assert "holds no inventory file" in error.message


def test_toml_is_refused(tmp_path):
    path = _write(tmp_path, "hosts.toml", "[web.hosts.w1]\n")
    assert "TOML" in _error([path]).message


def test_error_in_directory_names_the_file(tmp_path):
    _write(tmp_path, "inv/01.ini", "[web]\nw1\n")
    bad = _write(tmp_path, "inv/02.yml", "web:\n  hosts: [w2]\n")
    error = _error([str(tmp_path / "inv")])
    assert (error.path, error.line) == (bad, 2)


def test_not_utf8(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_bytes(b"[web]\nw\xff1\n")
    assert "UTF-8" in _error([str(path)]).message


@pytest.mark.parametrize("pattern, hosts", [
    ("node[01:03]", ["node01", "node02", "node03"]),
    ("node[1:10:4]", ["node1", "node5", "node9"]),
    ("n[a:c]-[1:2]", ["na-1", "na-2", "nb-1", "nb-2", "nc-1", "nc-2"]),
    ("[:2]x", ["0x", "1x", "2x"]),
    ("10.0.[0:1].1", ["10.0.0.1", "10.0.1.1"]),
    ("db", ["db"]),
])
def test_expand_host_range(pattern, hosts):
    assert expand_host_range(pattern) == hosts


def test_extensionless_yaml_with_syntax_error_reports_the_yaml_error(tmp_path):
    path = _write(tmp_path, "hosts", "all:\n  hosts:\n    w1: {a: [}\n")
    error = _error([path])
    assert (error.path, error.line) == (path, 3)
    assert "invalid YAML" in error.message


def test_ini_text_in_a_yml_file_is_read_as_ini_like_ansible(tmp_path):
    path = _write(tmp_path, "hosts.yml", "w1 ansible_port=2222\n[web]\nw2\n")
    inventory = load_inventory([path])
    assert inventory.hosts["w1"].vars == {"ansible_port": 2222}
    assert inventory.groups["web"] == ["w2"]


def test_yaml_host_with_empty_vars(tmp_path):
    path = _write(tmp_path, "hosts.yml", "web:\n  hosts:\n    w1: ''\n    w2: {}\n")
    assert load_inventory([path]).groups["web"] == ["w1", "w2"]
