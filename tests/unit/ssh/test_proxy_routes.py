"""ProxyCommand and jump hosts' own ProxyJump/ProxyCommand, resolved as ssh 9.2 does."""

from __future__ import annotations

import os
import time

import pytest

from harden.errors import HostError
from harden.ssh.openssh import master_options
from harden.ssh.proxy_command import ShellProxy
from harden.ssh.settings import RunOptions, connection_spec

from tests.unit.ssh.test_settings import Host

OPTIONS = RunOptions(local_user="alice")


def spec_with_config(tmp_path, config: str, args: str, **vars_):
    path = tmp_path / "ssh_config"
    path.write_text(config)
    return connection_spec(Host("t", {"ansible_ssh_common_args": f"-F {path} {args}", **vars_}),
                           OPTIONS)


def test_proxy_command_gets_every_token_ssh_expands(tmp_path):
    spec = spec_with_config(tmp_path, "Host alias\n  HostName 10.1.1.1\n  Port 2222\n",
                            "-o ProxyCommand='nc %h %p %r %n %k %%'",
                            ansible_host="alias", ansible_user="ops")
    assert spec.proxy_command == "nc 10.1.1.1 2222 ops alias alias %"
    aliased = spec_with_config(tmp_path, "Host alias\n  HostKeyAlias hka\n",
                               "-o ProxyCommand='nc %k'", ansible_host="alias")
    assert aliased.proxy_command == "nc hka"


@pytest.mark.parametrize("command", ["nc %u %h", "nc %C", "nc 100%"])
def test_a_proxy_command_token_ssh_refuses_names_the_host_and_setting(tmp_path, command):
    with pytest.raises(HostError) as err:
        spec_with_config(tmp_path, "", f"-o ProxyCommand='{command}'")
    assert err.value.host == "t" and err.value.setting == "ProxyCommand"


JUMPS = ("Host outer\n  HostName 10.0.0.1\n  User o\n"
         "Host inner\n  HostName 10.0.0.2\n  ProxyJump outer\n"
         "Host other\n  HostName 10.0.0.3\n  ProxyJump elsewhere\n")


def test_a_jump_hosts_own_proxyjump_is_reached_first(tmp_path):
    spec = spec_with_config(tmp_path, JUMPS, "-J inner", ansible_host="10.9.9.9")
    assert [(j.user, j.address) for j in spec.jumps] == [("o", "10.0.0.1"), ("alice", "10.0.0.2")]
    assert spec.route.startswith("alice@10.9.9.9:22 via o@10.0.0.1:22 -> alice@10.0.0.2:22")


def test_only_the_first_jumps_own_proxyjump_counts_as_with_ssh(tmp_path):
    spec = spec_with_config(tmp_path, JUMPS, "-J inner,other", ansible_host="10.9.9.9")
    assert [j.address for j in spec.jumps] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_jump_hosts_whose_proxyjumps_loop_are_an_error_naming_them(tmp_path):
    config = "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n"
    with pytest.raises(HostError) as err:
        spec_with_config(tmp_path, config, "-J a")
    assert err.value.setting == "ProxyJump" and "a -> b -> a" in err.value.message


def test_a_jump_hosts_own_proxy_command_reaches_it(tmp_path):
    config = "Host gw\n  HostName 10.0.0.5\n  ProxyCommand nc -X 5 %h %p\n"
    spec = spec_with_config(tmp_path, config, "-J gw", ansible_host="10.9.9.9")
    (jump,) = spec.jumps
    assert jump.proxy_command == "nc -X 5 10.0.0.5 22"
    assert "via ProxyCommand -> alice@10.0.0.5:22" in spec.route
    argv = master_options(spec, jump, "/tmp/sock", None)
    assert "ProxyCommand=nc -X 5 10.0.0.5 22" in argv and "ProxyJump=none" not in argv


def test_proxy_runs_through_the_shell_with_variables_and_redirects(monkeypatch):
    monkeypatch.setenv("PX_WORD", "hello")
    proxy = ShellProxy("echo $PX_WORD; echo noise >&2 2>/dev/null; ls /nonexistent 2>/dev/null")
    try:
        assert proxy.recv(64) == b"hello\n"      # `exec echo`: the rest never runs, as in ssh
        assert proxy.recv(64) == b""             # end of file at once, not a hang
    finally:
        proxy.close()


def test_a_failed_proxy_says_its_status_and_last_stderr_lines():
    proxy = ShellProxy("sh -c 'echo first >&2; echo bastion refused >&2; exit 3'")
    deadline = time.monotonic() + 5
    while proxy.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    exited, said = proxy.failure()
    assert exited and "status 3" in said and "first | bastion refused" in said


def test_the_proxy_runs_in_the_users_shell(monkeypatch):
    monkeypatch.setenv("SHELL", "/bin/sh")
    proxy = ShellProxy("echo $0")
    try:
        assert os.path.basename(proxy.recv(64).decode().strip()) == "sh"
    finally:
        proxy.close()


@pytest.mark.parametrize("var, value, setting", [
    ("ansible_host", "10.0.0.9$(touch /tmp/harden-pwned)", "ansible_host"),
    ("ansible_user", "ops`id`", "ansible_user"),
    ("ansible_host", "-oProxyCommand=x", "ansible_host")])
def test_an_inventory_value_cannot_run_commands_through_the_proxy_commands_shell(
        tmp_path, var, value, setting):
    # the command now runs in a shell; a dynamic inventory or CMDB fills %h and %r (ssh 9.6
    # refuses such names too, CVE-2023-51385)
    host = Host("t", {"ansible_ssh_common_args": "-o ProxyCommand='nc %h %p %r'", var: value})
    with pytest.raises(HostError) as err:        # (ssh -G refuses them too, when it runs)
        connection_spec(host, RunOptions(local_user="alice", read_ssh_config=False))
    assert err.value.setting == setting
    assert not os.path.exists("/tmp/harden-pwned")


def test_a_proxy_harden_ended_is_still_running_not_exited_and_is_reaped():
    # the handshake's cleanup closes the proxy before the error is worded: it read as
    # "exited with status -15" and was never retried
    proxy = ShellProxy("sleep 30")
    proxy.close()
    exited, said = proxy.failure()
    assert not exited and "still running" in said
    assert proxy.process.returncode is not None                     # reaped: no zombie
    assert proxy.process.stdout.closed and proxy.process.stdin.closed


def test_openssh_retries_a_proxy_that_timed_out_or_a_busy_bastion():
    from harden.ssh.openssh import classify
    from harden.ssh.transport import NetworkError, Unreachable
    spec = connection_spec(
        Host("t", {"ansible_ssh_common_args": "-F /dev/null -o ProxyCommand='sleep 30'"}),
        OPTIONS)
    timed_out = classify(spec, spec.target, "Connection timed out during banner exchange\n"
                                            "Connection to UNKNOWN port 65535 timed out\n")
    assert isinstance(timed_out, NetworkError)
    busy = classify(spec, spec.target, "kex_exchange_identification: read: Connection reset "
                                       "by peer\nConnection reset by peer\n")
    assert isinstance(busy, NetworkError)
    refused = classify(spec, spec.target,
                       "bastion says no\nConnection closed by UNKNOWN port 65535\n")
    assert isinstance(refused, Unreachable) and "bastion says no" in str(refused)
