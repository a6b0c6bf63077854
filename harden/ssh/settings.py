"""Connection settings for one host, derived the way Ansible's ssh plugin derives them.

Ansible hands `ansible_host/port/user/ssh_private_key_file` to ssh as `-o` options *before*
`ansible_ssh_common_args` and `ansible_ssh_extra_args`, and ssh keeps the first value it sees,
so inventory variables win over the same setting in the ssh argument strings. This module
reproduces that, parses the ssh arguments harden understands, and collects a warning for
each one it ignores, so a user is never surprised by an option silently doing nothing.

Everything here is pure (no network); a missing key file is reported here, naming the host and
the path, before any connection is attempted.
"""

from __future__ import annotations

import getpass
import os
import shlex
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping

from harden.errors import HardenError, HostError, InputError

if TYPE_CHECKING:  # the inventory module is only needed for its Host shape
    from harden.inventory.loader import Host

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
SSH_CONNECTION_TYPES = ("ssh", "paramiko", "smart")
SSH_ARG_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")

# ssh's single-letter options that take a value; the rest are plain flags.
_FLAGS_WITH_VALUE = set("BbcDEeFIiJLlmOopQRSWw")
# Options harden accepts without effect because its behaviour already matches their intent
# (one connection kept for the run, no terminal, quiet by default).
_QUIETLY_ACCEPTED = {
    "controlmaster", "controlpersist", "controlpath", "batchmode", "loglevel",
    "serveralivecountmax", "requesttty", "checkhostip", "hashknownhosts",
}
_QUIET_FLAGS = set("qvTnxa")


class Secret:
    """A password that refuses to show itself in repr, str, logs or exception text."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class RunOptions:
    """Run-wide settings from the command line that shape every host's connection."""

    connect_timeout: float | None = None       # --timeout; a host's ConnectTimeout wins
    accept_new_host_keys: bool = False         # --accept-new-host-keys
    become_password: Secret | None = None      # --ask-become-pass or HARDEN_BECOME_PASSWORD
    retries: int = DEFAULT_RETRIES             # extra connection attempts on network errors
    inventory_hosts: Mapping[str, Any] = field(default_factory=dict)  # to resolve jump names
    local_user: str = field(default_factory=getpass.getuser)


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to log in to: a jump host or the target itself."""

    name: str                                  # inventory name, or the jump spec as written
    address: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()            # explicit identities, tried first, in order
    password: Secret | None = None
    identities_only: bool = False              # IdentitiesOnly=yes: no agent, no default keys
    password_auth: bool = True                 # PasswordAuthentication=no turns it off
    host_key_alias: str | None = None

    @property
    def label(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


@dataclass(frozen=True)
class ConnectionSpec:
    """Everything needed to open and use the one SSH session of one host."""

    host: str
    target: Endpoint
    jumps: tuple[Endpoint, ...] = ()
    proxy_command: str | None = None
    known_hosts_files: tuple[str, ...] = (DEFAULT_KNOWN_HOSTS,)
    record_known_hosts_file: str = DEFAULT_KNOWN_HOSTS   # where accepted new keys are written
    host_key_policy: str = "yes"               # yes | accept-new | no
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    keepalive: int = 0
    compress: bool = False
    become: bool = False
    become_user: str = "root"
    become_password: Secret | None = None
    warnings: tuple[str, ...] = ()

    @property
    def route(self) -> str:
        """The path to the host in words, e.g. 'root@10.0.0.5:22 via ops@bastion:22'."""
        if not self.jumps:
            return self.target.label
        return f"{self.target.label} via " + " -> ".join(j.label for j in self.jumps)


@dataclass
class _SshArgs:
    """What the ssh argument strings of one host say, before merging with ansible_* vars."""

    options: dict[str, str] = field(default_factory=dict)   # lower-case keyword -> first value
    identity_files: list[str] = field(default_factory=list)
    known_hosts_files: list[str] = field(default_factory=list)
    jumps: str | None = None
    compress: bool = False
    warnings: list[str] = field(default_factory=list)


def connection_spec(host: Host, options: RunOptions) -> ConnectionSpec:
    """Derive a host's ConnectionSpec; HostError names the host and setting on bad values."""
    hv = host.vars
    _check_connection_type(host)
    args = parse_ssh_args(host.name, _ssh_arg_strings(hv))
    target = _target_endpoint(host, args, options)
    policy = _host_key_policy(host.name, args, options)
    files = _known_hosts_files(args)
    record = args.known_hosts_files[0] if args.known_hosts_files else DEFAULT_KNOWN_HOSTS
    jumps = _jump_endpoints(host.name, args.jumps, target, options)
    become_method = str(hv.get("ansible_become_method", "sudo"))
    if _truthy(hv.get("ansible_become", False)) and become_method != "sudo":
        raise HostError(host.name, f"become method {become_method!r} is not supported (only sudo)",
                        "ansible_become_method")
    return ConnectionSpec(
        host=host.name,
        target=target,
        jumps=jumps,
        proxy_command=_proxy_command(host.name, args, target),
        known_hosts_files=files,
        record_known_hosts_file=record,
        host_key_policy=policy,
        connect_timeout=_connect_timeout(host.name, args, options),
        retries=options.retries,
        keepalive=_int_option(host.name, args, "serveraliveinterval", 0),
        compress=args.compress or _yes(args.options.get("compression", "no")),
        become=_truthy(hv.get("ansible_become", False)),
        become_user=str(hv.get("ansible_become_user") or "root"),
        become_password=_become_password(hv, options),
        warnings=tuple(args.warnings),
    )


def parse_ssh_args(host: str, strings: list[tuple[str, str]]) -> _SshArgs:
    """Parse ssh command-line arguments (shlex-split) from (variable name, value) pairs."""
    out = _SshArgs()
    for var, text in strings:
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise HostError(host, f"cannot parse ssh arguments {text!r}: {exc}", var) from None
        _parse_words(host, var, words, out)
    return out


def _parse_words(host: str, var: str, words: list[str], out: _SshArgs) -> None:
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or len(word) < 2:
            out.warnings.append(f"{var}: ignored argument {word!r} (not an ssh option)")
            i += 1
            continue
        flag, rest = word[1], word[2:]
        if flag in _FLAGS_WITH_VALUE:
            if not rest:
                if i + 1 >= len(words):
                    raise HostError(host, f"ssh option -{flag} needs a value", var)
                i += 1
                rest = words[i]
            _apply_flag(host, var, flag, rest, out)
        else:
            _apply_plain_flags(var, word[1:], out)
        i += 1


def _apply_plain_flags(var: str, letters: str, out: _SshArgs) -> None:
    for letter in letters:
        if letter == "C":
            out.compress = True
        elif letter not in _QUIET_FLAGS:
            out.warnings.append(f"{var}: ssh flag -{letter} is ignored by harden")


def _apply_flag(host: str, var: str, flag: str, value: str, out: _SshArgs) -> None:
    if flag == "o":
        _apply_option(host, var, value, out)
    elif flag == "i":
        out.identity_files.append(value)
    elif flag == "J":
        out.jumps = out.jumps if out.jumps is not None else value
    elif flag == "p":
        out.options.setdefault("port", value)
    elif flag == "l":
        out.options.setdefault("user", value)
    else:
        out.warnings.append(f"{var}: ssh option -{flag} {value} is ignored by harden")


def _apply_option(host: str, var: str, text: str, out: _SshArgs) -> None:
    """One `-o Keyword=value` (or `Keyword value`); first value wins, as in ssh."""
    key, sep, value = text.partition("=")
    if not sep:
        key, _, value = text.strip().partition(" ")
    key, value = key.strip().lower(), value.strip()
    if not key or not value:
        raise HostError(host, f"malformed ssh option -o {text!r}", var)
    if key == "identityfile":
        out.identity_files.append(value)
    elif key == "userknownhostsfile":
        if not out.known_hosts_files:
            out.known_hosts_files.extend(shlex.split(value))
    elif key == "proxyjump":
        out.jumps = out.jumps if out.jumps is not None else value
    elif key in _UNDERSTOOD_OPTIONS:
        out.options.setdefault(key, value)
    elif key not in _QUIETLY_ACCEPTED:
        out.warnings.append(f"{var}: ssh option {key!r} is ignored by harden")


_UNDERSTOOD_OPTIONS = {
    "port", "user", "stricthostkeychecking", "connecttimeout", "proxycommand",
    "identitiesonly", "passwordauthentication", "hostkeyalias", "serveraliveinterval",
    "compression",
}


def _ssh_arg_strings(hv: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(var, str(hv[var])) for var in SSH_ARG_VARS if hv.get(var)]


def _check_connection_type(host: Host) -> None:
    kind = str(host.vars.get("ansible_connection", "ssh"))
    if kind not in SSH_CONNECTION_TYPES:
        raise HostError(host.name, f"connection type {kind!r} is not supported (harden uses ssh)",
                        "ansible_connection")


def _target_endpoint(host: Host, args: _SshArgs, options: RunOptions) -> Endpoint:
    hv = host.vars
    address = str(_first(hv, "ansible_host", "ansible_ssh_host") or host.name)
    port = _port(host.name, _first(hv, "ansible_port", "ansible_ssh_port") or
                 args.options.get("port") or 22, "ansible_port")
    user = str(_first(hv, "ansible_user", "ansible_ssh_user") or args.options.get("user") or
               options.local_user)
    key_var = _first(hv, "ansible_ssh_private_key_file", "ansible_private_key_file")
    keys = ([str(key_var)] if key_var else []) + args.identity_files
    password = _first(hv, "ansible_password", "ansible_ssh_pass", "ansible_ssh_password")
    return Endpoint(
        name=host.name, address=address, port=port, user=user,
        key_files=_existing_key_files(host.name, keys, "ansible_ssh_private_key_file"),
        password=Secret(str(password)) if password is not None else None,
        identities_only=_yes(args.options.get("identitiesonly", "no")),
        password_auth=_yes(args.options.get("passwordauthentication", "yes")),
        host_key_alias=args.options.get("hostkeyalias"),
    )


def _existing_key_files(host: str, paths: list[str], setting: str) -> tuple[str, ...]:
    """Expand and check explicit key files: a missing one is a mistake worth stopping for."""
    found = []
    for raw in paths:
        path = os.path.abspath(os.path.expanduser(raw))
        if not os.path.isfile(path):
            raise HostError(host, f"private key file {path} does not exist", setting)
        found.append(path)
    return tuple(dict.fromkeys(found))


def _jump_endpoints(host: str, spec: str | None, target: Endpoint,
                    options: RunOptions) -> tuple[Endpoint, ...]:
    if spec is None or spec.strip().lower() == "none":
        return ()
    return tuple(_jump_endpoint(host, part.strip(), target, options)
                 for part in spec.split(",") if part.strip())


def _jump_endpoint(host: str, text: str, target: Endpoint, options: RunOptions) -> Endpoint:
    """A jump as `[user@]host[:port]` (or ssh://...); an inventory name brings its own settings."""
    raw = text[len("ssh://"):] if text.startswith("ssh://") else text
    user, _, hostport = raw.rpartition("@")
    name, port = _split_host_port(host, hostport)
    inv_host = options.inventory_hosts.get(name)
    if inv_host is not None and inv_host.name != host:
        base = _target_endpoint(inv_host, parse_ssh_args(inv_host.name,
                                                         _ssh_arg_strings(inv_host.vars)), options)
        return replace(base, name=text, user=user or base.user, port=port or base.port)
    return Endpoint(name=text, address=name, port=port or 22, user=user or options.local_user,
                    key_files=target.key_files, identities_only=target.identities_only,
                    password_auth=False)


def _split_host_port(host: str, text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        name, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        name, _, port_text = text.partition(":")
    else:
        name, port_text = text, ""
    if not name:
        raise HostError(host, f"malformed jump host {text!r}", "ProxyJump")
    return name, (_port(host, port_text, "ProxyJump") if port_text else None)


def _proxy_command(host: str, args: _SshArgs, target: Endpoint) -> str | None:
    command = args.options.get("proxycommand")
    if command is None or command.lower() == "none":
        return None
    if args.jumps is not None and args.jumps.lower() != "none":
        raise HostError(host, "ProxyCommand and ProxyJump are both set; keep one",
                        "ansible_ssh_common_args")
    return (command.replace("%h", target.address).replace("%p", str(target.port))
            .replace("%r", target.user).replace("%%", "%"))


def _host_key_policy(host: str, args: _SshArgs, options: RunOptions) -> str:
    """The host's own StrictHostKeyChecking wins; else --accept-new-host-keys; else strict."""
    value = args.options.get("stricthostkeychecking")
    if value is None:
        return "accept-new" if options.accept_new_host_keys else "yes"
    value = value.lower()
    if value in ("yes", "ask"):
        return "yes"
    if value in ("no", "off"):
        return "no"
    if value == "accept-new":
        return value
    raise HostError(host, f"unknown StrictHostKeyChecking value {value!r}",
                    "StrictHostKeyChecking")


def _known_hosts_files(args: _SshArgs) -> tuple[str, ...]:
    files = [DEFAULT_KNOWN_HOSTS, *args.known_hosts_files, GLOBAL_KNOWN_HOSTS]
    return tuple(dict.fromkeys(os.path.expanduser(f) for f in files))


def _connect_timeout(host: str, args: _SshArgs, options: RunOptions) -> float:
    value = args.options.get("connecttimeout")
    if value is None:
        return options.connect_timeout or DEFAULT_CONNECT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        raise HostError(host, f"ConnectTimeout {value!r} is not a number",
                        "ConnectTimeout") from None
    if seconds <= 0:
        raise HostError(host, "ConnectTimeout must be positive", "ConnectTimeout")
    return seconds


def _become_password(hv: Mapping[str, Any], options: RunOptions) -> Secret | None:
    """A host's own become password wins over the run-wide one (as Ansible's variables do)."""
    value = _first(hv, "ansible_become_password", "ansible_become_pass", "ansible_sudo_pass")
    return Secret(str(value)) if value is not None else options.become_password


def _int_option(host: str, args: _SshArgs, key: str, default: int) -> int:
    value = args.options.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise HostError(host, f"{key} {value!r} is not a whole number", key) from None


def _port(host: str, value: Any, setting: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise HostError(host, f"port {value!r} is not a number", setting) from None
    if not 0 < port < 65536:
        raise HostError(host, f"port {port} is out of range", setting)
    return port


def _first(hv: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if hv.get(name) not in (None, ""):
            return hv[name]
    return None


def _truthy(value: Any) -> bool:
    """Ansible booleans: true/yes/on/1 in any case, or a real bool."""
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "yes", "on", "1", "y", "t")


def _yes(value: str) -> bool:
    return value.strip().lower() in ("yes", "true", "on")


def run_become_password(ask: bool, prompt=getpass.getpass) -> Secret | None:
    """The run-wide sudo password: asked once (--ask-become-pass) or HARDEN_BECOME_PASSWORD."""
    if ask:
        return Secret(prompt("BECOME password: "))
    value = (os.environ.get("HARDEN_BECOME_PASSWORD") or "").rstrip("\r\n")
    return Secret(value) if value else None


def run_options(*, connect_timeout: float | None = None, accept_new_host_keys: bool = False,
                ask_become_pass: bool = False) -> RunOptions:
    """RunOptions from the command line's connection flags (the sudo password asked once)."""
    if connect_timeout is not None and connect_timeout <= 0:
        raise InputError("--timeout must be a positive number of seconds")
    return RunOptions(connect_timeout=connect_timeout, accept_new_host_keys=accept_new_host_keys,
                      become_password=run_become_password(ask_become_pass))


def connection_specs(hosts, options: RunOptions, inventory=None) -> dict[str, ConnectionSpec]:
    """Every selected host's spec, or one error listing every host whose settings are wrong.

    All hosts are worked out before any is contacted, so a typo in the inventory stops the
    command with exit 1 and a complete list of what to fix, having touched nothing. With the
    inventory, jump hosts may be named by their inventory names.
    """
    if inventory is not None:
        options = replace(options, inventory_hosts=inventory.hosts)
    specs, problems = {}, []
    for host in hosts:
        try:
            specs[host.name] = connection_spec(host, options)
        except HostError as exc:
            problems.append(str(exc))
    if problems:
        raise HardenError("\n".join(problems))
    return specs


def resolve_targets(inventories, limit: str | None, *, warn, connect_timeout: float | None = None,
                    accept_new_host_keys: bool = False, ask_become_pass: bool = False):
    """(hosts, specs) for a command that logs in: the inventory loaded, --limit applied, every
    host's connection worked out before any is contacted, ignored ssh options warned about."""
    from harden.inventory.loader import load_inventory

    inventory = load_inventory(inventories)
    hosts = inventory.select(None, limit=limit)
    options = run_options(connect_timeout=connect_timeout,
                          accept_new_host_keys=accept_new_host_keys,
                          ask_become_pass=ask_become_pass)
    specs = connection_specs(hosts, options, inventory)
    print_warnings(specs, warn)
    return hosts, specs


def print_warnings(specs: Mapping[str, ConnectionSpec], echo) -> None:
    """Once per host: the ssh options harden understood but does not act on."""
    for spec in specs.values():
        for warning in spec.warnings:
            echo(f"warning: host {spec.host}: {warning}")
