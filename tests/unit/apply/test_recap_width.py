"""The apply recap fits an 80-column terminal and keeps every count column."""

import io

from rich.console import Console

from harden.apply.events import HostSummary, RunResult
from harden.apply.output import RECAP_COLUMNS, TextOutput


def _recap(monkeypatch, hosts: dict) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    buffer = io.StringIO()
    output = TextOutput(console=Console(file=buffer, soft_wrap=True, highlight=False))
    output.finish(RunResult("20261205-233000-abcd", True, hosts))
    return buffer.getvalue()


def test_recap_at_80_columns_shows_every_header_uncut(monkeypatch):
    text = _recap(monkeypatch, {"cp1": HostSummary(), "w1": HostSummary()})
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    header = " ".join(text.splitlines()[1:3])
    for word in ("ok", "changed", "failed", "unreach-", "able", "rolled", "back", "skipped",
                 "rescued", "ignored"):
        assert word in header.split(), (word, header)


def test_recap_at_80_columns_keeps_each_count_of_a_long_host_name(monkeypatch):
    summary = HostSummary(ok=11, changed=22, failed=33, skipped=44, rescued=55, ignored=66)
    text = _recap(monkeypatch, {"control-plane-01.k8s.prod.example.com": summary})
    assert max(len(line) for line in text.splitlines()) <= 80
    row = next(line for line in text.splitlines() if line.startswith("control-plane"))
    assert row.split()[1:] == ["11", "22", "33", "0", "0", "44", "55", "66"]
    lines = text.splitlines()
    start = lines.index(row)
    host = "".join(line.split()[0] for line in lines[start:] if line.strip())
    assert host == "control-plane-01.k8s.prod.example.com"
    assert len(RECAP_COLUMNS) == 8
