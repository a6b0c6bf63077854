"""What `harden apply` shows: per-task lines, coloured diffs, a live per-host view, a recap;
or, with --format json, one JSON document at the end and nothing else on stdout.

Diffs arrive already redacted by the modules; this module adds nothing that could carry a
secret (no scripts, no file content besides those diffs).
"""

from __future__ import annotations

import threading

from rich.console import Console
from rich.table import Table
from rich import box
from rich.text import Text

from harden.apply.playbook import Play
from harden.apply.events import Output, RunResult, TaskResult
from harden.apply.json_output import JsonOutput, document  # noqa: F401 - importable from here
from harden.progress import HostProgress

RECAP_COLUMNS = ("ok", "changed", "failed", "unreachable", "rolled_back", "skipped", "rescued",
                 "ignored")
# Header labels: the two long ones on two lines, so the recap fits an 80-column terminal with
# every column kept (a long host name folds instead of pushing a count off the screen).
_RECAP_HEADERS = {"unreachable": "unreach-\nable", "rolled_back": "rolled\nback"}
_STATUS_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "skipped": "cyan"}


def diff_text(diff: str) -> Text:
    text = Text()
    for line in diff.splitlines(keepends=True):
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = ""
        text.append(line, style=style)
    return text


class TextOutput(Output):
    """Human output. On a terminal a live footer shows the play, the batch, hosts done of the
    play's total, the elapsed time and what each running host is doing right now."""

    def __init__(self, console: Console | None = None, diff: bool = False, check: bool = False,
                 verbosity: int = 0, check_mode: str = "predict"):
        self.console = console or Console(soft_wrap=True, highlight=False)
        self.diff = diff
        self.check = check
        self.check_mode = check_mode
        self.verbosity = verbosity
        self._lock = threading.Lock()
        self._play = ""
        self._progress = HostProgress("harden apply" + (" --check" if check else ""),
                                      console=self.console)
        self._progress.start()

    def _print(self, *items) -> None:
        with self._lock:
            for item in items:
                self.console.print(item)

    def play_start(self, play: Play, hosts: list[str], matched: bool = True) -> None:
        """`matched`: whether the play's pattern (and --limit) selected any host, before those
        that failed in earlier plays were taken out; Ansible's two messages for an empty play."""
        mode = (" (check mode, as ansible-playbook)" if self.check_mode == "ansible"
                else " (check mode)") if self.check else ""
        self._play = f"play '{play.name}'"
        self._progress.set_phase(self._play, total=len(hosts))
        self._print(Text(f"PLAY [{play.name}]{mode} on {len(hosts)} host(s)", style="bold"))
        if not hosts:
            self._print(Text("NO MORE HOSTS LEFT" if matched else "skipping: no hosts matched"))

    def batch_start(self, number: int, of: int, hosts: list[str]) -> None:
        if of > 1:
            self._progress.set_phase(f"{self._play} batch {number}/{of}")

    def host_step(self, host: str, step: str) -> None:
        self._progress.host_step(host, step)

    def host_done(self, host: str, status: str) -> None:
        self._progress.host_finished(host, ok=status not in ("failed", "unreachable",
                                                             "rolled_back"))

    def task(self, result: TaskResult) -> None:
        line = Text()
        line.append(f"{result.host:<12} ", style="bold")
        line.append(("handler " if result.handler else "") + result.task + "  ")
        line.append(result.status, style=_STATUS_STYLE.get(result.status, ""))
        if result.status == "failed" and result.ignore_errors:
            line.append(" (ignored)", style="cyan")
        if result.message:
            line.append(f"  {result.message}", style="dim" if result.status != "failed"
                        else "red")
        if self.verbosity >= 2 and result.seconds is not None:
            line.append(f"  ({result.seconds:.2f}s)", style="dim")
        items = [line]
        if self.diff and result.diff:
            items.append(diff_text(result.diff))
        self._print(*items)

    def warning(self, host: str | None, message: str) -> None:
        prefix = f"{host}: " if host else ""
        self._print(Text(f"{prefix}{message}", style="magenta"))

    def stopped(self, message: str) -> None:
        self._print(Text(message, style="bold red"))

    def finish(self, result: RunResult) -> None:
        self._progress.stop()
        table = Table(title=f"RECAP run {result.run_id}" + (" (check mode)" if result.check
                                                             else ""),
                      box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      collapse_padding=True)
        table.add_column("host", overflow="fold", min_width=12)
        for column in RECAP_COLUMNS:
            table.add_column(_RECAP_HEADERS.get(column, column), justify="right", no_wrap=True)
        for host, summary in result.hosts.items():
            values = summary.as_dict()
            table.add_row(host, *(Text(str(values[c]), style=_recap_style(c, values[c]))
                                  for c in RECAP_COLUMNS))
        self.console.print(table)
        if result.check and result.exit_code == 2:
            self.console.print("check mode: changes are pending (exit 2)")
        if self.verbosity:
            for line in exec_report(result, self.verbosity):
                self.console.print(line, markup=False, highlight=False)


def exec_report(result: RunResult, verbosity: int) -> list[str]:
    """-v: execs and node time per host, and the run's wall time; -vvv: every exec, labelled
    with what the host was doing (gathering facts, writing, a task's name, ...)."""
    lines = [f"run {result.run_id}: {result.seconds:.2f}s wall, "
             f"{sum(len(e) for e in result.execs.values())} execs on "
             f"{len(result.execs)} host(s)"]
    for host, execs in result.execs.items():
        lines.append(f"{host}: {len(execs)} execs, {sum(s for _, s, _ in execs):.2f}s in them")
        if verbosity >= 3:
            lines += [f"  exec {n}: {step} ({seconds:.3f}s, rc {rc})"
                      for n, (step, seconds, rc) in enumerate(execs, 1)]
    return lines


def _recap_style(column: str, value: int) -> str:
    if not value:
        return "dim"
    return {"changed": "yellow", "failed": "bold red", "unreachable": "bold red",
            "rolled_back": "bold magenta", "skipped": "cyan", "rescued": "magenta",
            "ignored": "cyan"}.get(column, "green")


def print_runs(console: Console, rows: list[dict]) -> None:
    """`harden runs`: one line per run, newest first (plain columns, so it greps well)."""
    import time

    if not rows:
        console.print("no runs recorded yet")
        return
    console.print(f"{'RUN ID':<24} {'STARTED':<19} {'HOSTS':>5} {'CHANGED':>7} {'FAILED':>6} "
                  f"{'ROLLED BACK':>11}  {'STATE':<16} PLAYBOOK", markup=False)
    for row in rows:
        state = ("interrupted" if row["interrupted"] else "running" if row["running"]
                 else "resolved" if row.get("resolved") and row["finished"] is None
                 else f"exit {row['exit_code']}") + (" check" if row["check"] else "") + \
            (f" pruned {row['pruned']}" if row.get("pruned") else "")   # hosts, `harden prune`
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started"]))
        line = Text(f"{row['id']:<24} {started:<19} {row['hosts']:>5} {row['changed']:>7} "
                    f"{row['failed']:>6} {row['rolled_back']:>11}  ")
        line.append(f"{state:<16}", style="bold red" if row["interrupted"] else "")
        labels = " ".join(f"{k}={v}" for k, v in sorted((row.get("vars") or {}).items()))
        line.append(f" {row['playbook'] or row['command'] or ''}")
        line.append(f" {labels}" if labels else "")
        console.print(line)
