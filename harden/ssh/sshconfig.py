"""What the OpenSSH client configuration says about one host, resolved as `ssh -G` does.

Why `ssh -G` itself and not a parser of our own: it is the reference implementation. It reads
`~/.ssh/config` (or `-F FILE`) and `/etc/ssh/ssh_config` with their `Include`s, evaluates
`Host` and every `Match` criterion (host, user, exec, canonical, final), expands tokens and
applies first-value-wins exactly as the ssh that reaches the fleet will. paramiko's SSHConfig
has no `Include` and differs in details, so it is used only when no ssh client is installed.

`ssh -G` prints every option, defaults included; `ConfigValues` tells the defaults apart where
the difference matters (identity files, known_hosts files, `ask`, `none`), so a value only
counts as "from the config" when a config file really set it.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import pwd
import shutil
import subprocess
import threading
from dataclasses import dataclass, field

from harden.errors import HostError

SSH_G_TIMEOUT = 10.0
# The identities ssh tries when no IdentityFile is configured (ssh -G lists them then).
_DEFAULT_IDENTITIES = {"~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ecdsa_sk",
                       "~/.ssh/id_ed25519", "~/.ssh/id_ed25519_sk", "~/.ssh/id_xmss",
                       "~/.ssh/id_dsa"}
_ALWAYS_DEFAULT = {"~/.ssh/id_rsa", "~/.ssh/id_ecdsa", "~/.ssh/id_ed25519"}
_DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
_GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


@dataclass(frozen=True)
class ConfigValues:
    """Lower-case keyword -> every value the config gave (several for IdentityFile)."""

    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    source: str = "none"                  # "ssh -G", "paramiko" or "none"

    def get(self, key: str) -> str | None:
        found = self.values.get(key)
        return found[0] if found else None

    def all(self, key: str) -> tuple[str, ...]:
        return self.values.get(key, ())

    def identity_files(self) -> tuple[str, ...]:
        """Configured IdentityFiles; () when ssh would only try its defaults. `ssh -G` lists
        the whole default set then (which set depends on ssh's version); one or two default
        paths alone were named in the config, and only those are tried."""
        files = self.all("identityfile")
        return () if _ALWAYS_DEFAULT <= set(files) <= _DEFAULT_IDENTITIES else files

    def known_hosts_files(self) -> tuple[str, ...]:
        """Configured UserKnownHostsFiles, with `%` doubled (ssh -G printed them expanded;
        harden expands them once more); () when they are ssh's defaults, both, in order (one
        default file alone, or the two swapped, is a choice: ssh writes to the first)."""
        files = tuple(w for value in self.all("userknownhostsfile") for w in value.split())
        home = passwd_home()
        as_default = tuple(f.replace(home, "~", 1) if f.startswith(home + "/") else
                           f.replace(os.path.expanduser("~"), "~", 1) for f in files)
        if as_default == _DEFAULT_KNOWN_HOSTS:
            return ()
        return tuple(f.replace("%", "%%") for f in files)

    def global_known_hosts_files(self) -> tuple[str, ...]:
        """Configured GlobalKnownHostsFiles (`ssh -G` prints them unexpanded); () when they
        are ssh's defaults."""
        files = tuple(w for value in self.all("globalknownhostsfile") for w in value.split())
        return () if files == _GLOBAL_KNOWN_HOSTS else files

    def setting(self, key: str) -> str | None:
        """A single-valued option, None when it is ssh's "not set" (none / ask)."""
        value = self.get(key)
        if value is None or value.lower() == "none":
            return None
        if key == "stricthostkeychecking" and value.lower() == "ask":
            return None      # ssh would ask a human; harden's flag --accept-new-host-keys does
        return value


# The keywords harden takes from a config; a config without any of them changes nothing here.
RELEVANT = {"hostname", "user", "port", "identityfile", "certificatefile", "proxyjump",
            "proxycommand", "userknownhostsfile", "stricthostkeychecking", "connecttimeout",
            "identitiesonly", "passwordauthentication", "hostkeyalias", "serveraliveinterval",
            "compression", "identityagent", "globalknownhostsfile",
            # not used, but warned about when set (settings.UNHANDLED_CONFIG)
            "addressfamily", "bindaddress", "bindinterface", "ciphers", "macs",
            "kexalgorithms", "hostkeyalgorithms", "pubkeyacceptedalgorithms",
            "casignaturealgorithms", "knownhostscommand", "verifyhostkeydns",
            "preferredauthentications", "pubkeyauthentication", "requiredrsasize"}
SYSTEM_CONFIG = "/etc/ssh/ssh_config"


def ssh_client() -> str | None:
    return shutil.which("ssh")


def local_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def passwd_home() -> str:
    """ssh's `~`: the passwd entry's home, which $HOME does not change."""
    return pwd.getpwuid(os.getuid()).pw_dir


def resolve(host: str, name: str, *, config_file: str | None = None, user: str | None = None,
            port: int | None = None) -> ConfigValues:
    """The configuration of destination `name` (user/port from the command line, if any)."""
    if not may_matter(config_file):
        return ConfigValues()
    ssh = ssh_client()
    if ssh is not None:
        return _ssh_g(ssh, host, name, config_file, user, port)
    return _paramiko_lookup(host, name, config_file)


def may_matter(config_file: str | None) -> bool:
    """Whether any config file ssh would read (Includes followed) sets a keyword harden uses.

    Debian's stock /etc/ssh/ssh_config sets none of them; skipping `ssh -G` then saves a
    process per host and changes nothing.
    """
    if config_file:
        return True       # asked for by name: always read as ssh reads it
    user_dir = os.path.join(passwd_home(), ".ssh")
    roots = [(os.path.join(user_dir, "config"), user_dir),
             (SYSTEM_CONFIG, os.path.dirname(SYSTEM_CONFIG))]
    seen: set[str] = set()
    return any(_sets_relevant(path, base, seen) for path, base in roots)


def _sets_relevant(path: str, base: str, seen: set[str]) -> bool:
    if path in seen or len(seen) > 256:
        return False
    seen.add(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    for line in lines:
        words = line.strip().replace("=", " ", 1).split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0].lower()
        if keyword in RELEVANT:
            return True
        if keyword == "include":
            for pattern in words[1:]:
                pattern = os.path.join(base, os.path.expanduser(pattern))
                if any(_sets_relevant(p, base, seen) for p in sorted(glob.glob(pattern))):
                    return True
    return False


_DEFAULTS: list[ConfigValues] = []
_DEFAULTS_LOCK = threading.Lock()


def defaults() -> ConfigValues:
    """What `ssh -G` prints with no config file at all (-F /dev/null): ssh's own defaults,
    to tell a keyword a config really set from one ssh -G prints anyway. Once per run; empty
    when there is no ssh client or it fails."""
    with _DEFAULTS_LOCK:
        if not _DEFAULTS:
            ssh = ssh_client()
            try:
                found = _ssh_g(ssh, "defaults", "harden-defaults.invalid", "/dev/null",
                               None, None) if ssh else ConfigValues()
            except HostError:
                found = ConfigValues()
            _DEFAULTS.append(found)
        return _DEFAULTS[0]


def _ssh_g(ssh: str, host: str, name: str, config_file: str | None, user: str | None,
           port: int | None) -> ConfigValues:
    argv = [ssh, "-G"]
    if config_file:
        argv += ["-F", config_file]
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", str(port)]
    argv += ["--", name]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=SSH_G_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise HostError(host, f"`ssh -G {name}` did not answer within {SSH_G_TIMEOUT:g}s "
                              "(a Match exec in the ssh config?)", "ssh config") from None
    if done.returncode != 0:
        detail = " ".join(line.strip() for line in done.stderr.splitlines()
                          if line.strip() and "Pseudo-terminal" not in line)
        raise HostError(host, f"ssh config: {detail or f'ssh -G exit {done.returncode}'}",
                        f"-F {config_file}" if config_file else "~/.ssh/config")
    values: dict[str, list[str]] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" ")
        if key:
            values.setdefault(key.lower(), []).append(value.strip())
    return ConfigValues({k: tuple(v) for k, v in values.items()}, "ssh -G")


def _paramiko_lookup(host: str, name: str, config_file: str | None) -> ConfigValues:
    """Without an ssh client: paramiko's reading of the user's (or -F) config file (its
    `Match exec` lines run through invoke, loaded then: harden.ssh.deferred_invoke)."""
    from harden.ssh.deferred_invoke import defer_invoke
    defer_invoke()
    import paramiko

    path = os.path.expanduser(config_file or "~/.ssh/config")
    if not os.path.isfile(path):
        return ConfigValues()
    try:
        found = paramiko.SSHConfig.from_path(path).lookup(name)
    except (OSError, paramiko.ConfigParseError, paramiko.CouldNotCanonicalize) as exc:
        raise HostError(host, f"ssh config {path}: {exc}", "ssh config") from None
    values = {key.lower(): tuple(v if isinstance(v, list) else [str(v)])
              for key, v in found.items()}
    return ConfigValues(values, "paramiko")


def expand_path(path: str, *, host: str, user: str, port: int) -> str:
    """A config path with ssh's common tokens (%d %u %h %r %p %%) and ~ expanded; the host
    lower-cased as ssh does (not an IP address). ValueError when a host or user name would
    put a `/` into the path (a name never has one; an inventory must not pick directories)."""
    host = canonical_host(host)
    tokens = {"d": os.path.expanduser("~"), "u": local_user(), "h": host, "r": user,
              "p": str(port), "%": "%"}
    out, i = [], 0
    while i < len(path):
        if path[i] == "%" and i + 1 < len(path) and path[i + 1] in tokens:
            if path[i + 1] in "hr" and "/" in tokens[path[i + 1]]:
                raise ValueError(f"%{path[i + 1]} would be {tokens[path[i + 1]]!r}, "
                                 "which has a /")
            out.append(tokens[path[i + 1]])
            i += 2
        else:
            out.append(path[i])
            i += 1
    return os.path.abspath(os.path.expanduser("".join(out)))


def canonical_host(name: str) -> str:
    """The host name as ssh uses it in %h and for host certificates' principals: lower-cased
    (ssh.c), an IP address as written."""
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        return name.lower()
