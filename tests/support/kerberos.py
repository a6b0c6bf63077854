"""A throwaway MIT Kerberos realm for lab tests: a KDC on a loopback address of the test's own
range, its database, principals and keytabs in one temporary directory.

Nothing here reads or writes the machine's Kerberos files: every tool runs with KRB5_CONFIG and
KRB5_KDC_PROFILE naming the directory's own krb5.conf and kdc.conf, and the credential cache and
keytabs live there too (`env` is what a client such as `ssh` or `harden` needs). The KDC is
`krb5kdc -n` (foreground), our child, killed by `stop` however the test ended.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

# Debian package per tool: `make syspkgs` installs them (a missing one fails the test, naming it)
TOOLS = {"/usr/sbin/krb5kdc": "krb5-kdc", "/usr/sbin/kdb5_util": "krb5-kdc",
         "/usr/sbin/kadmin.local": "krb5-admin-server", "/usr/bin/kinit": "krb5-user",
         "/usr/bin/kdestroy": "krb5-user", "/usr/bin/klist": "krb5-user"}
REALM = "HARDEN.LAB"


def missing_tools() -> str | None:
    """What to install for a KDC, or None when every tool is there."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if not os.access(tool, os.X_OK)})
    if not missing:
        return None
    return (f"the Kerberos test needs {', '.join(missing)}: run `make syspkgs` or "
            f"`apt-get install -y {' '.join(missing)}`")


class Realm:
    """A realm whose KDC listens on `address`:88 (UDP and TCP)."""

    def __init__(self, directory: Path, address: str):
        self.dir = directory
        self.address = address
        self.kdc: subprocess.Popen | None = None
        # the users' keys, for kinit only: never in `env` as KRB5_CLIENT_KTNAME, with which a
        # GSSAPI client gets tickets by itself and "no ticket" could not be tested
        self.client_keytab = directory / "client.keytab"
        self.env = {"KRB5_CONFIG": str(directory / "krb5.conf"),
                    "KRB5_KDC_PROFILE": str(directory / "kdc.conf"),
                    "KRB5CCNAME": f"FILE:{directory / 'ccache'}",
                    # the replay cache of sshd and the KDC: here, not in /var/tmp
                    "KRB5RCACHEDIR": str(directory)}

    def _run(self, *argv: str, stdin: str | None = None) -> str:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30,
                              env={**os.environ, **self.env})
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} -> rc {done.returncode}: {done.stderr}")
        return done.stdout

    def create(self) -> None:
        """krb5.conf, kdc.conf and the database; the KDC started and answering."""
        # No DNS anywhere: the realm is the default one, KDC named by address, and host names
        # (the nodes' IP addresses) are used as given, never canonicalised or reverse-resolved.
        (self.dir / "krb5.conf").write_text(
            f"[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n"
            " dns_lookup_realm = false\n dns_canonicalize_hostname = false\n rdns = false\n"
            " udp_preference_limit = 1\n"
            f"[realms]\n {REALM} = {{\n  kdc = {self.address}:88\n }}\n")
        (self.dir / "kdc.conf").write_text(
            f"[kdcdefaults]\n kdc_listen = {self.address}:88\n"
            f" kdc_tcp_listen = {self.address}:88\n"
            f"[realms]\n {REALM} = {{\n  database_name = {self.dir / 'principal'}\n"
            f"  key_stash_file = {self.dir / 'stash'}\n  acl_file = {self.dir / 'kadm5.acl'}\n"
            "  supported_enctypes = aes256-cts-hmac-sha1-96:normal\n }\n"
            f"[logging]\n kdc = FILE:{self.dir / 'kdc.log'}\n")
        (self.dir / "kadm5.acl").write_text("")
        self._run("kdb5_util", "create", "-s", "-r", REALM, "-P", os.urandom(12).hex())
        with open(self.dir / "kdc.stderr", "wb") as stderr:
            self.kdc = subprocess.Popen(["krb5kdc", "-n", "-P", str(self.dir / "kdc.pid")],
                                        env={**os.environ, **self.env},
                                        stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.kdc.poll() is not None:
                raise AssertionError(f"krb5kdc exited {self.kdc.returncode}: "
                                     f"{(self.dir / 'kdc.stderr').read_text()}")
            with contextlib.suppress(OSError), socket.create_connection((self.address, 88), 0.2):
                return
            time.sleep(0.05)
        raise AssertionError(f"krb5kdc not listening on {self.address}:88 after {timeout}s")

    def add_host(self, address: str, keytab: Path) -> str:
        """host/<address>: the name ssh asks a ticket for when it connects to that address
        (GSSAPITrustDNS is off: the HostName as given), its key added to `keytab`."""
        principal = f"host/{address}@{REALM}"
        self._run("kadmin.local", "-q", f"addprinc -randkey {principal}")
        self._run("kadmin.local", "-q", f"ktadd -k {keytab} {principal}")
        return principal

    def add_user(self, name: str) -> str:
        """A user principal with a random key, kept in the client keytab for `kinit`."""
        principal = f"{name}@{REALM}"
        self._run("kadmin.local", "-q", f"addprinc -randkey {principal}")
        self._run("kadmin.local", "-q", f"ktadd -k {self.client_keytab} {principal}")
        return principal

    def kinit(self, principal: str) -> None:
        """A ticket for `principal` in the realm's credential cache (from the client keytab)."""
        self._run("kinit", "-k", "-t", str(self.client_keytab), principal)

    def kdestroy(self) -> None:
        self._run("kdestroy", "-A")

    def stop(self) -> None:
        if self.kdc is not None and self.kdc.poll() is None:
            self.kdc.kill()
        if self.kdc is not None:
            self.kdc.wait()


@contextlib.contextmanager
def private_dir():
    """A new 0700 temporary directory, removed at the end however the block ends."""
    directory = Path(tempfile.mkdtemp(prefix="harden-krb5-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running(directory: Path, address: str):
    """A realm in `directory` with its KDC on `address`, killed at the end, also when the block
    raises. The directory's paths (Realm.env) may be handed out before: nothing reads them
    before a login needs them."""
    kdc = Realm(directory, address)
    try:
        kdc.create()
        yield kdc
    finally:
        kdc.stop()
