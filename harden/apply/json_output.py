"""`harden apply --format json`: one JSON document on stdout at the end, warnings on stderr.

Apart from harden.apply.output (the text printer) so that a JSON run imports no rich until it
has a warning to print.
"""

from __future__ import annotations

import json

from harden.apply.events import Output, RunResult


class JsonOutput(Output):
    """Machine output: only the final document goes to stdout; warnings go to stderr."""

    def __init__(self, diff: bool = False, echo=print, err=None):
        self.diff = diff
        self.echo = echo
        self._err = err
        self.warnings: list[dict] = []

    @property
    def err(self):
        """stderr's console, made (and rich imported) at the first warning: most runs have
        none, and rich is ~30 ms of imports before the first connection."""
        if self._err is None:
            from rich.console import Console
            self._err = Console(stderr=True, soft_wrap=True, highlight=False)
        return self._err

    def warning(self, host: str | None, message: str) -> None:
        self.warnings.append({"host": host, "message": message})
        self.err.print(f"{host + ': ' if host else ''}{message}", markup=False)

    def stopped(self, message: str) -> None:
        self.warning(None, message)

    def finish(self, result: RunResult) -> None:
        self.echo(json.dumps(document(result, self.diff, self.warnings), indent=2))


def document(result: RunResult, with_diff: bool, warnings: list[dict] = ()) -> dict:
    tasks: dict[str, list[dict]] = {host: [] for host in result.hosts}
    for task in result.tasks:
        entry = {"play": task.play, "task": task.task, "status": task.status}
        if task.handler:
            entry["handler"] = True
        if task.status == "failed" and task.ignore_errors:
            entry["ignored"] = True
        if task.message:
            entry["message"] = task.message
        if with_diff and task.diff:
            entry["diff"] = task.diff
        tasks.setdefault(task.host, []).append(entry)
    return {"run_id": result.run_id, "check": result.check, "check_mode": result.check_mode,
            "exit_code": result.exit_code,
            "hosts": {host: s.as_dict() for host, s in result.hosts.items()},
            "execs": {host: len(execs) for host, execs in result.execs.items()},
            "seconds": result.seconds,
            "tasks": tasks, "stopped": result.stopped or None, "warnings": list(warnings)}
