"""The OpenSSH transport's pure parts: the ssh arguments of a master (harden's resolved settings
first, as ssh keeps the first value) and what ssh's messages mean; certificate pairing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import replace

import paramiko
import pytest

from harden.errors import HostError
from harden.ssh import certs
from harden.ssh.hostkeys import HostKeyMismatch, HostKeyUnknown
from harden.ssh.openssh import classify, master_options
from harden.ssh.settings import ConnectionSpec, Endpoint
from harden.ssh.transport import AuthenticationFailed, Unreachable, NetworkError

TARGET = Endpoint(name="cp1", address="10.0.0.5", port=2222, user="ops",
                  key_files=("/k/id",), identities_only=True, cert_files=("/k/c-cert.pub",))
SPEC = ConnectionSpec(host="cp1", target=TARGET, known_hosts_files=("/kh/b", "/kh/a"),
                      host_key_policy="accept-new",
                      connect_timeout=2.5, ssh_config_file="/cfg",
                      ssh_options=("kexalgorithms=sntrup761x25519-sha512@openssh.com",
                                   "port=1"),
                      transport="openssh")


def options_of(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, word in enumerate(argv) if word == "-o"]


def test_strict_host_key_checking_no_still_refuses_a_changed_key_over_openssh():
    # ssh's `no` logs in past a changed key; accept-new records new keys the same way and
    # refuses a changed one, as the paramiko transport does
    spec = replace(SPEC, host_key_policy="no")
    assert "StrictHostKeyChecking=accept-new" in options_of(master_options(spec, TARGET, "/m",
                                                                           None))


def test_master_options_put_harden_settings_before_the_users_and_use_their_config():
    argv = master_options(SPEC, TARGET, "/priv/m", None)
    assert argv[:2] == ["-F", "/cfg"]
    opts = options_of(argv)
    assert opts.index("Port=2222") < opts.index("port=1")       # ssh keeps the first value
    for wanted in ("ControlMaster=yes", "ControlPath=/priv/m", "ControlPersist=no",
                   "BatchMode=yes", "HostName=10.0.0.5", "User=ops", "IdentitiesOnly=yes",
                   "StrictHostKeyChecking=accept-new", "ConnectTimeout=3",
                   "UserKnownHostsFile=/kh/b /kh/a", "IdentityFile=/k/id",
                   "CertificateFile=/k/c-cert.pub", "ProxyJump=none",
                   "kexalgorithms=sntrup761x25519-sha512@openssh.com"):
        assert wanted in opts, wanted


def test_a_command_run_as_the_master_has_the_masters_options_and_comes_last():
    from harden.ssh.openssh import _Login

    argv = _Login(SPEC, "/priv/m", None, "cp1-alias").argv("-E", "/priv/m.log", "-T", "id -un")
    assert argv[1:-6] == master_options(SPEC, TARGET, "/priv/m", None)
    # `--`: a destination from the inventory is never read as an option
    assert argv[-6:] == ["-E", "/priv/m.log", "-T", "--", "cp1-alias", "id -un"]
    assert "-N" not in argv


def test_a_jump_goes_through_the_previous_masters_socket():
    opts = options_of(master_options(SPEC, TARGET, "/priv/m", "/priv/j0"))
    proxy = next(o for o in opts if o.startswith("ProxyCommand="))
    assert "-S /priv/j0" in proxy and "-W %h:%p" in proxy
    assert "ProxyJump=none" not in opts


def test_ssh_gets_the_resolved_global_files_and_none_as_none():
    opts = options_of(master_options(SPEC, TARGET, "/priv/m", None))
    assert "GlobalKnownHostsFile=/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2" in opts
    none = replace(SPEC, known_hosts_files=(),
                   global_known_hosts_files=())
    opts = options_of(master_options(none, TARGET, "/priv/m", None))
    assert "UserKnownHostsFile=none" in opts and "GlobalKnownHostsFile=none" in opts


@pytest.mark.parametrize("stderr, error", [
    ("No ED25519 host key is known for 10.0.0.5 and you have requested strict checking.\n"
     "Host key verification failed.\n", HostKeyUnknown),
    ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nThe fingerprint for the "
     "ED25519 key sent by the remote host is\nSHA256:abc.\nOffending ED25519 key in "
     "/kh/a:3\nHost key verification failed.\n", HostKeyMismatch),
    ("ops@10.0.0.5: Permission denied (publickey).\n", AuthenticationFailed),
    ("ssh: Could not resolve hostname nowhere: Name or service not known\n", Unreachable),
    ("Unable to negotiate with 10.0.0.5 port 2222: no matching cipher found.\n", Unreachable),
    ("command-line line 0: Bad configuration option: nosuch\n", HostError),
    ("ssh: connect to host 10.0.0.5 port 2222: Connection refused\n", NetworkError),
])
def test_ssh_messages_map_to_the_paramiko_transports_errors(stderr, error):
    found = classify(SPEC, TARGET, stderr)
    assert type(found) is error
    if isinstance(found, HostError):
        assert found.host == "cp1"


def test_a_changed_key_names_the_offending_file_line():
    found = classify(SPEC, TARGET, "REMOTE HOST IDENTIFICATION HAS CHANGED\nSHA256:abc.\n"
                                   "Offending ED25519 key in /kh/a:3\n")
    assert "/kh/a:3" in found.message and "SHA256:abc" in found.message


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")
def test_certificates_pair_only_with_the_key_they_carry(tmp_path):
    for name in ("ca", "mine", "other"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(tmp_path / name)], check=True)
    subprocess.run(["ssh-keygen", "-q", "-s", str(tmp_path / "ca"), "-I", "deploy", "-n",
                    "root,ops", "-V", "-2d:-1d", str(tmp_path / "mine.pub")], check=True)
    mine = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "mine"))
    other = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "other"))
    cert_path = str(tmp_path / "mine-cert.pub")
    assert certs.read_for_key(cert_path, other) is None
    cert = certs.read_for_key(cert_path, mine)
    assert cert.key_id == "deploy" and cert.principals == ("root", "ops")
    ca_fp = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "ca.pub")], check=True,
                           capture_output=True, text=True).stdout.split()[1]
    assert cert.ca_fingerprint == ca_fp
    problems = cert.problems("admin")
    assert any(p.startswith("expired") for p in problems)
    assert any("do not include admin" in p for p in problems)


def test_stopping_a_master_that_missed_its_first_sigterm_does_not_wait_for_the_timeout():
    """OpenSSH's client loop can take a SIGTERM just before it sleeps in poll() and sleep on;
    this stand-in ignores the first SIGTERM the same way and exits on the next."""
    import time

    from harden.ssh.openssh import _EXIT_TIMEOUT, Master

    process = subprocess.Popen(["sh", "-c", "trap 'if [ -n \"$t\" ]; then exit 0; fi; t=1' TERM;"
                                " echo up; while :; do sleep 0.02; done"], stdout=subprocess.PIPE)
    assert process.stdout.readline() == b"up\n"       # the trap is set
    started = time.monotonic()
    Master(spec=None, hop=None, socket="", process=process, log="").stop()
    assert process.returncode == 0                    # it exited on a SIGTERM: never killed
    assert time.monotonic() - started < _EXIT_TIMEOUT / 2
    process.stdout.close()


def _fake_master(private: str) -> subprocess.Popen:
    """A process with a master's arguments (ControlMaster=yes, ControlPath in `private`) that
    never forks: a child between its fork and its exec carries the same arguments, and the sweep
    would rightly count it as a second master."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "ssh", "-o",
                             "ControlMaster=yes", "-o", f"ControlPath={private}/m", "-N", "node"])


def _owned_dir(base, name: str, owner: str, namespace: str | None = None):
    from harden.ssh.openssh import _pid_namespace

    private = base / f"harden-ssh-{name}"
    private.mkdir(mode=0o700)
    (private / "owner").write_text(f"{owner} {namespace or _pid_namespace()}")
    return private


def test_masters_of_a_killed_harden_are_stopped_and_their_directory_removed(tmp_path):
    from harden.ssh.openssh import _process_identity, sweep_stale_masters

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = _owned_dir(tmp_path, "stale", f"{dead.pid} 12345")
    live = _owned_dir(tmp_path, "live", _process_identity(os.getpid()))
    orphan, ours = _fake_master(str(stale)), _fake_master(str(live))
    try:
        assert sweep_stale_masters(str(tmp_path)) == [orphan.pid]
        assert orphan.wait(timeout=5) == -signal.SIGTERM
        assert not stale.exists()
        assert ours.poll() is None and live.exists()     # a running harden's master stays
    finally:
        for process in (orphan, ours):
            process.kill()
            process.wait()


def test_directories_without_an_owner_of_a_reused_pid_or_of_another_namespace(tmp_path):
    from harden.ssh.openssh import _process_identity, sweep_stale_masters

    unknown = tmp_path / "harden-ssh-old"        # an older harden's: no owner file, left alone
    unknown.mkdir()
    reused = _owned_dir(tmp_path, "reused", f"{os.getpid()} 1")   # same pid, other start time
    elsewhere = _owned_dir(tmp_path, "node", "1 1", namespace="pid:[1]")   # a lab node's pid 1
    assert _process_identity(os.getpid()) != f"{os.getpid()} 1"
    sweep_stale_masters(str(tmp_path))
    assert unknown.exists() and not reused.exists() and elsewhere.exists()


@pytest.mark.parametrize("stderr, advised", [
    ("ops@10.0.0.5: Permission denied (gssapi-with-mic).\n", True),
    ("ops@10.0.0.5: Permission denied (gssapi-keyex,gssapi-with-mic).\n", True),
    ("ops@10.0.0.5: Permission denied (publickey,gssapi-with-mic).\n", False),
    ("ops@10.0.0.5: Permission denied (publickey).\n", False),
])
def test_a_refusal_by_a_kerberos_only_server_says_what_ssh_needs(stderr, advised):
    found = classify(SPEC, TARGET, stderr)
    assert type(found) is AuthenticationFailed
    assert ("kinit" in found.message and "GSSAPIAuthentication yes" in found.message) is advised


@pytest.mark.parametrize("stderr, said, advice", [
    ('sign_and_send_pubkey: signing failed for ED25519-SK "/k/id": device not found\n'
     "ops@10.0.0.5: Permission denied (publickey).\n",
     "ssh could not sign with /k/id (ED25519-SK): device not found", "ssh"),
    ('sign_and_send_pubkey: signing failed for ECDSA-SK "/k/id" from agent: invalid format\n'
     "ops@10.0.0.5: Permission denied (publickey).\n",
     "ssh could not sign with /k/id (ECDSA-SK) from agent: invalid format", "agent"),
    ('sign_and_send_pubkey: signing failed for RSA "/k/id" from agent: agent refused '
     "operation\nops@10.0.0.5: Permission denied (publickey).\n",
     "ssh could not sign with /k/id (RSA) from agent: agent refused operation", None),
    ("ops@10.0.0.5: Permission denied (publickey).\n", None, None),
])
def test_a_key_ssh_could_not_sign_with_is_named_with_whoever_signs_for_a_fido_key(
        stderr, said, advice):
    # a FIDO key file: ssh asks the device (SecurityKeyProvider); a key in ssh-agent: the
    # agent does, through the library it was added with and allows (ssh-add -S, ssh-agent -P)
    found = classify(SPEC, TARGET, stderr)
    assert type(found) is AuthenticationFailed
    assert (said in found.message) if said else "could not sign" not in found.message
    assert ("SecurityKeyProvider=$SSH_SK_PROVIDER" in found.message) is (advice == "ssh")
    assert ("ssh-add -S" in found.message and "ssh-agent -P" in found.message) is \
        (advice == "agent")



def test_a_jump_masters_proxy_command_never_gets_shell_characters_from_the_inventory():
    # harden's own `ssh -W %h:%p` ProxyCommand runs in a shell with %h = HostName
    evil = replace(TARGET, address="x$(id>/tmp/harden-pwned)")
    with pytest.raises(HostError):
        master_options(replace(SPEC, target=evil), evil, "/priv/m", "/priv/j0")
