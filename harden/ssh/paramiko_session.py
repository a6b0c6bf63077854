"""The paramiko transport: one paramiko SSH session per host, kept for the whole run.

Why paramiko's Transport and not SSHClient: the host key must be checked against known_hosts
(with file and line in the error) before any credential is sent, jump hosts are chained through
direct-tcpip channels each with its own key check, and only connection *establishment* is
retried. A command is never re-run: once a channel is opened, its outcome is what we report.
Become, stdin and timeouts are common.HostSession's. Only harden.ssh.transport imports this
module, and only when a host uses paramiko: importing paramiko (and the cryptography it
loads) costs about 0.2 s of CPU, which a run over the openssh transport need not pay.
"""

from __future__ import annotations

import logging
import os
import re
import select
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field

from harden.ssh.deferred_invoke import defer_invoke

defer_invoke()          # before paramiko, whose config module would import invoke at once
import paramiko  # noqa: E402

from harden.errors import HostError
from harden.node.limits import MAX_OUTPUT_BYTES
from harden.ssh import certs, key_files, sshconfig
from harden.ssh.proxy_command import ShellProxy
from harden.ssh.common import (AuthenticationFailed, CommandTimeout, HostSession, Unreachable,
                               NetworkError, RETRIED, with_retries, bounded_output)
from harden.ssh.session import CommandResult
from harden.ssh.settings import DEFAULT_IDENTITIES, ConnectionSpec, Endpoint
from harden.ssh.hostkeys import (CERT_SUFFIX, KnownKey, known_hosts_name, known_keys,
                                 preferred_key_types, verify_host_key)

# paramiko logs failures it also raises; without a handler Python would print them on stderr
# through its last-resort handler, in the middle of harden's own output.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
# the way out of whatever the paramiko transport cannot do, in every message that suggests it
USE_OPENSSH = ("Use the OpenSSH transport for this host (harden_transport=openssh in the "
               "inventory, or --transport openssh)")

_POLL = 0.05                      # seconds between polls while stdin is still being sent
_CHUNK = 32768


def connect_paramiko(spec: ConnectionSpec, jumps=None) -> ParamikoSession:
    """The host's paramiko session; through `jumps` (transport.JumpPool) the jump hosts'
    connections are shared with every other host behind the same chain."""
    if jumps is None or not spec.jumps or spec.proxy_command:
        return ParamikoSession(spec, with_retries(spec, lambda: _open_chain(spec)))
    name = known_hosts_name(spec.target)
    known = known_keys(spec.host, name, spec.host_keys(spec.target).files)

    def through_pool() -> list[paramiko.Transport]:
        sock = _forward(spec, spec.jumps[-1], jumps.transport(spec, spec.jumps), spec.target)
        return [_handshake(spec, spec.target, sock, name, known)]

    return ParamikoSession(spec, with_retries(spec, through_pool))


def open_hop(spec: ConnectionSpec, chain: tuple[Endpoint, ...], via) -> paramiko.Transport:
    """A logged-in transport to the last hop of `chain`; `via(chain)` gives the transport to
    an earlier hop (the pool's, opened on first use)."""
    hop = chain[-1]
    name = known_hosts_name(hop)
    known = known_keys(spec.host, name, spec.host_keys(hop).files)
    if len(chain) == 1:
        return _first_handshake(spec, hop, name, known)
    sock = _forward(spec, chain[-2], via(chain[:-1]), hop)
    return _handshake(spec, hop, sock, name, known)


def _open_chain(spec: ConnectionSpec) -> list[paramiko.Transport]:
    """Log in to each jump host in turn, then the target, through direct-tcpip channels."""
    hops = [*spec.jumps, spec.target]
    names = [known_hosts_name(hop) for hop in hops]
    known = [known_keys(spec.host, name, spec.host_keys(hop).files)
             for name, hop in zip(names, hops)]
    transports: list[paramiko.Transport] = []
    try:
        sock = None
        for index, hop in enumerate(hops):
            transport = (_first_handshake(spec, hop, names[0], known[0]) if index == 0 else
                         _handshake(spec, hop, sock, names[index], known[index]))
            transports.append(transport)
            if index + 1 < len(hops):
                sock = _forward(spec, hop, transport, hops[index + 1])
        return transports
    except BaseException:
        for transport in reversed(transports):
            transport.close()
        raise


def _first_socket(spec: ConnectionSpec, hop: Endpoint):
    command = spec.proxy_for(hop)
    if command:
        try:
            return ShellProxy(command)
        except OSError as exc:
            raise Unreachable(spec.host, f"ProxyCommand for {hop.label} could not start: "
                                         f"{exc.strerror or exc}", "ProxyCommand") from None
    try:
        return socket.create_connection((hop.address, hop.port), timeout=spec.connect_timeout)
    except (socket.timeout, TimeoutError):
        raise NetworkError(f"connection to {hop.address}:{hop.port} timed out after "
                            f"{spec.connect_timeout:g}s") from None
    except ConnectionRefusedError:
        raise NetworkError(f"connection to {hop.address}:{hop.port} refused") from None
    except socket.gaierror as exc:
        raise Unreachable(spec.host, f"cannot resolve {hop.address}: {exc.strerror}",
                          "ansible_host") from None
    except OSError as exc:
        raise NetworkError(f"cannot connect to {hop.address}:{hop.port}: "
                            f"{exc.strerror or exc}") from None


def _first_handshake(spec: ConnectionSpec, hop: Endpoint, name: str,
                     known: list[KnownKey]) -> paramiko.Transport:
    """The handshake with the first hop, over TCP or its ProxyCommand; when the handshake
    fails through a proxy, the error says what the proxy said (ssh shows its stderr): a
    proxy that exited is not tried again, one still running is retried as a network error."""
    sock = _first_socket(spec, hop)
    if not isinstance(sock, ShellProxy):
        return _handshake(spec, hop, sock, name, known)
    try:
        return _handshake(spec, hop, sock, name, known)
    except (NetworkError, HostError) as exc:
        exited, said = sock.failure()
        if isinstance(exc, HostError):      # a key or login refusal: the proxy did its part
            if not exited:
                raise
            raise type(exc)(exc.host, f"{exc.message}; {said}", exc.setting) from None
        if exited and not RETRIED.search(said):
            raise Unreachable(spec.host, f"cannot reach {hop.label} through its ProxyCommand: "
                                         f"{said}", "ProxyCommand") from None
        raise NetworkError(f"{exc}; {said}") from None     # retried: a busy bastion, say


def _forward(spec: ConnectionSpec, via: Endpoint, transport: paramiko.Transport,
             hop: Endpoint) -> paramiko.Channel:
    try:
        return transport.open_channel("direct-tcpip", (hop.address, hop.port), ("127.0.0.1", 0),
                                      timeout=spec.connect_timeout)
    except paramiko.ChannelException as exc:
        reason = f"jump host {via.label} could not reach {hop.address}:{hop.port}: {exc.text}"
        if exc.code == 1:   # administratively prohibited: retrying cannot help
            raise Unreachable(spec.host, reason, "ProxyJump") from None
        raise NetworkError(reason) from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise NetworkError(f"jump host {via.label} dropped the connection: {exc}") from None


class _Transport(paramiko.Transport):
    """paramiko's Transport, remembering what the server offered when negotiation fails (to
    say so: paramiko's own error names only the category)."""

    server_offer: dict | None = None

    def _parse_kex_init(self, m):
        start = m.packet.tell()
        try:
            return super()._parse_kex_init(m)
        except paramiko.IncompatiblePeer:
            try:
                m.packet.seek(start)
                self.server_offer = self._really_parse_kex_init(m)
            except Exception:   # noqa: BLE001 - a better message is a nicety, never a failure
                self.server_offer = None
            raise


def negotiation_message(hop: Endpoint, exc: Exception, transport: paramiko.Transport) -> str:
    """What the server offers, what paramiko supports, and the way out."""
    ours = transport.get_security_options()
    offer = getattr(transport, "server_offer", None) or {}

    def listed(names) -> str:
        names = [n for n in names if not n.startswith(("ext-info-", "kex-strict-"))]
        return ",".join(names) if names else "?"

    parts = [f"{hop.label}: no common SSH algorithms ({exc})"]
    if offer:
        parts.append(f"The server offers kex {listed(offer['kex_algo_list'])}; ciphers "
                     f"{listed(offer['client_encrypt_algo_list'])}; MACs "
                     f"{listed(offer['client_mac_algo_list'])}; host keys "
                     f"{listed(offer['server_key_algo_list'])}")
    parts.append(f"paramiko {paramiko.__version__} supports kex {listed(ours.kex)}; ciphers "
                 f"{listed(ours.ciphers)}; MACs {listed(ours.digests)}; host keys "
                 f"{listed(ours.key_types)}")
    parts.append(f"{USE_OPENSSH}, which negotiates what ssh does")
    return ". ".join(parts)


def _handshake(spec: ConnectionSpec, hop: Endpoint, sock, name: str,
               known: list[KnownKey]) -> paramiko.Transport:
    """Key exchange, host key check, then authentication, on one hop."""
    transport = _Transport(sock)
    try:
        _configure(spec, transport, preferred_key_types(known))
        _start(spec, hop, transport)
        offered = transport.get_remote_server_key()
        checked = spec.host_keys(hop)
        verify_host_key(spec.host, name, offered, known, checked.policy, checked.record,
                        certs.host_certificate(offered, getattr(transport, "host_key_type", None)),
                        hop.host_key_alias or sshconfig.canonical_host(hop.address),
                        checked.files)
        _authenticate(spec.host, hop, transport)
        return transport
    except BaseException:
        transport.close()
        raise


def _configure(spec: ConnectionSpec, transport: paramiko.Transport, known_types: list[str]):
    options = transport.get_security_options()
    # host certificate types are not in paramiko's default list, but it reads them
    supported = [t for t in known_types if t in transport._key_info]
    options.key_types = supported + [t for t in options.key_types if t not in supported]
    # A little longer than start_client's own timeout, so a silent server is reported as
    # "timed out" by _start rather than as paramiko's vaguer banner error.
    transport.banner_timeout = spec.connect_timeout + 1
    transport.handshake_timeout = spec.connect_timeout
    transport.auth_timeout = spec.connect_timeout
    if spec.compress:
        transport.use_compression(True)


def _start(spec: ConnectionSpec, hop: Endpoint, transport: paramiko.Transport) -> None:
    try:
        transport.start_client(timeout=spec.connect_timeout)
    except paramiko.IncompatiblePeer as exc:
        raise Unreachable(spec.host, negotiation_message(hop, exc, transport),
                          "harden_transport") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise NetworkError(f"SSH handshake with {hop.label} failed: "
                            f"{exc or type(exc).__name__}") from None
    if not transport.completion_event.is_set():   # start_client returns quietly on timeout
        raise NetworkError(f"SSH handshake with {hop.label} timed out after "
                            f"{spec.connect_timeout:g}s")
    if spec.keepalive:
        transport.set_keepalive(spec.keepalive)


@dataclass
class _Attempt:
    """What one login tried so far, for the next step and for the error."""

    tried: list[str] = field(default_factory=list)     # offered and refused; notes on key
    partial: list[str] = field(default_factory=list)   # files not offered; accepted as one step
    unusable: list[key_files.UnusableKey] = field(default_factory=list)
    allowed: list[str] = field(default_factory=lambda: list(PARAMIKO_METHODS))
    server_said: bool = False
    offered: int = 0


def _authenticate(host: str, hop: Endpoint, transport: paramiko.Transport) -> None:
    """Keys (explicit, agent, defaults) then password, the order ssh uses. A key or password
    the server accepts as one step of several (sshd's AuthenticationMethods, e.g.
    publickey,publickey or password,publickey) is a partial success: the next keys or the
    password are tried for the rest, as ssh does, and a step harden cannot take is named."""
    at = _Attempt()
    if _offer_keys(host, hop, transport, at):
        return
    if hop.password is not None and hop.password_auth and transport.is_active():
        remaining = _password_auth(hop, transport, at.allowed)
        if remaining == []:
            _logged_in(host, hop, transport)
            return
        if remaining is False:
            at.tried.append("password")
            at.offered += 1
        elif remaining is not None:
            at.partial.append("password")
            at.allowed, at.server_said = remaining, True
            if "publickey" in remaining and _offer_keys(host, hop, transport, at):
                return
    tried, partial, unusable = at.tried, at.partial, at.unusable
    allowed, server_said, offered = at.allowed, at.server_said, at.offered
    if partial:
        raise AuthenticationFailed(host, _partial_message(hop, partial, tried, allowed),
                                   "AuthenticationMethods")
    if not server_said and not tried:
        asked = _methods_allowed(hop, transport)
        if asked == []:
            return                    # the server let the user in without credentials
        allowed, server_said = asked or allowed, asked is not None
    if server_said and not set(allowed) & set(PARAMIKO_METHODS):
        raise AuthenticationFailed(host, f"{hop.label} refused authentication: "
                                         f"{unsupported_methods_message(allowed)}",
                                   "harden_transport")
    if unusable and (not offered or any(key.path in hop.key_files for key in unusable)):
        raise AuthenticationFailed(host, unusable_keys_message(hop, tried, unusable),
                                   "harden_transport")
    what = ", ".join(tried) if tried else "nothing: no key file, agent key or password"
    hint = ""
    if any(label.startswith("certificate ") for label in tried):
        hint = ("; sshd accepts a certificate only when it trusts the signing CA "
                "(TrustedUserCAKeys), the user is among its principals and it is in its "
                "validity period")
    if unusable:                      # ssh's default FIDO key files, say: a note, not the cause
        hint += "; not offered: " + "; ".join(key.describe() for key in unusable)
    raise AuthenticationFailed(host, f"{hop.label} refused authentication (tried {what}){hint}",
                               "ansible_user")


def _offer_keys(host: str, hop: Endpoint, transport: paramiko.Transport, at: _Attempt) -> bool:
    """Offer the candidate keys until one logs in (True) or none is left; a key accepted as
    one step goes on with the next key while the server still asks for one."""
    notes = [] if at.partial else at.tried        # a second pass notes nothing again
    for label, key in _candidate_keys(hop, notes, at.unusable if not at.partial else []):
        try:
            remaining = transport.auth_publickey(hop.user, key)
        except paramiko.BadAuthenticationType as exc:
            at.allowed, at.server_said = list(exc.allowed_types), True
            return False
        except paramiko.AuthenticationException:
            at.tried.append(label)
            at.offered += 1
            continue
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise AuthenticationFailed(host, f"{hop.label} closed the connection during "
                                             f"authentication: {exc}") from None
        if not remaining:
            _logged_in(host, hop, transport)
            return True
        at.partial.append(label)
        at.allowed, at.server_said = list(remaining), True
        if "publickey" not in at.allowed:
            return False
    return False


def _logged_in(host: str, hop: Endpoint, transport: paramiko.Transport) -> None:
    """paramiko answers [] both for a login and for a connection that closed at that moment."""
    if not transport.is_authenticated():
        raise AuthenticationFailed(host, f"{hop.label} closed the connection during "
                                         "authentication")


def _partial_message(hop: Endpoint, partial: list[str], tried: list[str],
                     allowed: list[str]) -> str:
    """The server took some steps and wants more (sshd's AuthenticationMethods)."""
    said = (f"{hop.label} accepted {', '.join(partial)} as one step but requires more "
            f"(AuthenticationMethods): it still asks for {', '.join(allowed) or 'nothing'}")
    if tried:
        said += f" (also tried {', '.join(tried)})"
    if "publickey" in allowed:
        return said + "; name another key it accepts (ansible_ssh_private_key_file, -i, ssh-agent)"
    if "password" in allowed and hop.password is None:
        return said + "; set ansible_password for the password step"
    return (said + "; harden logs in unattended and cannot answer an interactive second "
            "factor: give the automation account a key-only rule on the server (a Match block)")


def unusable_keys_message(hop: Endpoint, tried: list[str],
                          unusable: list[key_files.UnusableKey]) -> str:
    """A login that failed where some key files were of a type paramiko cannot use: each
    named with its type, and the OpenSSH transport suggested when ssh could use one (for a
    FIDO key: through its security-key provider or ssh-agent)."""
    if tried:
        start = f"{hop.label} refused authentication (tried {', '.join(tried)})"
    else:
        start = f"no way to log in to {hop.label} with the paramiko transport"
    parts = [start, *(key.describe() for key in unusable)]
    if any(key.openssh_can for key in unusable):
        how = (" with the authenticator attached (or a middleware library named with "
               "SecurityKeyProvider in the ssh config or ansible_ssh_common_args); or load the "
               "key into ssh-agent (ssh-add), which signs with it for either transport"
               if any(key.fido for key in unusable) else "")
        parts.append(f"{USE_OPENSSH}, whose ssh can use it" + how)
    return ". ".join(parts)


PARAMIKO_METHODS = ("publickey", "password", "keyboard-interactive")


def _methods_allowed(hop: Endpoint, transport: paramiko.Transport) -> list[str] | None:
    """The methods the server allows, asked with a `none` request (what ssh sends first) when
    no attempt told: [] when that request logged in, None when the server would not say."""
    if not transport.is_active():
        return None
    try:
        remaining = transport.auth_none(hop.user)
    except paramiko.BadAuthenticationType as exc:
        return list(exc.allowed_types)
    except (paramiko.SSHException, EOFError, OSError):
        return None
    return [] if transport.is_authenticated() else list(remaining)


def unsupported_methods_message(allowed: list[str]) -> str:
    """Why paramiko cannot log in where the server allows none of its methods, and what can:
    GSSAPI (Kerberos) in paramiko needs python-gssapi, which harden does not depend on, while
    the system ssh does it with the user's ticket."""
    methods = ", ".join(allowed) or "no method"
    kerberos = any(m.startswith("gssapi") for m in allowed)
    return (f"the server accepts only {methods}"
            + (" (Kerberos)" if kerberos else "")
            + f", which the paramiko transport does not do. {USE_OPENSSH}"
            + (", with a ticket (kinit) and GSSAPIAuthentication yes in the ssh config or "
               "ansible_ssh_common_args" if kerberos else ""))


def _password_auth(hop: Endpoint, transport: paramiko.Transport, allowed: list[str]):
    """[] when the password logged in, the methods still asked when it was accepted as one
    step, False when it was refused, None when the server takes no password at all (not
    sent)."""
    password = hop.password.reveal()
    try:
        if "password" in allowed:
            return list(transport.auth_password(hop.user, password))
        if "keyboard-interactive" in allowed:
            return list(transport.auth_interactive(
                hop.user, lambda _t, _i, prompts: [password] * len(prompts)))
        return None
    except paramiko.BadAuthenticationType as exc:
        if "keyboard-interactive" in exc.allowed_types and "password" in allowed:
            return _password_auth(hop, transport, ["keyboard-interactive"])
        return None
    except paramiko.AuthenticationException:
        return False


def _candidate_keys(hop: Endpoint, notes: list[str], unusable: list[key_files.UnusableKey]):
    """(label, key) pairs, loaded lazily so an unused default key is never even read; key
    files paramiko cannot load because of their type go to `unusable`, notes on the others
    (missing, passphrase-protected, unreadable) to `notes`.

    The identity files are those named (inventory, IdentityFile), or ssh's default key files
    when none is (`hop.default_keys`): ssh tries its defaults only then, IdentitiesOnly or not
    (`ssh -G` lists them). A jump host not in the inventory is offered the target's key files
    and then its defaults. Order: the named files, the agent's other keys (not with
    IdentitiesOnly), then the default files (ssh puts the agent's keys first; named files
    first costs fewer of sshd's MaxAuthTries, which count every offer: each key is offered
    once). A key file paramiko cannot use itself (a FIDO key, a passphrase-protected key,
    only a public key) is offered through ssh-agent's copy of the key when the agent holds
    it, as ssh does, IdentitiesOnly or not. A key with a certificate (`<key>-cert.pub` beside
    it when no CertificateFile is configured, or a
    CertificateFile carrying its public key) is offered with each certificate first and then
    plain, the agent's copy too, as ssh does.
    """
    agent = _Agent(hop.identity_agent)
    try:
        for path in hop.key_files:
            yield from _file_keys(hop, path, agent, notes, unusable, named=True)
        if not hop.identities_only:
            for key in agent.keys():
                if agent.offer(key):
                    yield _agent_offer(key)
        if hop.default_keys:
            for raw in DEFAULT_IDENTITIES:
                yield from _file_keys(hop, _expand(raw), agent, notes, unusable, named=False)
    finally:
        agent.close()


def _file_keys(hop: Endpoint, path: str, agent: _Agent, notes: list[str],
               unusable: list[key_files.UnusableKey], named: bool):
    """What key file `path` offers: its key (with certificates) when paramiko loads it, else
    ssh-agent's copy of it (with the same certificates); else a note or an unusable key saying
    why not (nothing for a default key file that does not exist, or whose key the agent
    offered already)."""
    key, why, found = _load_key(path)
    if key is not None:
        yield from _with_certificates(hop, path, key, f"key {path}", agent,
                                      plain=agent.offer(key))
        return
    blob = key_files.public_key_of(path)
    held = agent.holding(blob)
    if held is not None:
        yield from _with_certificates(hop, path, held, f"key {path} (through ssh-agent)", agent,
                                      plain=agent.offer(held))
    elif blob is not None and blob in agent.offered:
        return
    elif why == MISSING and not named:
        return
    elif blob is not None and (why == MISSING or key_files.is_public_key_file(path)):
        notes.append(f"key {path} (only a public key, and ssh-agent holds no private key "
                     "for it)")
    elif found is not None:
        unusable.append(found)
    else:
        notes.append(f"key {path} ({why})")


def _agent_offer(key: paramiko.AgentKey) -> tuple[str, paramiko.AgentKey]:
    """An agent identity as offered: a certificate goes as itself (paramiko reads an RSA
    certificate's inner key, whose plain blob would otherwise be sent under the certificate's
    type), signed by the agent with its key."""
    if key.get_name().endswith(CERT_SUFFIX):
        key.public_blob = paramiko.PublicBlob(key.get_name(), key.blob)
        return f"agent certificate {key.get_fingerprint().hex()[:16]}", key
    return f"agent key {key.get_fingerprint().hex()[:16]}", key


class _Agent:
    """ssh-agent (IdentityAgent, else SSH_AUTH_SOCK), asked for its keys once and only when a
    key is wanted; it remembers every key offered during the login (from a file or from the
    agent)."""

    def __init__(self, setting: str | None = None):
        self._setting = setting
        self._agent: paramiko.Agent | None = None
        self.offered: set[bytes] = set()

    def keys(self) -> tuple:
        if self._agent is None:
            self._agent = _open_agent(self._setting)
        return self._agent.get_keys()

    def offer(self, key: paramiko.PKey) -> bool:
        """True the first time a key is offered (and remember it), False afterwards."""
        blob = _identity(key)
        if blob in self.offered:
            return False
        self.offered.add(blob)
        return True

    def holding(self, public_blob: bytes | None):
        """The agent's key with this public key, or None (the agent is not asked for None)."""
        if public_blob is None:
            return None
        for key in self.keys():
            if _identity(key) == public_blob:
                return key
        return None

    def close(self) -> None:
        if self._agent is not None:
            self._agent.close()


def _open_agent(setting: str | None) -> paramiko.Agent:
    """The agent IdentityAgent names, as ssh.c reads it: `none` (no agent), `SSH_AUTH_SOCK`
    or unset ($SSH_AUTH_SOCK), `$NAME` (the socket that variable names), else a path with
    `~`, `${VAR}` and %-tokens. No agent answering there means no agent keys, as for ssh."""
    if setting is None or setting == "SSH_AUTH_SOCK":
        return _SocketAgent(os.environ.get("SSH_AUTH_SOCK"))
    if setting.lower() == "none":
        return _SocketAgent(None)
    if setting.startswith("$") and not setting.startswith("${"):
        return _SocketAgent(os.environ.get(setting[1:]))
    return _SocketAgent(_agent_path(setting))


_AGENT_TOKENS = re.compile(r"%.|\$\{([^}]*)\}")


def _agent_path(setting: str) -> str | None:
    """`~`, `${VAR}` and the %-tokens that need no host (%d %u %i %%) expanded; None when
    one cannot be (an unset variable, a host token): ssh would not reach an agent either."""
    if setting.startswith("~/"):
        setting = sshconfig.passwd_home() + setting[1:]
    known = {"%%": "%", "%d": sshconfig.passwd_home(), "%u": sshconfig.local_user(),
             "%i": str(os.getuid())}
    missing = []

    def one(match: re.Match) -> str:
        value = (os.environ.get(match.group(1)) if match.group(1) is not None
                 else known.get(match.group(0)))
        if value is None:
            missing.append(match.group(0))
        return value or ""
    path = _AGENT_TOKENS.sub(one, setting)
    return None if missing else path


_AGENT_TIMEOUT = 10.0


class _SocketAgent(paramiko.Agent):
    """paramiko's Agent on a socket of our choosing (paramiko.Agent's own __init__ reads only
    $SSH_AUTH_SOCK, with no timeout), so the base class's __init__ is called instead. A
    socket that is no agent, answers nothing within _AGENT_TIMEOUT, or sends a key list
    paramiko cannot read gives no keys rather than an exception or a hang; once connected,
    signing may take as long as the user needs to approve it (1Password, `ssh-add -c`)."""

    def __init__(self, path: str | None):
        paramiko.agent.AgentSSH.__init__(self)
        if not path:
            return
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(_AGENT_TIMEOUT)
        try:
            conn.connect(path)
            self._connect(conn)
            conn.settimeout(None)      # paramiko's auth timeout bounds a signature
        except Exception:              # whatever the socket sent: no agent keys
            conn.close()
            self._conn, self._keys = None, ()


def _identity(key: paramiko.PKey) -> bytes:
    """What the agent knows a key by (its certificate's blob for a certificate), else the
    public key blob."""
    return key.blob if isinstance(key, paramiko.AgentKey) else key.asbytes()


def _with_certificates(hop: Endpoint, path: str, key: paramiko.PKey, label: str,
                       agent: _Agent, plain: bool = True):
    """`key` with each certificate for it (the CertificateFiles whose public key is `key`'s;
    without any CertificateFile, `<path>-cert.pub`, as ssh.c load_public_identity_files)
    not offered yet, then plain (when `plain`). An agent's key signs with its plain key and
    the request carries the certificate, as ssh does with a file's certificate; the agent's
    own copy of a certificate is the same offer."""
    found = []
    for cert_path in hop.cert_files or (path + "-cert.pub",):
        cert = certs.read_for_key(cert_path, key)
        if cert is not None and cert.path not in {c.path for c in found}:
            found.append(cert)
    for cert in found:
        if cert.blob.key_blob not in agent.offered:
            agent.offered.add(cert.blob.key_blob)
            key.public_blob = cert.blob
            yield cert.describe(hop.user), key
    key.public_blob = None
    if plain:
        yield label, key


MISSING = "missing"
PASSPHRASE = ("passphrase-protected: paramiko cannot ask for the passphrase; load the key into "
              "ssh-agent (ssh-add), whose copy of it is then used, as ssh does")
# warnings.catch_warnings changes process-wide state: one thread at a time
_WARNINGS = threading.Lock()


def _load_key(path: str):
    """(key, "", None) when paramiko loads `path`; (None, why, None) for a missing,
    passphrase-protected or unreadable file; (None, "", unusable) for a key type or format
    paramiko lacks (key_files)."""
    try:
        with _WARNINGS, warnings.catch_warnings():
            # cryptography warns on stderr when it reads a DSA key, which paramiko refuses
            # anyway; the refusal names key and type (key_files): the warning is only noise
            warnings.filterwarnings("ignore", message="SSH DSA key")
            return paramiko.PKey.from_path(path), "", None
    except FileNotFoundError:
        return None, MISSING, None
    except Exception as exc:   # noqa: BLE001 - cryptography and paramiko raise their own types
        if key_files.is_passphrase_problem(exc):
            return None, PASSPHRASE, None
        found = key_files.describe(path, exc)
        if found is not None:
            return None, "", found
        if isinstance(exc, (paramiko.SSHException, OSError, ValueError)):
            return None, f"unreadable: {exc}", None
        raise


def _expand(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


class ParamikoSession(HostSession):
    """The paramiko implementation of harden.ssh.session.Session: the one SSH session of one
    host, exec channels and direct-tcpip tunnels over one paramiko Transport."""

    def __init__(self, spec: ConnectionSpec, transports: list[paramiko.Transport]):
        super().__init__(spec)
        self._transports = transports

    @property
    def transport(self) -> paramiko.Transport:
        return self._transports[-1]

    def open_tcp(self, host: str, port: int, timeout: float | None = None) -> paramiko.Channel:
        """A TCP connection made *by the node* to host:port (health checks from its viewpoint)."""
        try:
            return self.transport.open_channel("direct-tcpip", (host, port), ("127.0.0.1", 0),
                                               timeout=timeout or self.spec.connect_timeout)
        except paramiko.ChannelException as exc:
            raise HostError(self.host, f"the node could not connect to {host}:{port}: "
                                       f"{exc.text}", "direct-tcpip") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(self.host, f"connection lost: {exc}") from None

    def close(self) -> None:
        for transport in reversed(self._transports):
            transport.close()

    def _open_stream(self, command: str, deadline: float | None,
                     timeout: float | None) -> _Stream:
        try:
            channel = self.transport.open_session(timeout=self.spec.connect_timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise Unreachable(self.host, f"connection lost: {exc or type(exc).__name__}") from None
        return _Stream(self.host, channel, deadline, timeout)


class _Stream:
    """Reads stdout and stderr of one exec channel together, feeding stdin without deadlock."""

    def __init__(self, host: str, channel: paramiko.Channel, deadline: float | None,
                 timeout: float | None):
        self.host, self.channel = host, channel
        self.deadline, self.timeout = deadline, timeout
        self.stdout, self.stderr = bytearray(), bytearray()
        self.max_output = MAX_OUTPUT_BYTES
        self._pending = b""
        self._stdin_closed = False

    def send(self, data: bytes) -> None:
        try:
            self.channel.sendall(data)
        except paramiko.SSHException as exc:
            raise OSError(str(exc)) from None

    def close(self) -> None:
        self.channel.close()

    @property
    def ended(self) -> bool:
        ch = self.channel
        return (ch.eof_received or ch.closed) and not ch.recv_ready() and not \
            ch.recv_stderr_ready()

    def exit_status(self) -> int:
        """The command's exit status; Unreachable when the connection died under it.

        paramiko reports a channel closed without an exit status as -1, which would read as a
        command that ran and failed; a lost connection says nothing about the command's
        outcome. A command killed by a signal also has no exit status, but its channel got
        an orderly EOF on a live connection, so it keeps -1.
        """
        channel = self.channel
        channel.status_event.wait(self._remaining(5.0))
        if not channel.status_event.is_set():
            return -1
        if channel.exit_status == -1 and self._connection_lost():
            raise Unreachable(self.host, "connection lost while the command ran")
        return channel.exit_status

    def _connection_lost(self) -> bool:
        transport = self.channel.get_transport()
        return not self.channel.eof_received or transport is None or not transport.is_active()

    def finish(self, stdin: bytes) -> CommandResult:
        """Send stdin, close it, read until the command ends; timeouts close the channel."""
        self._pending = stdin
        try:
            while not self.ended:
                self._feed_stdin()
                self.pump(None)
            return CommandResult(self.exit_status(), bytes(self.stdout), bytes(self.stderr))
        finally:
            self.channel.close()

    def pump(self, until: float | None) -> None:
        """Wait (at most until `until`) for output and take what is there.

        Raises CommandTimeout, after closing the channel, once the command's deadline passed.
        """
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            self.channel.close()
            raise CommandTimeout(self.host, f"command did not finish within {self.timeout:g}s "
                                            "(it was not re-run)")
        wait = _POLL if self._pending else 0.5
        for limit in (until, self.deadline):
            if limit is not None:
                wait = max(0.0, min(wait, limit - now))
        select.select([self.channel], [], [], wait)
        while self.channel.recv_ready():
            self.stdout += self.channel.recv(_CHUNK)
            self._bounded()
        while self.channel.recv_stderr_ready():
            self.stderr += self.channel.recv_stderr(_CHUNK)
            self._bounded()

    def _bounded(self) -> None:
        bounded_output(self.host, self.stdout, self.stderr, self.max_output, self.channel.close)

    def _feed_stdin(self) -> None:
        if self._stdin_closed:
            return
        if self._pending and self.channel.send_ready():
            sent = self.channel.send(self._pending[:_CHUNK])
            self._pending = self._pending[sent:]
        if not self._pending:
            self.channel.shutdown_write()
            self._stdin_closed = True

    def _remaining(self, default: float) -> float:
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - time.monotonic())
