"""Reaching a host: `connect` picks the host's transport, `JumpPool` shares jump-host logins.

The paramiko transport lives in harden.ssh.paramiko_session, the OpenSSH transport in
harden.ssh.openssh. This module imports neither paramiko nor cryptography: importing them
costs about 0.2 s of CPU, paid only once a host actually uses paramiko (a run over the
openssh transport never does). The paramiko session's names stay importable from here.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harden.errors import HostError
from harden.ssh import openssh
from harden.ssh.common import (BECOME_HANDSHAKE_TIMEOUT, AuthenticationFailed, BecomeFailed,
                               CommandTimeout, HostSession, Unreachable, NetworkError,
                               with_retries, sudo_command)
from harden.ssh.session import CommandResult, Session
from harden.ssh.settings import ConnectionSpec, Endpoint
from harden.ssh.hostkeys import HostKeyMismatch, HostKeyUnknown

if TYPE_CHECKING:
    import paramiko

__all__ = ["BECOME_HANDSHAKE_TIMEOUT", "AuthenticationFailed", "BecomeFailed", "CommandResult",
           "CommandTimeout", "HostKeyMismatch", "HostKeyUnknown", "HostSession", "JumpPool",
           "NetworkError", "ParamikoSession", "Unreachable", "connect", "sudo_command"]

# names of harden.ssh.paramiko_session that callers import from here (loaded on first use)
_PARAMIKO_NAMES = {"ParamikoSession", "negotiation_message", "_Stream"}


def __getattr__(name: str):
    """`from harden.ssh.transport import ParamikoSession` still works, importing paramiko
    only then."""
    if name in _PARAMIKO_NAMES:
        from harden.ssh import paramiko_session
        return getattr(paramiko_session, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def connect(spec: ConnectionSpec, jumps: JumpPool | None = None,
            one_exec: bool = False) -> Session:
    """Open the host's session (through its jump hosts); retry only network failures.

    With a JumpPool, the jump hosts' connections are shared with every other host behind
    the same chain; without one, this session logs in to each jump host itself. `one_exec`
    says the caller means to run one command (a check's probe): the OpenSSH transport then
    logs in with that command instead of with a master of its own first (connect_openssh);
    a further command still works, at the cost of a second login.
    """
    if spec.transport == "openssh":
        return openssh.connect_openssh(spec, jumps.masters() if jumps is not None else None,
                                       one_exec=one_exec)
    from harden.ssh import paramiko_session
    return paramiko_session.connect_paramiko(spec, jumps)


class JumpPool:
    """One logged-in connection per jump chain, shared by every host behind it for the run.

    Fifty nodes behind one bastion then cost the bastion one login instead of fifty (and stay
    clear of its MaxStartups limit). A bastion that cannot be reached or logged in to fails
    every host behind it with the same reason, without fifty more attempts.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple, _PoolSlot] = {}
        self._masters: openssh.JumpMasters | None = None   # the openssh transport's

    def masters(self) -> openssh.JumpMasters:
        """The openssh transport's shared jump-host masters (made on first use)."""
        with self._lock:
            if self._masters is None:
                self._masters = openssh.JumpMasters()
            return self._masters

    def transport(self, spec: ConnectionSpec, chain: tuple[Endpoint, ...]) -> paramiko.Transport:
        """The logged-in paramiko transport to the last hop of `chain` (opened on first use)."""
        from harden.ssh import paramiko_session
        key = (chain, spec.all_known_hosts_files, spec.host_key_policy,
               spec.record_known_hosts_file)
        with self._lock:
            slot = self._slots.setdefault(key, _PoolSlot())
        with slot.lock:
            if slot.error is not None:
                raise type(slot.error)(spec.host, slot.error.message, slot.error.setting)
            if slot.transport is None or not slot.transport.is_active():
                try:
                    slot.transport = with_retries(spec, lambda: paramiko_session.open_hop(
                        spec, chain, lambda hops: self.transport(spec, hops)))
                except HostError as exc:
                    slot.error = exc
                    raise
            return slot.transport

    def close(self) -> None:
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
            masters, self._masters = self._masters, None
        if masters is not None:
            masters.close()
        for slot in reversed(slots):
            if slot.transport is not None:
                slot.transport.close()


@dataclass
class _PoolSlot:
    lock: threading.Lock = field(default_factory=threading.Lock)
    transport: paramiko.Transport | None = None
    error: HostError | None = None
