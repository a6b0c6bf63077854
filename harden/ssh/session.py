"""The one interface every part of harden uses to reach a node (ansible's ConnectionBase).

Facts, writes, health probes and rollback take a `Session` and nothing else, so a transport is
exchangeable (paramiko today) and the tests' local stand-in can be checked to have the same
shape as the real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class CommandResult:
    rc: int
    stdout: bytes
    stderr: bytes


@runtime_checkable
class Session(Protocol):
    """An open connection to one host, for the length of a run."""

    host: str
    exec_count: int

    def run(self, command: str, *, become: bool | None = None, stdin: bytes | None = None,
            timeout: float | None = None) -> CommandResult:
        """Run one command (one exec); become=None follows the host's ansible_become."""

    def open_tcp(self, host: str, port: int, timeout: float | None = None):
        """A socket-like TCP connection made by the node to host:port (health probes)."""

    def close(self) -> None:
        """End the connection; safe to call twice."""
