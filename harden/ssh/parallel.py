"""Bounded parallelism over hosts: at most `forks` hosts are worked on at once.

A thread pool rather than a thread per host, because each host holds an SSH connection and
sshd (MaxStartups) and the controller both suffer from hundreds of simultaneous handshakes.
One host's failure is recorded as that host's outcome and never stops the others.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, TypeVar

from harden.errors import HardenError

DEFAULT_FORKS = 20
T = TypeVar("T")


@dataclass
class HostOutcome:
    """What happened on one host: a value, or an error with its kind for the recap."""

    host: str
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def kind(self) -> str:
        """'ok', the error class's `kind` ('unreachable', 'auth failed', ...), or 'error'."""
        if self.error is None:
            return "ok"
        return getattr(self.error, "kind", "error")

    @property
    def message(self) -> str:
        """The error in words. Unexpected exceptions show only their type and text."""
        if self.error is None:
            return ""
        if isinstance(self.error, HardenError):
            return getattr(self.error, "message", str(self.error))
        return f"internal error: {type(self.error).__name__}: {self.error}"


def for_each_host(hosts: Iterable[Any], fn: Callable[[Any], T],
                  forks: int = DEFAULT_FORKS) -> dict[str, HostOutcome]:
    """Run fn(host) for every host, at most `forks` at a time; outcomes in the hosts' order."""
    hosts = list(hosts)
    if not hosts:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts))),
                            thread_name_prefix="harden-host") as pool:
        futures = [(host.name, pool.submit(_outcome, host, fn)) for host in hosts]
        try:
            return {name: future.result() for name, future in futures}
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _outcome(host: Any, fn: Callable[[Any], T]) -> HostOutcome:
    started = time.monotonic()
    try:
        value = fn(host)
    except Exception as exc:   # noqa: BLE001 - one host's failure must not stop the others
        return HostOutcome(host.name, error=exc, seconds=time.monotonic() - started)
    return HostOutcome(host.name, value=value, seconds=time.monotonic() - started)
