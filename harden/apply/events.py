"""What an apply run reports, apart from the run loop (ansible's TaskResult and callbacks).

The runner produces these and calls an `Output`; the printers in harden.apply.output consume
them. Neither imports the other, so the run loop can change without touching how it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harden.apply.playbook import Play

EXIT_OK, EXIT_DRIFT, EXIT_HOSTS = 0, 2, 4
_RANK = ("skipped", "ok", "changed", "failed")     # how a loop's items merge into one count


@dataclass
class TaskResult:
    """One line of output: a task on a host. `diff` is already redacted."""

    host: str
    play: str
    task: str
    status: str                       # ok | changed | failed | skipped
    message: str = ""
    diff: str = ""
    handler: bool = False
    no_log: bool = False              # the task said no_log: no message, no diff anywhere
    ignore_errors: bool = False       # a failure here is counted as ignored, not failed
    failed_changed: bool = False      # failed after changing something (a command that ran)
    started: float | None = None      # time.monotonic() when the task began
    seconds: float | None = None      # from the task's start to its report (-vv)
    loop: str | None = None           # an item's looped task (one run of it): counted once


@dataclass
class HostSummary:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    rolled_back: int = 0
    skipped: int = 0
    rescued: int = 0                  # failures a block's rescue caught (not in `failed`)
    ignored: int = 0                  # failures of ignore_errors tasks (not in `failed`)
    # A looped task's items merged so far, by loop: (status, ignore_errors, failed_changed).
    _loops: dict = field(default_factory=dict, repr=False, compare=False)

    def add(self, result: TaskResult) -> None:
        """Count a task's line. The items of a loop count as ONE task, as ansible-core counts
        them: failed when an item failed, else changed when one changed, skipped when all
        were skipped, else ok (an item's line may come late: its write is batched)."""
        one = (result.status, result.ignore_errors, result.failed_changed)
        if result.loop is None:
            self._count(*one, 1)
            return
        before = self._loops.get(result.loop)
        if before is not None:
            self._count(*before, -1)
            one = (max(before[0], one[0], key=_RANK.index), one[1], before[2] or one[2])
        self._loops[result.loop] = one
        self._count(*one, 1)

    def _count(self, status: str, ignore_errors: bool, failed_changed: bool, n: int) -> None:
        if status in ("ok", "changed"):
            self.ok += n
        if status == "changed":
            self.changed += n
        elif status == "skipped":
            self.skipped += n
        elif status == "failed" and ignore_errors:
            self.ok += n                  # as ansible-core counts an ignored failure
            self.ignored += n
            self.changed += n * failed_changed
        elif status == "failed":
            self.failed += n

    def as_dict(self) -> dict:
        return {"ok": self.ok, "changed": self.changed, "failed": self.failed,
                "unreachable": self.unreachable, "rolled_back": self.rolled_back,
                "skipped": self.skipped, "rescued": self.rescued, "ignored": self.ignored}

    @property
    def bad(self) -> bool:
        return bool(self.failed or self.unreachable or self.rolled_back)


@dataclass
class RunResult:
    run_id: str
    check: bool
    hosts: dict[str, HostSummary] = field(default_factory=dict)
    tasks: list[TaskResult] = field(default_factory=list)
    stopped: str = ""
    execs: dict[str, list] = field(default_factory=dict)   # host -> [(step, seconds, rc)]
    seconds: float = 0.0              # the run's wall time
    check_mode: str | None = None     # with check: "predict" or "ansible" (--check-mode)

    @property
    def exit_code(self) -> int:
        if any(h.bad for h in self.hosts.values()):
            return EXIT_HOSTS
        if self.check and any(h.changed for h in self.hosts.values()):
            return EXIT_DRIFT
        return EXIT_OK


NO_LOG_MESSAGE = "(hidden: no_log)"


class Output:
    """What the runner tells the user; harden.apply.output implements it (text, json)."""

    def play_start(self, play: Play, hosts: list[str], matched: bool = True) -> None: ...
    def host_step(self, host: str, step: str) -> None: ...
    def batch_start(self, number: int, of: int, hosts: list[str]) -> None: ...
    def host_done(self, host: str, status: str) -> None: ...
    def task(self, result: TaskResult) -> None: ...
    def warning(self, host: str | None, message: str) -> None: ...
    def stopped(self, message: str) -> None: ...
    def finish(self, result: RunResult) -> None: ...
