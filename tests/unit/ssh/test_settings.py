"""How a host's ansible_* variables and ssh argument strings become a ConnectionSpec."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from harden.ssh.settings import (DEFAULT_CONNECT_TIMEOUT, RunOptions, Secret, connection_spec,
                               run_become_password)
from harden.errors import HostError


@dataclass
class Host:
    """The inventory's Host shape (name, merged vars, groups)."""

    name: str
    vars: dict
    groups: list = field(default_factory=lambda: ["all"])


OPTIONS = RunOptions(local_user="alice")


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "id_test"
    path.write_text("not really a key, only its existence is checked here\n")
    return str(path)


def spec_for(vars_: dict, options: RunOptions = OPTIONS, name: str = "cp1"):
    return connection_spec(Host(name, vars_), options)


def test_defaults_are_those_of_ssh():
    spec = spec_for({})
    assert (spec.target.address, spec.target.port, spec.target.user) == ("cp1", 22, "alice")
    assert spec.host_key_policy == "yes"
    assert spec.connect_timeout == DEFAULT_CONNECT_TIMEOUT
    assert spec.jumps == () and spec.become is False and spec.become_user == "root"
    assert spec.known_hosts_files[0].endswith("/.ssh/known_hosts")


def test_ansible_vars_win_over_the_same_setting_in_ssh_args(key):
    spec = spec_for({"ansible_host": "10.0.0.5", "ansible_port": "2222", "ansible_user": "ops",
                     "ansible_ssh_private_key_file": key,
                     "ansible_ssh_common_args": "-p 2200 -l other -o Port=2201"})
    assert (spec.target.address, spec.target.port, spec.target.user) == ("10.0.0.5", 2222, "ops")
    assert spec.target.key_files == (key,)


def test_ssh_args_fill_in_what_the_vars_leave_open(key):
    spec = spec_for({"ansible_ssh_common_args": f"-oPort=2200 -o User=deploy -i {key}",
                     "ansible_ssh_extra_args": "-p 9999"})
    assert (spec.target.port, spec.target.user, spec.target.key_files) == (2200, "deploy", (key,))


def test_known_hosts_files_strictness_and_timeout_from_args(tmp_path):
    spec = spec_for({"ansible_ssh_common_args":
                     f"-o UserKnownHostsFile='{tmp_path}/a {tmp_path}/b' "
                     "-o StrictHostKeyChecking=accept-new -o ConnectTimeout=3"})
    assert spec.known_hosts_files == (f"{tmp_path}/a", f"{tmp_path}/b")
    assert spec.record_known_hosts_file == f"{tmp_path}/a"
    assert spec.host_key_policy == "accept-new"
    assert spec.connect_timeout == 3.0


@pytest.mark.parametrize("args, cli_flag, policy", [
    ("", False, "yes"),
    ("", True, "accept-new"),
    ("-o StrictHostKeyChecking=no", False, "no"),
    ("-o StrictHostKeyChecking=yes", True, "yes"),        # the host's explicit choice wins
    ("-o StrictHostKeyChecking=ask", False, "yes"),
])
def test_host_key_policy(args, cli_flag, policy):
    options = RunOptions(accept_new_host_keys=cli_flag, local_user="alice")
    assert spec_for({"ansible_ssh_common_args": args}, options).host_key_policy == policy


def test_cli_timeout_applies_unless_the_host_sets_connect_timeout():
    options = RunOptions(connect_timeout=4.5, local_user="alice")
    assert spec_for({}, options).connect_timeout == 4.5
    assert spec_for({"ansible_ssh_common_args": "-o ConnectTimeout=2"},
                    options).connect_timeout == 2.0


def test_proxyjump_chain_of_user_host_port_entries():
    spec = spec_for({"ansible_ssh_common_args": "-o ProxyJump=ops@bastion1:2222,[fd00::1]:22"})
    assert [(j.user, j.address, j.port) for j in spec.jumps] == [
        ("ops", "bastion1", 2222), ("alice", "fd00::1", 22)]
    assert spec.route == "alice@cp1:22 via ops@bastion1:2222 -> alice@fd00::1:22"


def test_jump_host_named_in_inventory_brings_its_own_settings(key):
    bastion = Host("bastion", {"ansible_host": "127.9.0.1", "ansible_port": 2022,
                               "ansible_user": "jump", "ansible_ssh_private_key_file": key})
    options = RunOptions(inventory_hosts={"bastion": bastion}, local_user="alice")
    spec = spec_for({"ansible_ssh_extra_args": "-J bastion"}, options)
    (jump,) = spec.jumps
    assert (jump.address, jump.port, jump.user, jump.key_files) == ("127.9.0.1", 2022, "jump",
                                                                    (key,))
    spec = spec_for({"ansible_ssh_extra_args": "-J admin@bastion:2200"}, options)
    assert (spec.jumps[0].user, spec.jumps[0].port) == ("admin", 2200)


def test_first_proxyjump_wins_and_none_means_direct():
    spec = spec_for({"ansible_ssh_common_args": "-J a -o ProxyJump=b"})
    assert [j.address for j in spec.jumps] == ["a"]
    assert spec_for({"ansible_ssh_common_args": "-o ProxyJump=none"}).jumps == ()


def test_ignored_options_are_collected_as_warnings():
    spec = spec_for({"ansible_ssh_common_args":
                     "-o ControlMaster=auto -o ControlPersist=60s -A -o Ciphers=aes128-ctr "
                     "-L 8080:localhost:80 -C -q"})
    assert spec.compress is True
    assert len(spec.warnings) == 3
    assert any("-A" in w for w in spec.warnings)
    assert any("ciphers" in w for w in spec.warnings)
    assert any("-L 8080:localhost:80" in w for w in spec.warnings)


def test_missing_key_file_names_host_setting_and_path(tmp_path):
    missing = tmp_path / "nope" / "id_ed25519"
    with pytest.raises(HostError) as info:
        spec_for({"ansible_ssh_private_key_file": str(missing)})
    assert info.value.host == "cp1"
    assert info.value.setting == "ansible_ssh_private_key_file"
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("vars_, setting", [
    ({"ansible_port": "ssh"}, "ansible_port"),
    ({"ansible_port": 70000}, "ansible_port"),
    ({"ansible_ssh_common_args": "-o ConnectTimeout=soon"}, "ConnectTimeout"),
    ({"ansible_ssh_common_args": "-o StrictHostKeyChecking=maybe"}, "StrictHostKeyChecking"),
    ({"ansible_ssh_common_args": "-o 'unterminated"}, "ansible_ssh_common_args"),
    ({"ansible_ssh_common_args": "-p"}, "ansible_ssh_common_args"),
    ({"ansible_connection": "winrm"}, "ansible_connection"),
    ({"ansible_ssh_common_args": "-J gw -o ProxyCommand='nc %h %p'"}, "ansible_ssh_common_args"),
    ({"ansible_become": True, "ansible_become_method": "su"}, "ansible_become_method"),
])
def test_bad_settings_name_the_setting(vars_, setting):
    with pytest.raises(HostError) as info:
        spec_for(vars_)
    assert info.value.setting == setting and info.value.host == "cp1"


def test_passwords_never_show_in_repr_or_str():
    options = RunOptions(become_password=Secret("run-wide-pw"), local_user="alice")
    spec = spec_for({"ansible_password": "login-pw", "ansible_become": "yes"}, options)
    text = repr(spec) + str(spec) + repr(spec.target)
    assert "login-pw" not in text and "run-wide-pw" not in text
    assert spec.target.password.reveal() == "login-pw"
    assert spec.become is True


def test_host_become_password_wins_over_the_run_wide_one():
    options = RunOptions(become_password=Secret("run-wide"), local_user="alice")
    assert spec_for({}, options).become_password.reveal() == "run-wide"
    assert spec_for({"ansible_become_pass": "mine"}, options).become_password.reveal() == "mine"
    assert spec_for({"ansible_become_password": "mine2", "ansible_become_user": "etcd"},
                    options).become_user == "etcd"


def test_run_become_password_from_prompt_or_environment(monkeypatch):
    monkeypatch.setenv("HARDEN_BECOME_PASSWORD", "from-env")
    assert run_become_password(False).reveal() == "from-env"
    assert run_become_password(True, prompt=lambda _text: "typed").reveal() == "typed"
    monkeypatch.delenv("HARDEN_BECOME_PASSWORD")
    assert run_become_password(False) is None


def test_proxy_command_tokens_are_expanded():
    spec = spec_for({"ansible_host": "10.1.1.1", "ansible_user": "ops",
                     "ansible_ssh_common_args": "-o ProxyCommand='ssh -W %h:%p -l %r gw'"})
    assert spec.proxy_command == "ssh -W 10.1.1.1:22 -l ops gw"


# --- known_hosts files as ssh_config(5) has them ---------------------------------------------

def test_by_default_both_user_and_both_global_known_hosts_files_are_read(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = spec_for({})
    assert spec.all_known_hosts_files == (
        f"{tmp_path}/.ssh/known_hosts", f"{tmp_path}/.ssh/known_hosts2",
        "/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
    assert spec.record_known_hosts_file == f"{tmp_path}/.ssh/known_hosts"


def test_a_user_known_hosts_file_replaces_the_home_known_hosts(monkeypatch, tmp_path):
    # ssh never reads ~/.ssh/known_hosts then: a stale line there must not fail the host
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = spec_for({"ansible_ssh_common_args": "-o UserKnownHostsFile=/dev/null "
                                                "-o StrictHostKeyChecking=no"})
    assert spec.all_known_hosts_files == ("/dev/null", "/etc/ssh/ssh_known_hosts",
                                          "/etc/ssh/ssh_known_hosts2")


def test_a_tilde_user_known_hosts_file_is_read_and_recorded_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = spec_for({"ansible_ssh_common_args": "-o UserKnownHostsFile=~/.ssh/kh"})
    assert spec.known_hosts_files == (f"{tmp_path}/.ssh/kh",)
    assert spec.record_known_hosts_file == f"{tmp_path}/.ssh/kh"


def test_user_known_hosts_file_tokens_are_expanded_as_ssh_does(tmp_path):
    spec = spec_for({"ansible_host": "10.0.0.5", "ansible_ssh_common_args":
                     f"-o UserKnownHostsFile={tmp_path}/kh_%h_%p_%r"})
    assert spec.record_known_hosts_file == f"{tmp_path}/kh_10.0.0.5_22_alice"


def test_user_known_hosts_none_reads_no_user_file_and_records_nowhere():
    spec = spec_for({"ansible_ssh_common_args": "-o UserKnownHostsFile=none "
                                                "-o StrictHostKeyChecking=accept-new"})
    assert spec.known_hosts_files == () and spec.record_known_hosts_file is None
    assert spec.all_known_hosts_files == ("/etc/ssh/ssh_known_hosts",
                                          "/etc/ssh/ssh_known_hosts2")


def test_none_among_other_known_hosts_files_is_refused_as_ssh_refuses_it():
    with pytest.raises(HostError, match='"none" must appear alone'):
        spec_for({"ansible_ssh_common_args": "-o UserKnownHostsFile='/a none'"})


def test_global_known_hosts_file_from_args_replaces_the_global_files_without_warning(tmp_path):
    spec = spec_for({"ansible_ssh_common_args": "-o GlobalKnownHostsFile='~/g /etc/g2'"})
    assert spec.global_known_hosts_files == (os.path.expanduser("~/g"), "/etc/g2")
    assert spec.warnings == ()
    none = spec_for({"ansible_ssh_common_args": "-o GlobalKnownHostsFile=none"})
    assert none.global_known_hosts_files == ()


def test_a_jump_host_gets_its_own_known_hosts_and_policy_not_the_targets(tmp_path, monkeypatch):
    # ssh starts the jump's ssh with its own config and none of the target's -o options
    monkeypatch.setenv("HOME", str(tmp_path))
    config = tmp_path / "ssh_config"
    config.write_text(f"Host bastion\n  UserKnownHostsFile {tmp_path}/bastion_kh\n"
                      "  StrictHostKeyChecking accept-new\n")
    spec = connection_spec(Host("t", {"ansible_ssh_common_args":
                                      f"-F {config} -o UserKnownHostsFile={tmp_path}/t_kh "
                                      "-o StrictHostKeyChecking=yes -J bastion,other"}),
                           RunOptions(local_user="alice"))
    assert spec.host_keys(spec.target).user_files == (f"{tmp_path}/t_kh",)
    bastion, other = (spec.host_keys(j) for j in spec.jumps)
    # its own files first (recorded in, never overridden), then the target's, as harden did
    assert bastion.user_files == (f"{tmp_path}/bastion_kh", f"{tmp_path}/t_kh")
    assert bastion.record == f"{tmp_path}/bastion_kh" and bastion.policy == "accept-new"
    assert other.user_files == (f"{tmp_path}/.ssh/known_hosts", f"{tmp_path}/.ssh/known_hosts2",
                                f"{tmp_path}/t_kh")
    assert other.policy == "yes"


def test_a_host_name_with_a_slash_cannot_pick_the_known_hosts_directory(tmp_path):
    host = Host("t", {"ansible_host": "../../etc/x", "ansible_ssh_common_args":
                      f"-o UserKnownHostsFile={tmp_path}/kh_%h"})
    with pytest.raises(HostError) as err:        # refused before ssh -G sees it
        connection_spec(host, RunOptions(local_user="alice", read_ssh_config=False))
    assert err.value.setting == "ansible_host"
    upper = connection_spec(Host("t", {"ansible_host": "Web1.Example", "ansible_ssh_common_args":
                                       f"-o UserKnownHostsFile={tmp_path}/kh_%h"}),
                            RunOptions(local_user="alice", read_ssh_config=False))
    assert upper.known_hosts_files == (f"{tmp_path}/kh_web1.example",)     # as ssh lower-cases



@pytest.mark.parametrize("var, value", [("ansible_host", "-oKnownHostsCommand=/usr/bin/id"),
                                        ("ansible_user", "../../../tmp/evil"),
                                        ("ansible_ssh_common_args", "-J ../x")])
def test_an_inventory_name_cannot_be_an_ssh_option_or_a_path(var, value):
    # ssh -G takes a leading - as an option, and puts the name into %h/%r paths it expands
    with pytest.raises(HostError):
        connection_spec(Host("t", {var: value}), RunOptions(local_user="alice"))


def test_a_jump_outside_the_inventory_follows_ansible_host_key_checking(tmp_path):
    # ansible.cfg's host_key_checking=False is for every host, bastions included
    spec = connection_spec(Host("t", {"ansible_host_key_checking": False,
                                      "ansible_ssh_common_args": "-F /dev/null -J bastion"}),
                           RunOptions(local_user="alice"))
    assert spec.host_keys(spec.jumps[0]).policy == "no"



@pytest.mark.parametrize("checking, target_args, policy", [
    (False, "", "no"), ("False", "", "no"), ("flase", "", "yes"), ("{{ hkc }}", "", "yes"),
    (False, "-o StrictHostKeyChecking=yes", "yes")])
def test_a_bastion_follows_only_an_explicit_false_host_key_checking(checking, target_args,
                                                                     policy):
    # a typo or an unrendered template never turns checking off; a target's own explicit
    # StrictHostKeyChecking is not passed on to its bastions (ssh never passes -o options)
    spec = connection_spec(Host("t", {"ansible_host_key_checking": checking,
                                      "ansible_ssh_common_args":
                                      f"-F /dev/null {target_args} -J bastion"}),
                           RunOptions(local_user="alice"))
    assert spec.host_keys(spec.jumps[0]).policy == policy


def test_an_inventory_jump_hosts_own_address_is_checked_too():
    bastion = Host("bast", {"ansible_host": "-oProxyCommand=touch /tmp/x"})
    target = Host("t", {"ansible_ssh_common_args": "-J bast"})
    with pytest.raises(HostError):
        connection_spec(target, RunOptions(local_user="alice", read_ssh_config=False,
                                           inventory_hosts={"bast": bastion, "t": target}))
