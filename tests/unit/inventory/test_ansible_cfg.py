"""ansible.cfg is found where ansible-core finds it, ANSIBLE_* variables beat it, relative paths
are the file's, and what it says about logging in reaches hosts only as defaults their own
inventory variables override (Ansible's precedence)."""

from __future__ import annotations

import os

import pytest

from harden.errors import InputError
from harden.inventory.ansible_cfg import find_config, host_defaults, load_config
from harden.inventory.loader import load_inventory
from harden.ssh.settings import RunOptions, connection_spec

CFG = """\
[defaults]
inventory = hosts.ini ; a comment
remote_user = deploy
private_key_file = keys/id_ed25519
host_key_checking = False
roles_path = roles:/opt/roles
forks = 7

[privilege_escalation]
become = True
become_user = admin

[ssh_connection]
ssh_args = -o ServerAliveInterval=9
"""


def test_the_first_file_found_is_read_in_ansibles_order(tmp_path, monkeypatch):
    home, work, named = tmp_path / "home", tmp_path / "work", tmp_path / "named"
    for d in (home, work, named):
        d.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (home / ".ansible.cfg").write_text("[defaults]\nforks = 3\n")
    assert find_config({}, str(work)) == str(home / ".ansible.cfg")
    (work / "ansible.cfg").write_text("[defaults]\nforks = 4\n")
    assert find_config({}, str(work)) == str(work / "ansible.cfg")
    (named / "ansible.cfg").write_text("[defaults]\nforks = 5\n")
    assert find_config({"ANSIBLE_CONFIG": str(named)}, str(work)) == str(named / "ansible.cfg")
    os.chmod(work, 0o777)          # world-writable: Ansible ignores ./ansible.cfg there
    try:
        assert find_config({}, str(work)) == str(home / ".ansible.cfg")
    finally:
        os.chmod(work, 0o755)


def test_settings_are_read_with_paths_relative_to_the_file_and_env_winning(tmp_path):
    (tmp_path / "ansible.cfg").write_text(CFG)
    config = load_config({}, str(tmp_path))
    assert config.get("inventory") == [str(tmp_path / "hosts.ini")]
    assert config.get("private_key_file") == str(tmp_path / "keys/id_ed25519")
    assert config.get("roles_path") == [str(tmp_path / "roles"), "/opt/roles"]
    assert (config.get("forks"), config.get("host_key_checking"), config.get("become")) == \
        (7, False, True)
    assert config.get("ssh_args") == "-o ServerAliveInterval=9"
    assert load_config({"ANSIBLE_FORKS": "2", "ANSIBLE_REMOTE_USER": "ops"},
                       str(tmp_path)).values["forks"] == 2


def test_a_bad_value_names_the_file_and_line(tmp_path):
    (tmp_path / "ansible.cfg").write_text("[defaults]\n\nforks = many\n")
    with pytest.raises(InputError) as err:
        load_config({}, str(tmp_path))
    assert err.value.path == str(tmp_path / "ansible.cfg") and err.value.line == 3


def test_the_command_line_beats_the_file_and_the_inventory_beats_both(tmp_path):
    (tmp_path / "ansible.cfg").write_text(CFG)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys/id_ed25519").write_text("not really a key\n")
    (tmp_path / "hosts.ini").write_text("a ansible_host=127.0.0.1\nb ansible_host=127.0.0.2 "
                                        "ansible_user=root ansible_become=false\n")
    config = load_config({}, str(tmp_path))
    defaults = host_defaults(config, user="cli-user")
    inventory = load_inventory(config.get("inventory")).with_defaults(defaults)
    options = RunOptions(read_ssh_config=False)
    a = connection_spec(inventory.hosts["a"], options)
    b = connection_spec(inventory.hosts["b"], options)
    assert (a.target.user, a.become, a.become_user) == ("cli-user", True, "admin")
    assert (b.target.user, b.become) == ("root", False)
    assert a.host_key_policy == "no"            # host_key_checking = False
    assert a.keepalive == 9                      # ssh_args
    assert str(tmp_path / "keys/id_ed25519") in a.target.key_files
