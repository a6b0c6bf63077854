"""sshd for one lab node: its host key and a config that keeps every path inside the lab dir.

The node sees the machine's /etc/ssh (through its /etc overlay), so nothing here relies on it:
the config names its own host key, pid file and authorized-keys files. PAM is off so that logins
depend only on the node's own /etc/passwd and /etc/shadow; DEBUG1 logging lets tests see
forwarded (direct-tcpip) channels in the log of a jump host.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from harden.errors import InputError

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")
# `--ssh-algorithms modern`: what widely used sshd hardening guides leave enabled. paramiko
# negotiates none of these names (it knows curve25519 only as curve25519-sha256@libssh.org and
# has no chacha20-poly1305), so such a node is reachable only with the openssh transport.
MODERN_ALGORITHMS = (
    "KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256",
    "Ciphers chacha20-poly1305@openssh.com",
    "MACs hmac-sha2-512-etm@openssh.com",
)
ALGORITHM_SETS = ("default", "modern")


def config_text(*, address: str, host_key: Path, pid_file: Path, authorized_keys_dir: Path,
                algorithms: str = "default", user_ca: Path | None = None,
                host_certificate: Path | None = None, extra_options: Sequence[str] = ()) -> str:
    """An sshd_config for one node.

    `algorithms="modern"` restricts key exchange, ciphers and MACs (MODERN_ALGORITHMS);
    `user_ca` makes sshd accept user certificates signed by that CA (TrustedUserCAKeys), the
    way fleets behind an SSH CA (Vault, step-ca, ...) are reached; `host_certificate` is the
    host key's certificate sshd presents (HostCertificate), which clients trusting the CA with
    an `@cert-authority` known_hosts line accept. `extra_options` are lines
    appended last (`lab up --sshd-option`): sshd keeps the first value of a keyword, so they add
    what the lab leaves unset (GSSAPIAuthentication, ...) and may end with `Match` blocks, which
    is how a lab line the lab sets already is changed for some users or addresses.

    Keys are looked up in the lab's authorized_keys dir first (root can always read it) and then
    in the user's home (non-root users cannot traverse a 0700 lab dir; sshd reads their key files
    with their own uid). StrictModes is off because lab dirs often live under world-writable /tmp.
    """
    return "\n".join([
        f"ListenAddress {address}:22",
        f"HostKey {host_key}",
        *([f"HostCertificate {host_certificate}"] if host_certificate else []),
        f"PidFile {pid_file}",
        f"AuthorizedKeysFile {authorized_keys_dir}/%u .ssh/authorized_keys",
        "UsePAM no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "StrictModes no",
        "LogLevel DEBUG1",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "AllowTcpForwarding yes",
        "X11Forwarding no",
        "MaxStartups 200:30:400",
        "MaxSessions 64",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp internal-sftp",
        *(MODERN_ALGORITHMS if algorithms == "modern" else ()),
        *([f"TrustedUserCAKeys {user_ca}"] if user_ca else []),
        *extra_options,
        "",
    ])


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_options(options: Sequence[str], env: Mapping[str, str]) -> None:
    """Refuse extra sshd lines and environment that could not be written as given: a line break
    would smuggle in more lines than were named, and a bad variable name is never exported."""
    for option in options:
        if not option.strip() or "\n" in option or "\r" in option or "\0" in option:
            raise InputError(f"--sshd-option {option!r}: one non-empty sshd_config line expected")
    for name, value in env.items():
        if not ENV_NAME.fullmatch(name) or "\0" in value:
            raise InputError(f"--sshd-env {name}={value!r}: NAME=VALUE expected, NAME made of "
                             "letters, digits and _")


def verify_options(options: Sequence[str], host_key: bytes) -> None:
    """`sshd -t` on a node config carrying `options`, in a temporary directory, before `up`
    writes or starts anything: a misspelt option is refused with sshd's own words rather than
    as nodes whose sshd never listens."""
    PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)     # sshd -t wants it, as `up` does
    with tempfile.TemporaryDirectory(prefix="harden-sshd-") as tmp:
        key = Path(tmp) / "host_key"
        key.write_bytes(host_key)
        key.chmod(0o600)
        config = Path(tmp) / "sshd_config"
        config.write_text(config_text(address="127.0.0.1", host_key=key,
                                      pid_file=Path(tmp) / "pid", authorized_keys_dir=Path(tmp),
                                      extra_options=options))
        done = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True,
                              timeout=30)
    if done.returncode != 0:
        said = " ".join(done.stderr.replace(str(config), "sshd_config").split())
        raise InputError(f"sshd refuses --sshd-option {' / '.join(options)}: "
                         f"{said or f'exit code {done.returncode}'}")


def command(config: Path, log: Path) -> list[str]:
    """sshd in the foreground (the node supervisor is its parent) logging to the node's log."""
    return [SSHD, "-D", "-f", str(config), "-E", str(log)]
