"""Which tasks of a host run after a failure inside a block with `rescue` or `always`
(Ansible's block semantics, on harden's flat task list).

The loader marks every task inside such a block with the block's id and the section it sits
in (`Task.blocks`, outermost first). A failure walks the task's blocks from the innermost out:
the first block whose `block` section failed and that has a `rescue` catches it (its rescue
tasks run, the host goes on); every block passed on the way is failed (its remaining `block`
and `rescue` tasks are skipped, its `always` tasks still run). A failure nobody catches ends
the host once the `always` tasks of the failed blocks have run; the runner then rolls the
host back as for any failure, so `rescue` never keeps a half-applied change that failed for
good.
"""

from __future__ import annotations

RESCUING, FAILED, ALWAYS_FAILED = "rescuing", "failed", "always_failed"


class BlockFlow:
    """One host's block states during one play's tasks."""

    def __init__(self):
        self.states: dict[str, str] = {}     # block id -> RESCUING | FAILED | ALWAYS_FAILED
        self.uncaught: Exception | None = None

    def runs(self, task) -> bool:
        """Whether `task` runs, given the failures so far."""
        if self.uncaught is not None and not any(
                section == "always" and block in self.states
                for block, section, *_ in task.blocks):
            return False
        for block, section, *_ in task.blocks:
            state = self.states.get(block)
            if state is None:
                if section == "rescue":
                    return False
                continue
            if section == "block" or (section == "rescue" and state != RESCUING) \
                    or (section == "always" and state == ALWAYS_FAILED):
                return False
        return True

    def fail(self, task, error: Exception) -> bool:
        """Record a failure of `task`; True when a rescue catches it."""
        for block, section, has_rescue, _ in reversed(task.blocks):
            if section == "block" and has_rescue and block not in self.states:
                self.states[block] = RESCUING
                return True
            self.states[block] = ALWAYS_FAILED if section == "always" else FAILED
        if self.uncaught is None:
            self.uncaught = error
        return False

    @staticmethod
    def has_always(task) -> bool:
        """Whether some `always` section may still run after this task failed."""
        return any(has_always for _, _, _, has_always in task.blocks)
