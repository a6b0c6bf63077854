"""Progress on a terminal while hosts are worked on: hosts done / total, the current phase
(play, batch), what each running host is doing, and the elapsed time.

A 200-node run takes half a minute; a blank screen for that long looks like a hang. The
display is rich's live view, drawn only on a terminal and removed when the run ends (it is
transient), so nothing of it reaches a file, a pipe or a machine-readable report. Callers
decide whether it may be shown (`wanted`); every method is a no-op when it is not.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live

MACHINE_FORMATS = ("json", "junit", "sarif", "prometheus")
MAX_RUNNING_SHOWN = 6


def wanted(fmt: str = "text", stream=None) -> bool:
    """Only for a person: stdout is a terminal and the output is not a machine format."""
    stream = stream or sys.stdout
    return fmt not in MACHINE_FORMATS and hasattr(stream, "isatty") and stream.isatty()


class HostProgress:
    """Live progress of one command over many hosts. Thread-safe (hosts report from workers)."""

    def __init__(self, title: str, total: int = 0, *, console: Console | None = None,
                 enabled: bool | None = None):
        self.title = title
        self.total = total
        # rich is imported only when the display may be drawn: a machine-format run (check
        # --format json) then skips its import, about 60 ms of CPU before the first host
        if console is None and enabled is not False:
            from rich.console import Console
            console = Console(highlight=False)
        self.console = console
        self.enabled = bool(console is not None and console.is_terminal
                            and (enabled is None or enabled))
        self.done = 0
        self.failed = 0
        self.phase = ""
        self.running: dict[str, str] = {}
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._live: Live | None = None

    # ---- lifetime --------------------------------------------------------------------------
    def __enter__(self) -> HostProgress:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if self.enabled and self._live is None:
            from rich.live import Live
            self._started = time.monotonic()
            self._live = Live(get_renderable=self._render, console=self.console,
                              transient=True, refresh_per_second=4, redirect_stdout=False,
                              redirect_stderr=False)
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # ---- what callers report ---------------------------------------------------------------
    def set_phase(self, text: str, total: int | None = None) -> None:
        with self._lock:
            self.phase = text
            if total is not None:
                self.total, self.done, self.failed = total, 0, 0

    def host_started(self, host: str, step: str = "") -> None:
        with self._lock:
            self.running[host] = step

    def host_step(self, host: str, step: str) -> None:
        with self._lock:
            self.running[host] = step

    def host_finished(self, host: str, ok: bool = True) -> None:
        with self._lock:
            self.running.pop(host, None)
            self.done += 1
            self.failed += not ok

    def around(self, fn: Callable[[Any], Any], ok: Callable[[Any], bool] = lambda _: True):
        """fn wrapped to report its host's start and end (for `for_each_host`)."""
        def wrapped(host):
            self.host_started(host.name)
            success = False
            try:
                value = fn(host)
                success = ok(value)
                return value
            finally:
                self.host_finished(host.name, success)
        return wrapped

    # ---- drawing ---------------------------------------------------------------------------
    def line(self) -> str:
        """The status line in plain words (also what tests read)."""
        with self._lock:
            done, total, failed, phase = self.done, self.total, self.failed, self.phase
        parts = [self.title]
        if phase:
            parts.append(phase)
        parts.append(f"{done}/{total} hosts done")
        if failed:
            parts.append(f"{failed} failed")
        parts.append(f"{time.monotonic() - self._started:.0f}s elapsed")
        return " · ".join(parts)

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text
        with self._lock:
            running = sorted(self.running.items())
            done, total = self.done, self.total
        head = Table.grid(padding=(0, 1))
        head.add_row(ProgressBar(total=max(total, 1), completed=done, width=30),
                     Text(self.line(), style="bold"))
        rows = [head]
        for host, step in running[:MAX_RUNNING_SHOWN]:
            rows.append(Text.assemble("  ", (host, "cyan"), " ", (step or "working", "dim")))
        if len(running) > MAX_RUNNING_SHOWN:
            rows.append(Text(f"  … {len(running) - MAX_RUNNING_SHOWN} more hosts running",
                             style="dim"))
        return Group(*rows)
