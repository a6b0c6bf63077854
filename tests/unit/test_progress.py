"""The live progress display: counts, phases, and never drawn off a terminal."""

from __future__ import annotations

import io
import types

from rich.console import Console

from harden.progress import HostProgress, wanted


def _host(name):
    return types.SimpleNamespace(name=name)


def test_counts_hosts_done_and_failed_through_the_wrapper():
    progress = HostProgress("harden check", 3, enabled=False)
    ok = progress.around(lambda host: "fine")
    ok(_host("a"))
    bad = progress.around(lambda host: 1 / 0)
    try:
        bad(_host("b"))
    except ZeroDivisionError:
        pass
    refused = progress.around(lambda host: "refused", lambda value: value != "refused")
    refused(_host("c"))
    assert progress.line().startswith("harden check · 3/3 hosts done · 2 failed · ")
    assert progress.running == {}


def test_a_new_phase_with_a_total_restarts_the_count():
    progress = HostProgress("harden apply", enabled=False)
    progress.set_phase("play 'a'", total=4)
    progress.host_step("cp1", "gathering facts")
    assert progress.running == {"cp1": "gathering facts"}
    progress.host_finished("cp1")
    progress.set_phase("play 'a' batch 2/2")
    assert "play 'a' batch 2/2 · 1/4 hosts done" in progress.line()
    progress.set_phase("play 'b'", total=2)
    assert "play 'b' · 0/2 hosts done" in progress.line()


def test_nothing_is_drawn_when_the_console_is_not_a_terminal():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False)
    with HostProgress("harden prune", 2, console=console, enabled=True) as progress:
        progress.host_started("w1", "listing runs")
        progress.host_finished("w1")
    assert buffer.getvalue() == ""


def test_drawn_on_a_terminal_and_removed_at_the_end():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with HostProgress("harden check", 2, console=console) as progress:
        progress.host_started("w1", "probing")
        progress._live.refresh()
    assert "harden check · 0/2 hosts done" in buffer.getvalue()
    assert "probing" in buffer.getvalue()


def test_machine_formats_and_pipes_never_get_progress():
    tty = types.SimpleNamespace(isatty=lambda: True)
    pipe = types.SimpleNamespace(isatty=lambda: False)
    assert wanted("text", tty) and not wanted("text", pipe)
    assert not any(wanted(fmt, tty) for fmt in ("json", "junit", "sarif", "prometheus"))
