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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping

from harden.errors import HardenError, HostError, InputError
from harden.ssh import sshconfig

if TYPE_CHECKING:  # the inventory module is only needed for its Host shape
    from harden.inventory.loader import Host

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
# ssh's UserKnownHostsFile and GlobalKnownHostsFile defaults (ssh_config(5)); `none`: no file
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "~/.ssh/known_hosts2")
GLOBAL_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")
# the paramiko transport's default keys; the FIDO ones (which ssh tries too) only so that a
# login that fails names them as keys it cannot use (ssh-agent signs with them: key_files)
DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa",
                      "~/.ssh/id_ed25519_sk", "~/.ssh/id_ecdsa_sk")
SSH_CONNECTION_TYPES = ("ssh", "paramiko", "smart")
TRANSPORTS = ("paramiko", "openssh")
DEFAULT_TRANSPORT = "paramiko"
SSH_ARG_VARS = ("ansible_ssh_args", "ansible_ssh_common_args", "ansible_ssh_extra_args")
HOST_KEY_CHECKING_VARS = ("ansible_host_key_checking", "ansible_ssh_host_key_checking")

# ssh's single-letter options that take a value; the rest are plain flags.
_FLAGS_WITH_VALUE = set("BbcDEeFIiJLlmOopQRSWw")
# Options the OpenSSH transport sets itself (one master per host, never a prompt): never passed on.
_TRANSPORT_OWNED = {"controlmaster", "controlpersist", "controlpath", "batchmode"}
# Options harden accepts without effect because its behaviour already matches their intent
# (one connection kept for the run, no terminal, quiet by default).
_QUIETLY_ACCEPTED = {
    "controlmaster", "controlpersist", "controlpath", "batchmode", "loglevel",
    "serveralivecountmax", "requesttty", "checkhostip", "hashknownhosts",
}
_QUIET_FLAGS = set("qvTnxa")
# Jump hosts in one chain, their own ProxyJumps included: a longer chain is a config mistake.
MAX_JUMPS = 10


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
    transport: str | None = None               # --transport; a host's harden_transport wins
    read_ssh_config: bool = True               # resolve hosts through the OpenSSH config


@dataclass(frozen=True)
class Endpoint:
    """One SSH server to log in to: a jump host or the target itself."""

    name: str                                  # inventory name, or the jump spec as written
    address: str
    port: int
    user: str
    key_files: tuple[str, ...] = ()            # explicit identities, tried first, in order
    password: Secret | None = None
    identities_only: bool = False              # IdentitiesOnly=yes: only key_files (the agent's
                                               # copy of one of them too), no other agent keys
    default_keys: bool = True                  # ssh's default key files are tried: no identity
                                               # file was named (one missing counts as named)
    identity_agent: str | None = None          # IdentityAgent: a socket path, "none",
                                               # "SSH_AUTH_SOCK" or "$VAR"; None: $SSH_AUTH_SOCK
    password_auth: bool = True                 # PasswordAuthentication=no turns it off
    host_key_alias: str | None = None
    cert_files: tuple[str, ...] = ()           # CertificateFile: certificates for the keys
    host_keys: HostKeyCheck | None = None      # a jump host's own known_hosts and policy;
                                               # None: the target's (ConnectionSpec.host_keys)
    proxy_command: str | None = None           # a first jump host's own ProxyCommand (tokens
                                               # expanded); the target's is ConnectionSpec's

    @property
    def label(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


@dataclass(frozen=True)
class HostKeyCheck:
    """The known_hosts files and policy that judge one hop's host key. A jump host has its
    own, as the ssh that ssh starts for a ProxyJump reads its own config and none of the
    target's -o options: its own files come first (new keys are recorded there), then the
    target's, as harden always read them; a key matching an entry in any of them is
    accepted, and a key no entry holds, where some entry holds another, is a mismatch."""

    user_files: tuple[str, ...]            # UserKnownHostsFile, expanded; () = none
    global_files: tuple[str, ...]          # GlobalKnownHostsFile
    policy: str                            # yes | accept-new | no

    @property
    def files(self) -> tuple[str, ...]:
        """Every file read, the user's first (as ssh reads them)."""
        return tuple(dict.fromkeys((*self.user_files, *self.global_files)))

    @property
    def record(self) -> str | None:
        """Where a newly accepted key is written: the first user file; None: none."""
        return self.user_files[0] if self.user_files else None

    def also(self, user_files: tuple[str, ...], global_files: tuple[str, ...]) -> HostKeyCheck:
        """These files read after the own ones (a jump host also trusts the files the target's
        -o options name, as harden always did)."""
        return replace(self, user_files=tuple(dict.fromkeys((*self.user_files, *user_files))),
                       global_files=tuple(dict.fromkeys((*self.global_files, *global_files))))


@dataclass(frozen=True)
class ConnectionSpec:
    """Everything needed to open and use the one SSH session of one host."""

    host: str
    target: Endpoint
    jumps: tuple[Endpoint, ...] = ()
    proxy_command: str | None = None
    known_hosts_files: tuple[str, ...] = DEFAULT_KNOWN_HOSTS    # UserKnownHostsFile; () = none
    global_known_hosts_files: tuple[str, ...] = GLOBAL_KNOWN_HOSTS  # GlobalKnownHostsFile
    host_key_policy: str = "yes"               # yes | accept-new | no
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    keepalive: int = 0
    compress: bool = False
    become: bool = False
    become_user: str = "root"
    become_password: Secret | None = None
    warnings: tuple[str, ...] = ()
    transport: str = DEFAULT_TRANSPORT         # paramiko | openssh
    ssh_config_file: str | None = None         # -F FILE from the ssh arguments
    config_name: str = ""                      # the destination ssh config blocks match
    ssh_options: tuple[str, ...] = ()          # other -o options (the openssh transport's)

    @property
    def record_known_hosts_file(self) -> str | None:
        """Where a newly accepted target key is written: the first user file; None: none."""
        return self.host_keys(self.target).record

    @property
    def all_known_hosts_files(self) -> tuple[str, ...]:
        """Every known_hosts file read for the target's key, the user's first."""
        return self.host_keys(self.target).files

    def proxy_for(self, hop: Endpoint) -> str | None:
        """The ProxyCommand (tokens expanded) that reaches `hop` when it is the first hop: the
        target's own, or a first jump host's from the ssh config."""
        return hop.proxy_command or (self.proxy_command if hop == self.target else None)

    def host_keys(self, hop: Endpoint) -> HostKeyCheck:
        """What judges `hop`'s host key: a jump host's own, else the target's settings."""
        if hop.host_keys is not None:
            return hop.host_keys
        return HostKeyCheck(self.known_hosts_files, self.global_known_hosts_files,
                            self.host_key_policy)

    @property
    def route(self) -> str:
        """The path to the host in words, e.g. 'root@10.0.0.5:22 via ops@bastion:22'."""
        route = self.target.label
        if self.jumps:
            route += " via " + " -> ".join(
                ("ProxyCommand -> " if j.proxy_command else "") + j.label for j in self.jumps)
        elif self.proxy_command:
            route += " via ProxyCommand"
        return route + (" [openssh]" if self.transport == "openssh" else "")


@dataclass
class _SshArgs:
    """What the ssh argument strings of one host say, before merging with ansible_* vars."""

    options: dict[str, str] = field(default_factory=dict)   # lower-case keyword -> first value
    identity_files: list[str] = field(default_factory=list)
    identities_configured: bool = False      # the ssh config named IdentityFiles (found or not)
    known_hosts_files: list[str] = field(default_factory=list)     # as written; ["none"]
    global_known_hosts_files: list[str] = field(default_factory=list)
    jumps: str | None = None
    compress: bool = False
    warnings: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)          # warnings the openssh transport lifts
    passthrough: list[str] = field(default_factory=list)      # "-o Key=value" it passes on
    config_file: str | None = None                            # -F FILE
    cert_files: list[str] = field(default_factory=list)


def connection_spec(host: Host, options: RunOptions) -> ConnectionSpec:
    """Derive a host's ConnectionSpec; HostError names the host and setting on bad values.

    Precedence, as with Ansible's ssh connection: inventory variables, then the ssh argument
    strings, then the OpenSSH client config (`ssh -G`, see sshconfig.py) for what both leave open.
    """
    hv = host.vars
    _check_connection_type(host)
    transport = _transport(host, options)
    args = parse_ssh_args(host.name, _ssh_arg_strings(hv))
    name = str(_first(hv, "ansible_host", "ansible_ssh_host") or host.name)
    _plain_name(host.name, name, "ansible_host")
    _plain_name(host.name, _first(hv, "ansible_user", "ansible_ssh_user"), "ansible_user")
    config = _config_for(host.name, name, args, options,
                         user=_first(hv, "ansible_user", "ansible_ssh_user"),
                         port=_first(hv, "ansible_port", "ansible_ssh_port"))
    _merge_config(args, config)
    if transport != "openssh":         # the openssh transport honours them: nothing to say
        args.ignored.extend(_unhandled_config(config))
    target = _target_endpoint(host, args, options)
    checking = _first(hv, *HOST_KEY_CHECKING_VARS)
    policy = _host_key_policy(host.name, args, options, checking)
    user_files, global_files = _known_hosts_files(args, target)
    # an explicit StrictHostKeyChecking of the target is its own, never its bastions'
    jump_checking = None if args.options.get("stricthostkeychecking") else checking
    jumps = tuple(replace(j, host_keys=j.host_keys.also(user_files, global_files))
                  for j in _jump_endpoints(host.name, args.jumps, target, options,
                                           args.config_file, checking=jump_checking))
    if len(jumps) > MAX_JUMPS:
        raise HostError(host.name, f"more than {MAX_JUMPS} jump hosts on the way to "
                                   f"{target.address} (jump hosts' own ProxyJumps included)",
                        "ProxyJump")
    become_method = str(hv.get("ansible_become_method", "sudo"))
    if _truthy(hv.get("ansible_become", False)) and become_method != "sudo":
        raise HostError(host.name, f"become method {become_method!r} is not supported (only sudo)",
                        "ansible_become_method")
    if transport == "openssh" and target.password is not None:
        raise HostError(host.name, "password login needs the paramiko transport (ssh reads "
                                   "passwords only from a terminal); use a key or agent",
                        "ansible_password")
    warnings = args.warnings + ([] if transport == "openssh" else args.ignored)
    return ConnectionSpec(
        host=host.name,
        target=target,
        jumps=jumps,
        proxy_command=_proxy_command(host.name, args, target, name),
        known_hosts_files=user_files,
        global_known_hosts_files=global_files,
        host_key_policy=policy,
        connect_timeout=_connect_timeout(host.name, args, options),
        retries=options.retries,
        keepalive=_int_option(host.name, args, "serveraliveinterval", 0),
        compress=args.compress or _yes(args.options.get("compression", "no")),
        become=_truthy(hv.get("ansible_become", False)),
        become_user=str(hv.get("ansible_become_user") or "root"),
        become_password=_become_password(hv, options),
        warnings=tuple(warnings),
        transport=transport,
        ssh_config_file=args.config_file,
        config_name=name,
        ssh_options=tuple(args.passthrough),
    )


def _transport(host: Host, options: RunOptions) -> str:
    """harden_transport wins; ansible_connection=paramiko asks for paramiko; else --transport.

    paramiko stays the default: it needs nothing on the controller but Python, supports
    password logins, and shares one bastion login between all hosts behind it.
    """
    value = host.vars.get("harden_transport")
    if value not in (None, ""):
        value = str(value).strip().lower()
        if value not in TRANSPORTS:
            raise HostError(host.name, f"unknown transport {value!r}; choose "
                                       f"{' or '.join(TRANSPORTS)}", "harden_transport")
    elif str(host.vars.get("ansible_connection", "")) == "paramiko":
        value = "paramiko"
    else:
        value = options.transport or DEFAULT_TRANSPORT
    if value == "openssh" and sshconfig.ssh_client() is None:
        raise HostError(host.name, "the openssh transport needs the ssh client on this machine "
                                   "(apt-get install openssh-client)", "harden_transport")
    return value


def _config_for(host: str, name: str, args: _SshArgs, options: RunOptions, *, user: Any,
                port: Any) -> sshconfig.ConfigValues:
    """The OpenSSH config for `name`, as ssh would see it with this user and port."""
    if not options.read_ssh_config:
        return sshconfig.ConfigValues()
    user = user or args.options.get("user")
    port = port or args.options.get("port")
    return sshconfig.resolve(host, name, config_file=args.config_file,
                             user=str(user) if user else None,
                             port=_port(host, port, "ansible_port") if port else None)


def _merge_config(args: _SshArgs, config: sshconfig.ConfigValues) -> None:
    """Fill what the inventory and ssh arguments leave open from the ssh config."""
    if config.source == "none":
        return
    for key in ("hostname", "port", "stricthostkeychecking", "connecttimeout",
                "identitiesonly", "passwordauthentication", "hostkeyalias",
                "serveraliveinterval", "compression"):
        value = config.setting(key)
        if value is not None:
            args.options.setdefault(key, value)
    if config.get("identityagent") is not None:          # "none" means no agent here
        # ssh -G printed it expanded: kept in ssh's syntax (`%` doubled) like an -o value
        args.options.setdefault("identityagent", config.get("identityagent").replace("%", "%%"))
    user = config.setting("user")
    if user and user != sshconfig.local_user():
        args.options.setdefault("user", user)
    expand = _config_path_expander(args, config.source)
    args.identities_configured = args.identities_configured or bool(config.identity_files())
    for setting, paths, found in (("IdentityFile", config.identity_files(), args.identity_files),
                                  ("CertificateFile", config.all("certificatefile"),
                                   args.cert_files)):
        for path in map(expand, paths):
            if os.path.isfile(path) or setting == "IdentityFile" and _has_public_key(path):
                found.append(path)
            else:       # ssh skips it with a warning too
                args.warnings.append(f"ssh config: {setting} {path} does not exist")
    if not args.known_hosts_files:        # expanded with the others (_known_hosts_files)
        args.known_hosts_files.extend(config.known_hosts_files())
    if not args.global_known_hosts_files:
        args.global_known_hosts_files.extend(config.global_known_hosts_files())
    if args.jumps is None and "proxycommand" not in args.options:
        if config.setting("proxyjump"):
            args.jumps = config.setting("proxyjump")
        elif config.setting("proxycommand"):
            args.options["proxycommand"] = config.setting("proxycommand")


def _config_path_expander(args: _SshArgs, source: str):
    """Paths in the config may use ~ and ssh's tokens (%d %u %h %r %p); a host or user name
    that would put a `/` in one is a HostError naming the config."""
    port = str(args.options.get("port", "22"))
    values = {"host": args.options.get("hostname", ""), "user": args.options.get("user", ""),
              "port": int(port) if port.isdigit() else 22}

    def expand(path: str) -> str:
        try:
            return sshconfig.expand_path(path, **values)
        except ValueError as exc:
            raise HostError(values["host"] or "?", f"ssh config path {path}: {exc}",
                            f"ssh config ({source})") from None
    return expand


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
    elif flag == "F":
        out.config_file = out.config_file or os.path.abspath(os.path.expanduser(value))
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
    elif key in ("userknownhostsfile", "globalknownhostsfile"):
        files = out.known_hosts_files if key == "userknownhostsfile" else \
            out.global_known_hosts_files
        if not files:
            files.extend(_known_hosts_words(host, var, key, value))
    elif key == "proxyjump":
        out.jumps = out.jumps if out.jumps is not None else value
    elif key == "certificatefile":
        out.cert_files.append(os.path.abspath(os.path.expanduser(value)))
    elif key in _UNDERSTOOD_OPTIONS:
        out.options.setdefault(key, value)
    elif key not in _TRANSPORT_OWNED:
        out.passthrough.append(f"{key}={value}")
        if key not in _QUIETLY_ACCEPTED:
            out.ignored.append(f"{var}: ssh option {key!r} is ignored by the paramiko transport "
                               "(the openssh transport honours it)")


_UNDERSTOOD_OPTIONS = {
    "hostname", "port", "user", "stricthostkeychecking", "connecttimeout", "proxycommand",
    "identitiesonly", "passwordauthentication", "hostkeyalias", "serveraliveinterval",
    "compression", "identityagent",
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
    _plain_name(host.name, _first(hv, "ansible_host", "ansible_ssh_host"), "ansible_host")
    _plain_name(host.name, _first(hv, "ansible_user", "ansible_ssh_user"), "ansible_user")
    address = str(args.options.get("hostname") or _first(hv, "ansible_host", "ansible_ssh_host")
                  or host.name)
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
        default_keys=not (keys or args.identities_configured),
        identity_agent=args.options.get("identityagent"),
        password=Secret(str(password)) if password is not None else None,
        identities_only=_yes(args.options.get("identitiesonly", "no")),
        password_auth=_yes(args.options.get("passwordauthentication", "yes")),
        host_key_alias=args.options.get("hostkeyalias"),
        cert_files=_existing_cert_files(host.name, args.cert_files),
    )


def _existing_cert_files(host: str, paths: list[str]) -> tuple[str, ...]:
    for path in paths:
        if not os.path.isfile(path):
            raise HostError(host, f"certificate file {path} does not exist", "CertificateFile")
    return tuple(dict.fromkeys(paths))


def _existing_key_files(host: str, paths: list[str], setting: str) -> tuple[str, ...]:
    """Expand and check explicit key files: a missing one is a mistake worth stopping for."""
    found = []
    for raw in paths:
        path = os.path.abspath(os.path.expanduser(raw))
        if not os.path.isfile(path) and not _has_public_key(path):
            raise HostError(host, f"private key file {path} does not exist", setting)
        found.append(path)
    return tuple(dict.fromkeys(found))


def _has_public_key(path: str) -> bool:
    """Whether `<path>.pub` exists, which is enough for ssh: it then signs with the agent's
    copy of that key (a resident FIDO key loaded with `ssh-add -K` has no private key file)."""
    return os.path.isfile(path + ".pub")


def _jump_endpoints(host: str, spec: str | None, target: Endpoint, options: RunOptions,
                    config_file: str | None = None, path: tuple[str, ...] = (),
                    checking=None) -> tuple[Endpoint, ...]:
    """The jump hosts of a ProxyJump list, in connection order, as ssh reaches them.

    ssh turns `-J a,b` into `ssh -J a -W %h:%p b`, whose command-line -J wins over b's own
    ProxyJump, and then `ssh -W b a`, which reads a's: so the first jump's own ProxyJump
    (from the ssh config or its inventory ssh arguments) comes before it, recursively, and
    its own ProxyCommand reaches it; the later jumps' own settings are not used. `path` holds
    the jumps being expanded, to name a loop rather than recurse forever; `checking` is the
    target's Ansible host_key_checking, which a jump outside the inventory follows too (as
    with Ansible) unless its own config sets StrictHostKeyChecking."""
    if spec is None or spec.strip().lower() == "none":
        return ()
    chain: list[Endpoint] = []
    for index, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
        jump, own_jumps, own_proxy = _jump_endpoint(host, part, target, options, config_file,
                                                    checking)
        if index == 0:
            chain += _before_first_jump(host, part, own_jumps, target, options, config_file,
                                        path, checking)
            if own_proxy and not own_jumps:
                jump = replace(jump, proxy_command=expand_proxy_command(
                    host, own_proxy, jump, _jump_name(host, part)))
        chain.append(jump)
    return tuple(chain)


def _before_first_jump(host: str, part: str, own_jumps: str | None, target: Endpoint,
                       options: RunOptions, config_file: str | None, path: tuple[str, ...],
                       checking=None) -> list[Endpoint]:
    """The first jump's own jump hosts (expanded in turn), or a loop/too-deep error."""
    name = _jump_name(host, part).lower()
    if name in path:
        raise HostError(host, "jump hosts form a loop: " + " -> ".join([*path, name]) +
                        " (each one's ProxyJump names the next)", "ProxyJump")
    if len(path) >= MAX_JUMPS:
        raise HostError(host, f"more than {MAX_JUMPS} levels of jump hosts from {part} "
                              "(jump hosts' own ProxyJumps)", "ProxyJump")
    if not own_jumps or own_jumps.strip().lower() == "none":
        return []
    return list(_jump_endpoints(host, own_jumps, target, options, config_file,
                                (*path, name), checking))


def _jump_name(host: str, text: str) -> str:
    """The host name in a jump spec `[user@]host[:port]` (or ssh://...)."""
    raw = text[len("ssh://"):] if text.startswith("ssh://") else text
    return _split_host_port(host, raw.rpartition("@")[2])[0]


def _jump_endpoint(host: str, text: str, target: Endpoint, options: RunOptions,
                   config_file: str | None = None, checking=None
                   ) -> tuple[Endpoint, str | None, str | None]:
    """A jump as `[user@]host[:port]` (or ssh://...), with its own ProxyJump and ProxyCommand
    (unexpanded); an inventory name brings its own settings, any other name is looked up in
    the ssh config, as ssh's ProxyJump does."""
    raw = text[len("ssh://"):] if text.startswith("ssh://") else text
    user, _, hostport = raw.rpartition("@")
    name, port = _split_host_port(host, hostport)
    _plain_name(host, name, "ProxyJump")
    _plain_name(host, user, "ProxyJump")
    inv_host = options.inventory_hosts.get(name)
    if inv_host is not None and inv_host.name != host:
        inv_args = parse_ssh_args(inv_host.name, _ssh_arg_strings(inv_host.vars))
        base = _target_endpoint(inv_host, inv_args, options)
        base = replace(base, name=text, user=user or base.user, port=port or base.port)
        checking = _first(inv_host.vars, *HOST_KEY_CHECKING_VARS)
        return (replace(base, host_keys=_host_keys(host, inv_args, base, options, checking)),
                inv_args.jumps, inv_args.options.get("proxycommand"))
    jump = Endpoint(name=text, address=name, port=port or 22, user=user or options.local_user,
                    key_files=target.key_files, identities_only=target.identities_only,
                    password_auth=False, cert_files=target.cert_files)
    args = _SshArgs(config_file=config_file)
    if not options.read_ssh_config:
        return (replace(jump, host_keys=_host_keys(host, args, jump, options, checking)),
                None, None)
    _merge_config(args, sshconfig.resolve(host, name, config_file=config_file,
                                                user=user or None, port=port))
    jump = replace(jump, address=args.options.get("hostname", name),
                   port=_port(host, args.options.get("port", jump.port), "ProxyJump"),
                   user=user or args.options.get("user") or jump.user,
                   key_files=tuple(dict.fromkeys([*args.identity_files, *jump.key_files])),
                   default_keys=not args.identities_configured,
                   identity_agent=args.options.get("identityagent"),
                   cert_files=tuple(dict.fromkeys([*args.cert_files, *jump.cert_files])),
                   host_key_alias=args.options.get("hostkeyalias"))
    return (replace(jump, host_keys=_host_keys(host, args, jump, options, checking)),
            args.jumps, args.options.get("proxycommand"))


def _host_keys(host: str, args: _SshArgs, hop: Endpoint, options: RunOptions,
               checking=None) -> HostKeyCheck:
    """A jump host's own known_hosts files and policy, from its own settings (its ssh
    config, or its inventory variables), never the target's -o options."""
    user_files, global_files = _known_hosts_files(args, hop)
    return HostKeyCheck(user_files, global_files,
                        _host_key_policy(host, args, options, checking))


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


def _proxy_command(host: str, args: _SshArgs, target: Endpoint, name: str) -> str | None:
    command = args.options.get("proxycommand")
    if command is None or command.lower() == "none":
        return None
    if args.jumps is not None and args.jumps.lower() != "none":
        raise HostError(host, "ProxyCommand and ProxyJump are both set; keep one",
                        "ansible_ssh_common_args")
    return expand_proxy_command(host, command, target, name)


# The tokens ssh 9.2 expands in a ProxyCommand (sshconnect.c expand_proxy_command); any other
# one makes ssh refuse to connect ("unknown key %u"), so harden refuses it too.
_PROXY_TOKENS = "hknpr%"


def expand_proxy_command(host: str, command: str, hop: Endpoint, name: str) -> str:
    """`command` with %h (address) %p (port) %r (user) %n (the name as given: alias or
    ansible_host) %k (HostKeyAlias, else that name) and %% replaced, as ssh does; `$VAR`,
    `~` and redirections are left to the shell that runs it."""
    values = {"h": hop.address, "p": str(hop.port), "r": hop.user, "n": name,
              "k": hop.host_key_alias or name, "%": "%"}
    out, i = [], 0
    for token, setting in (("h", "ansible_host"), ("n", "ansible_host"), ("r", "ansible_user"),
                           ("k", "HostKeyAlias")):
        if f"%{token}" in command.replace("%%", ""):
            shell_safe(host, values[token], setting)
    while i < len(command):
        if command[i] != "%":
            out.append(command[i])
            i += 1
            continue
        token = command[i + 1:i + 2]
        if token not in values or not token:
            what = f"unknown token %{token}" if token else "a lone % at the end"
            raise HostError(host, f"ProxyCommand {command!r} has {what} (ssh accepts "
                                  f"{' '.join('%' + t for t in _PROXY_TOKENS)}); write %% "
                                  "for a literal %", "ProxyCommand")
        out.append(values[token])
        i += 2
    return "".join(out)


# What ssh 9.6 refuses in a host or user name it would put in a ProxyCommand (ssh.c
# valid_hostname/valid_ruser, CVE-2023-51385): the command runs in a shell.
_SHELL_SPECIAL = set("'`\"$\\;&<>|(){}*?[]~#!") | {chr(c) for c in range(33)} | {"\x7f"}


def _plain_name(host: str, value, setting: str) -> None:
    """A host or user name that ssh and ssh -G get as a word: no leading `-` (it would be
    read as an option) and no `/` (ssh -G would put it into a known_hosts path built with %h
    or %r): an inventory, perhaps a dynamic one, must not choose options or paths."""
    if value is None:
        return
    value = str(value)
    if value.startswith("-") or "/" in value or value in (".", "..") or \
            any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise HostError(host, f"{value!r} is not a host or user name (a leading -, a / or a "
                              "control character)", setting)


def shell_safe(host: str, value: str, setting: str) -> None:
    """Refuse a name that the ProxyCommand's shell would read as more than a word: an
    inventory (a dynamic one, a CMDB) must not be able to run commands here."""
    if value.startswith("-") or any(c in _SHELL_SPECIAL for c in value):
        raise HostError(host, f"{value!r} would go into the ProxyCommand's shell command and "
                              "has characters a host or user name never has", setting)


def _host_key_policy(host: str, args: _SshArgs, options: RunOptions, checking=None) -> str:
    """The host's own StrictHostKeyChecking wins; else Ansible's host_key_checking (false:
    keys are not checked, as ansible-playbook does then); else --accept-new-host-keys; else
    strict."""
    value = args.options.get("stricthostkeychecking")
    if value is None and checking is not None and _falsy(checking):
        return "no"
    if value is None:
        return "accept-new" if options.accept_new_host_keys else "yes"
    value = value.lower()
    if value in ("yes", "ask", "true"):      # ssh -G prints yes/no as true/false
        return "yes"
    if value in ("no", "off", "false"):
        return "no"
    if value == "accept-new":
        return value
    raise HostError(host, f"unknown StrictHostKeyChecking value {value!r}",
                    "StrictHostKeyChecking")


def _known_hosts_words(host: str, var: str, key: str, value: str) -> list[str]:
    """The files of one -o UserKnownHostsFile/GlobalKnownHostsFile; `none` only alone, as
    ssh insists (it refuses to start otherwise)."""
    words = shlex.split(value)
    if len(words) > 1 and any(w.lower() == "none" for w in words):
        raise HostError(host, f'{key} "none" must appear alone, got {value!r}', var)
    return words


def _known_hosts_files(args: _SshArgs, target: Endpoint) -> tuple[tuple[str, ...],
                                                                   tuple[str, ...]]:
    """(user files, global files) as ssh reads them: each setting replaces its default, and
    `none` means no file. ssh expands `~` and its tokens (%h %u %p %r %d) in the user
    files, only `~` in the global ones."""
    user = args.known_hosts_files or list(DEFAULT_KNOWN_HOSTS)
    system = args.global_known_hosts_files or list(GLOBAL_KNOWN_HOSTS)
    values = {"host": target.address, "user": target.user, "port": target.port}
    try:
        user_files = [sshconfig.expand_path(f, **values) for f in user if f.lower() != "none"]
    except ValueError as exc:
        raise HostError(target.name, f"UserKnownHostsFile {' '.join(user)}: {exc}",
                        "UserKnownHostsFile") from None
    global_files = [os.path.abspath(os.path.expanduser(f)) for f in system if f.lower() != "none"]
    return tuple(dict.fromkeys(user_files)), tuple(dict.fromkeys(global_files))


# Config keywords that change how ssh connects and the paramiko transport does not act on:
# warned about when the config sets them to other than ssh's default (ssh -G -F /dev/null).
UNHANDLED_CONFIG = ("AddressFamily", "BindAddress", "BindInterface", "Ciphers", "MACs",
                    "KexAlgorithms", "HostKeyAlgorithms", "PubkeyAcceptedAlgorithms",
                    "CASignatureAlgorithms", "KnownHostsCommand", "VerifyHostKeyDNS",
                    "PreferredAuthentications", "PubkeyAuthentication", "RequiredRSASize")


def _unhandled_config(config: sshconfig.ConfigValues) -> list[str]:
    """One warning per keyword the paramiko transport ignores that the config really set."""
    if config.source != "ssh -G":
        return []
    defaults = sshconfig.defaults()
    if not defaults.values:
        return []
    warnings = []
    for keyword in UNHANDLED_CONFIG:
        value = config.get(keyword.lower())
        if value is not None and value != defaults.get(keyword.lower()):
            shown = value if len(value) <= 60 else value[:57] + "..."
            warnings.append(f"ssh config: {keyword} {shown} is ignored by the paramiko "
                            "transport (the openssh transport honours it)")
    return warnings


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


def _falsy(value: Any) -> bool:
    """An explicit Ansible false (false/no/off/0): anything else, a typo or an unrendered
    template included, leaves host keys checked."""
    if isinstance(value, bool):
        return not value
    return str(value).strip().lower() in ("false", "no", "off", "0", "n", "f")


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
                ask_become_pass: bool = False, transport: str | None = None) -> RunOptions:
    """RunOptions from the command line's connection flags (the sudo password asked once)."""
    if connect_timeout is not None and connect_timeout <= 0:
        raise InputError("--timeout must be a positive number of seconds")
    if transport is not None and transport not in TRANSPORTS:
        raise InputError(f"--transport must be {' or '.join(TRANSPORTS)}, got {transport!r}")
    return RunOptions(connect_timeout=connect_timeout, accept_new_host_keys=accept_new_host_keys,
                      become_password=run_become_password(ask_become_pass), transport=transport)


def connection_specs(hosts, options: RunOptions, inventory=None) -> dict[str, ConnectionSpec]:
    """Every selected host's spec, or one error listing every host whose settings are wrong.

    All hosts are worked out before any is contacted, so a typo in the inventory stops the
    command with exit 1 and a complete list of what to fix, having touched nothing. With the
    inventory, jump hosts may be named by their inventory names.
    """
    if inventory is not None:
        options = replace(options, inventory_hosts=inventory.hosts)
    specs, problems = {}, []
    hosts = list(hosts)
    # `ssh -G` is a process per host (a few ms); several at once keep 50 hosts well under 0.1 s.
    workers = min(8, len(hosts)) if options.read_ssh_config and len(hosts) > 1 else 1
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda h: _spec_or_error(h, options), hosts))
    for host, result in zip(hosts, results):
        if isinstance(result, HostError):
            problems.append(str(result))
        else:
            specs[host.name] = result
    if problems:
        raise HardenError("\n".join(problems))
    return specs


def describe_connections(inventory, hosts) -> dict[str, dict[str, str]]:
    """Per host, where harden would log in (route, transport) or why it cannot: what
    `harden inventory --list` shows, resolved through the ssh config as ssh -G does."""
    options = RunOptions(inventory_hosts=inventory.hosts)
    described = {}
    for host in hosts:
        try:
            spec = connection_spec(host, options)
        except HostError as exc:
            described[host.name] = {"error": exc.message}
            continue
        described[host.name] = {"route": spec.route, "transport": spec.transport,
                                "address": spec.target.address, "port": str(spec.target.port),
                                "user": spec.target.user}
    return described


def _spec_or_error(host, options: RunOptions) -> ConnectionSpec | HostError:
    try:
        return connection_spec(host, options)
    except HostError as exc:
        return exc


def resolve_targets(inventories, limit: str | None, *, warn, connect_timeout: float | None = None,
                    accept_new_host_keys: bool = False, ask_become_pass: bool = False,
                    transport: str | None = None, host_defaults: dict | None = None):
    """(hosts, specs) for a command that logs in: the inventory loaded, --limit applied, every
    host's connection worked out before any is contacted, ignored ssh options warned about.
    `host_defaults` (ansible.cfg, -u, -b, ...) are variables a host gets unless it sets them."""
    from harden.inventory.loader import load_inventory

    inventory = load_inventory(inventories).with_defaults(host_defaults or {})
    hosts = inventory.select(None, limit=limit)
    options = run_options(connect_timeout=connect_timeout,
                          accept_new_host_keys=accept_new_host_keys,
                          ask_become_pass=ask_become_pass, transport=transport)
    specs = connection_specs(hosts, options, inventory)
    print_warnings(specs, warn)
    return hosts, specs


def print_warnings(specs: Mapping[str, ConnectionSpec], echo) -> None:
    """Once per host: the ssh options harden understood but does not act on."""
    for spec in specs.values():
        for warning in spec.warnings:
            echo(f"warning: host {spec.host}: {warning}")
