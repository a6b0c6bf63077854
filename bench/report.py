"""The benchmark's results as markdown: machine facts, then one table per lab size."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Sequence

from bench.measure import Summary


def ratio(value: float, base: float) -> str:
    return f"{value / base:.1f}×" if base > 0 else "–"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}–{high}"


def table(nodes: int, control_planes: int, repeats: dict[str, int], summaries: Sequence[Summary],
          floor: str, harden: str, background_cores: float) -> str:
    """One lab size: a row per tool, ratios against the OpenSSH floor and against harden."""
    by_name = {s.tool: s for s in summaries}
    floor_s = by_name[floor].median if floor in by_name else 0.0
    harden_s = by_name[harden].median if harden in by_name else 0.0
    workers = nodes - control_planes
    lines = [f"### {plural(nodes, 'node')} ({plural(control_planes, 'control plane')}, "
             f"{plural(workers, 'worker')})", "",
             f"The idle lab itself kept {background_cores:.2f} of the machine's cores busy.", "",
             "| tool | runs | wall s median (min–max) | × OpenSSH floor | × harden "
             "| controller CPU s | nodes' CPU s | largest process MiB | process tree PSS MiB "
             "| SSH logins/host | execs/host |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        runs = f"{repeats[s.tool]}" + (f" ({s.failures} FAILED)" if s.failures else "")
        lines.append(
            f"| {s.tool} | {runs} | {s.median:.2f} ({s.low:.2f}–{s.high:.2f}) "
            f"| {ratio(s.median, floor_s)} | {ratio(s.median, harden_s)} | {s.cpu:.2f} "
            f"| {s.node_cpu:.2f} | {s.max_rss_mib:.0f} | {s.tree_pss_mib:.0f} "
            f"| {span(*s.logins)} | {span(*s.execs)} |")
    skipped = [name for name, count in repeats.items() if count == 0]
    if skipped:
        lines += ["", f"Not run at this size: {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"


def _first_line(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return "unknown"


def machine_facts(ansible_version: str | None) -> list[str]:
    """What a reader needs to compare these figures with theirs."""
    import paramiko

    return [f"CPU: {os.cpu_count()} × {_cpu_model()}; memory {_memory_gib()}",
            f"kernel: {platform.system()} {platform.release()}; "
            f"{_first_line(['sh', '-c', '. /etc/os-release && echo $PRETTY_NAME'])}",
            f"Python {platform.python_version()}; paramiko {paramiko.__version__}; "
            f"{_first_line(['ssh', '-V'])}",
            f"ansible: {ansible_version or 'not run (--skip-ansible)'}"]


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
