"""Hosts resolved through the OpenSSH client config (`ssh -G -F FILE`), the transport choice,
and the options each transport honours. Uses the real ssh client, never the user's config."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner

from harden.cli import cli
from harden.errors import HardenError, HostError
from harden.ssh import sshconfig
from harden.ssh.settings import RunOptions, connection_spec, connection_specs

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the ssh client")


@dataclass
class Host:
    name: str
    vars: dict
    groups: list = field(default_factory=lambda: ["all"])


@pytest.fixture
def config(tmp_path):
    """A config with an alias, a jump alias from an Include, a Match on the user."""
    key = tmp_path / "id_alias"
    key.write_text("only its existence matters here\n")
    (tmp_path / "extra.conf").write_text(
        "Host bastion\n  HostName 10.9.9.9\n  User jumper\n  Port 2200\n")
    path = tmp_path / "ssh_config"
    path.write_text(f"""Include {tmp_path / 'extra.conf'}
Host node-a
  HostName 10.1.2.3
  User ops
  Port 2222
  IdentityFile {key}
  ProxyJump bastion
  UserKnownHostsFile {tmp_path / 'kh'}
Match host 10.1.2.3 user ops
  ConnectTimeout 7
  StrictHostKeyChecking accept-new
Host askme
  StrictHostKeyChecking ask
""")
    return path, key


def spec(name: str, vars_: dict, options: RunOptions | None = None):
    return connection_spec(Host(name, vars_), options or RunOptions(local_user="alice"))


def test_an_alias_resolves_to_host_user_port_key_jump_and_known_hosts(config, tmp_path):
    path, key = config
    s = spec("node-a", {"ansible_ssh_common_args": f"-F {path}"})
    assert (s.target.address, s.target.user, s.target.port) == ("10.1.2.3", "ops", 2222)
    assert s.target.key_files == (str(key),)
    assert [(j.address, j.user, j.port) for j in s.jumps] == [("10.9.9.9", "jumper", 2200)]
    assert s.record_known_hosts_file == str(tmp_path / "kh")
    assert (s.connect_timeout, s.host_key_policy) == (7.0, "accept-new")   # the Match block
    assert s.route == "ops@10.1.2.3:2222 via jumper@10.9.9.9:2200"


def test_a_config_identity_file_with_only_its_pub_is_kept_for_the_agent_copy(tmp_path):
    # ssh finds the agent's key by <file>.pub (resident FIDO keys have no private key file)
    resident, absent = tmp_path / "id_resident", tmp_path / "id_absent"
    resident.with_name("id_resident.pub").write_text("ssh-ed25519 AAAA me\n")
    path = tmp_path / "ssh_config"
    path.write_text(f"Host node-b\n  IdentityFile {resident}\n  IdentityFile {absent}\n")
    s = spec("node-b", {"ansible_ssh_common_args": f"-F {path}"})
    assert s.target.key_files == (str(resident),)
    assert any(f"IdentityFile {absent} does not exist" in w for w in s.warnings)


def test_one_default_key_named_in_the_config_is_the_only_key_file(tmp_path, monkeypatch):
    # ssh -G lists its whole default set when no IdentityFile is configured (then harden
    # tries its defaults); a default path named on its own is an explicit choice
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ecdsa").write_text("only its existence matters here\n")
    path = tmp_path / "ssh_config"
    path.write_text("Host named\n  IdentityFile ~/.ssh/id_ecdsa\n  IdentitiesOnly yes\n")
    named = spec("named", {"ansible_ssh_common_args": f"-F {path}"})
    assert named.target.key_files == (str(tmp_path / ".ssh" / "id_ecdsa"),)
    defaults = spec("other", {"ansible_ssh_common_args": f"-F {path}"})
    assert defaults.target.key_files == ()


def test_a_missing_configured_identity_file_still_stops_the_default_keys(tmp_path):
    # ssh counts it as named: with IdentitiesOnly it then offers nothing, not ~/.ssh/id_*
    path = tmp_path / "ssh_config"
    path.write_text(f"Host *\n  IdentityFile {tmp_path / 'id_work'}\n  IdentitiesOnly yes\n")
    s = spec("node-c", {"ansible_ssh_common_args": f"-F {path}"})
    assert s.target.key_files == () and s.target.default_keys is False
    assert spec("node-c", {}).target.default_keys is True


def test_a_jump_host_outside_the_inventory_gets_the_targets_keys_then_the_defaults(tmp_path):
    key = tmp_path / "deploy_key"
    key.write_text("only its existence matters here\n")
    s = spec("node-d", {"ansible_ssh_private_key_file": str(key),
                        "ansible_ssh_common_args": "-F /dev/null -J bastion"})
    assert s.target.default_keys is False
    assert s.jumps[0].key_files == (str(key),) and s.jumps[0].default_keys is True


def test_inventory_variables_win_and_a_match_on_the_user_follows_them(config):
    path, _ = config
    s = spec("node-a", {"ansible_user": "bob", "ansible_port": 22,
                        "ansible_ssh_common_args": f"-F {path}"})
    assert (s.target.user, s.target.port, s.target.address) == ("bob", 22, "10.1.2.3")
    assert s.connect_timeout == 10.0 and s.host_key_policy == "yes"   # Match user ops: no


def test_ansible_host_is_the_name_the_config_matches(config):
    path, _ = config
    s = spec("cp1", {"ansible_host": "node-a", "ansible_ssh_common_args": f"-F {path}"})
    assert s.target.address == "10.1.2.3" and s.config_name == "node-a"


def test_strict_host_key_checking_ask_leaves_the_choice_to_the_flag(config):
    path, _ = config
    args = {"ansible_ssh_common_args": f"-F {path}"}
    assert spec("askme", args).host_key_policy == "yes"
    flagged = spec("askme", args, RunOptions(local_user="alice", accept_new_host_keys=True))
    assert flagged.host_key_policy == "accept-new"


def test_an_unreadable_config_file_names_host_and_file(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(HostError) as caught:
        spec("node-a", {"ansible_ssh_common_args": f"-F {missing}"})
    assert caught.value.host == "node-a" and str(missing) in str(caught.value)


def test_a_bad_config_line_stops_every_host_before_any_connection(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("Host x\n  NoSuchKeyword yes\n")
    hosts = [Host(n, {"ansible_ssh_common_args": f"-F {bad}"}) for n in ("a", "b")]
    with pytest.raises(HardenError) as caught:
        connection_specs(hosts, RunOptions())
    assert "host a" in str(caught.value) and "host b" in str(caught.value)
    assert "NoSuchKeyword" in str(caught.value) or "Bad configuration" in str(caught.value)


def test_without_a_config_file_ssh_g_is_not_needed(monkeypatch, tmp_path):
    monkeypatch.setattr(sshconfig, "SYSTEM_CONFIG", str(tmp_path / "none"))
    monkeypatch.setattr(sshconfig, "passwd_home", lambda: str(tmp_path))
    assert not sshconfig.may_matter(None)
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Include more/*.conf\n")
    (tmp_path / ".ssh" / "more").mkdir()
    (tmp_path / ".ssh" / "more" / "a.conf").write_text("# User x\nHost *\n  SendEnv LANG\n")
    assert not sshconfig.may_matter(None)
    (tmp_path / ".ssh" / "more" / "b.conf").write_text("Host db*\n  User dba\n")
    assert sshconfig.may_matter(None)


def test_harden_transport_wins_over_the_flag_and_ansible_connection_paramiko():
    opts = RunOptions(local_user="alice", read_ssh_config=False, transport="openssh")
    assert spec("a", {}, opts).transport == "openssh"
    assert spec("a", {"harden_transport": "paramiko"}, opts).transport == "paramiko"
    assert spec("a", {"ansible_connection": "paramiko"}, opts).transport == "paramiko"
    assert spec("a", {}, RunOptions(read_ssh_config=False)).transport == "paramiko"
    with pytest.raises(HostError) as caught:
        spec("a", {"harden_transport": "libssh"}, opts)
    assert caught.value.setting == "harden_transport"


def test_password_login_is_refused_for_the_openssh_transport_before_connecting():
    with pytest.raises(HostError) as caught:
        spec("a", {"harden_transport": "openssh", "ansible_password": "x"})
    assert caught.value.setting == "ansible_password" and "x" not in caught.value.message


def test_options_paramiko_ignores_are_passed_on_by_the_openssh_transport():
    args = {"ansible_ssh_common_args": "-o KexAlgorithms=curve25519-sha256 -o ControlPath=/x"}
    paramiko_spec = spec("a", args)
    assert any("kexalgorithms" in w for w in paramiko_spec.warnings)
    openssh_spec = spec("a", {**args, "harden_transport": "openssh"})
    assert openssh_spec.warnings == ()
    assert openssh_spec.ssh_options == ("kexalgorithms=curve25519-sha256",)   # not ControlPath


def test_identity_agent_from_the_config_or_the_args_reaches_both_transports(tmp_path):
    # 1Password, Secretive, gpg-agent: the agent is named in the ssh config, not the env
    path = tmp_path / "ssh_config"
    path.write_text("Host vault-*\n  IdentityAgent ~/.1p/agent.sock\nHost bare\n"
                    "  IdentityAgent none\n")
    home = sshconfig.passwd_home()
    named = spec("vault-1", {"ansible_ssh_common_args": f"-F {path}"})
    assert named.target.identity_agent == f"{home}/.1p/agent.sock"      # ssh -G expands ~
    assert spec("bare", {"ansible_ssh_common_args": f"-F {path}"}).target.identity_agent == "none"
    args = spec("x", {"ansible_ssh_common_args": "-F /dev/null -o IdentityAgent=$MY_SOCK"})
    assert args.target.identity_agent == "$MY_SOCK" and args.warnings == ()
    openssh = spec("x", {"ansible_ssh_common_args": "-F /dev/null -o IdentityAgent=$MY_SOCK",
                         "harden_transport": "openssh"})
    from harden.ssh.openssh import master_options
    assert "IdentityAgent=$MY_SOCK" in master_options(openssh, openssh.target, "/m", None)


def test_certificate_file_must_exist(tmp_path):
    with pytest.raises(HostError) as caught:
        spec("a", {"ansible_ssh_common_args": f"-o CertificateFile={tmp_path / 'c-cert.pub'}"})
    assert caught.value.setting == "CertificateFile"


def test_inventory_list_resolve_shows_the_endpoint(config, tmp_path):
    path, _ = config
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"node-a ansible_ssh_common_args='-F {path}' harden_transport=openssh\n"
                         "broken ansible_port=99999\n")
    result = CliRunner().invoke(cli, ["inventory", "-i", str(inventory), "--list", "--resolve"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["_meta"]["harden_connections"]
    assert shown["node-a"]["route"] == "ops@10.1.2.3:2222 via jumper@10.9.9.9:2200 [openssh]"
    assert "out of range" in shown["broken"]["error"]
    plain = CliRunner().invoke(cli, ["inventory", "-i", str(inventory), "--list"])
    assert "harden_connections" not in plain.output


def test_config_known_hosts_files_none_and_global_files_are_those_ssh_reads(tmp_path):
    path = tmp_path / "ssh_config"
    path.write_text(f"Host *\n  UserKnownHostsFile none\n"
                    f"  GlobalKnownHostsFile {tmp_path / 'g1'} {tmp_path / 'g2'}\n")
    s = spec("node", {"ansible_ssh_common_args": f"-F {path}"})
    assert s.known_hosts_files == () and s.record_known_hosts_file is None
    assert s.all_known_hosts_files == (str(tmp_path / "g1"), str(tmp_path / "g2"))
    assert s.warnings == ()


def test_config_keywords_the_paramiko_transport_ignores_are_warned_about(tmp_path):
    path = tmp_path / "ssh_config"
    path.write_text("Host *\n  KexAlgorithms curve25519-sha256\n  VerifyHostKeyDNS yes\n"
                    "  KnownHostsCommand /bin/true %H\n  AddressFamily any\n")
    s = spec("node", {"ansible_ssh_common_args": f"-F {path}"})
    assert [w.split(" is ")[0] for w in s.warnings] == [
        "ssh config: KexAlgorithms curve25519-sha256", "ssh config: KnownHostsCommand "
        "/bin/true %H", "ssh config: VerifyHostKeyDNS true"]      # AddressFamily any: default
    assert all("the openssh transport honours it" in w for w in s.warnings)
    openssh = spec("node", {"ansible_ssh_common_args": f"-F {path}",
                            "harden_transport": "openssh"})
    assert openssh.warnings == ()


def test_a_config_known_hosts_file_is_used_as_ssh_printed_it(tmp_path, monkeypatch):
    # one default file alone is a choice (ssh reads and writes only it), and ssh -G has
    # already expanded the tokens: `%%h` stays a literal `%h`
    path = tmp_path / "ssh_config"
    path.write_text(f"Host second\n  UserKnownHostsFile ~/.ssh/known_hosts2\n"
                    f"Host literal\n  UserKnownHostsFile {tmp_path}/kh_%%h\n")
    home = sshconfig.passwd_home()
    second = spec("second", {"ansible_ssh_common_args": f"-F {path}"})
    monkeypatch.setenv("HOME", home)
    assert second.known_hosts_files == (f"{home}/.ssh/known_hosts2",)
    literal = spec("literal", {"ansible_ssh_common_args": f"-F {path}"})
    assert literal.known_hosts_files == (f"{tmp_path}/kh_%h",)
