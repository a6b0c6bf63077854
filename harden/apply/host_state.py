"""What one host carries through a run, shared by the parts of its play pipeline
(harden.apply.runner and the mixins it is built from)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from harden.apply.events import TaskResult
from harden.apply.modules.base import Change
from harden.apply.rollback import Restart

# how privileged a `become` is: False (the login user), None (the host's ansible_become), True
BECOME_RANK = {False: 0, None: 1, True: 2}


@dataclass
class HostRunState:
    """What one host's plays share: whether this run wrote there (so a failure in a later
    play still restores the files of an earlier one) and what its node record lists."""

    started: float = field(default_factory=time.time)
    wrote: bool = False
    become: bool | None = None               # identity of the writes (see wrote_as)
    restarts: list[Restart] = field(default_factory=list)
    secret_paths: set[str] = field(default_factory=set)
    kubelet_waited: bool = False
    record_on_node: bool = False             # an earlier play committed a node record
    unfinished_told: set[str] = field(default_factory=set)   # "did not finish": once per run
    # changes planned and fed into the facts but never written (--check): each later play's
    # freshly gathered facts get them again, so it plans on them as the real run's would
    unwritten: list[Change] = field(default_factory=list)

    def wrote_as(self, become: bool | None) -> None:
        """Remember who wrote: reading the backups back, restoring and committing must run as
        the same identity (the backups are 0700), and with tasks of different `become` the
        most privileged one wins (True: sudo; None: the host's ansible_become; False)."""
        if not self.wrote or BECOME_RANK[become] > BECOME_RANK[self.become]:
            self.become = become
        self.wrote = True


class HostFailed(Exception):
    """This host cannot continue the play; what is written so far is rolled back."""


@dataclass
class PendingTask:
    """A task planned and waiting in the current write batch."""

    result: TaskResult
    changes: list[Change]
    become: bool | None = None
    undo: list[Restart] = field(default_factory=list)   # recorded for rollback only once the
    #                                                     exec reached it



def denied_hint(session, stderr: str, become: bool | None) -> str:
    """A write or command refused by the node's permissions, run without become, says as whom
    it ran and what fixes it (the raw "mkdir: ... Permission denied" does not)."""
    spec = getattr(session, "spec", None)
    if "Permission denied" not in stderr or spec is None:
        return ""
    if spec.become if become is None else become:
        return ""
    return (f"permission denied as user {spec.target.user}; add `become: true` to the play or "
            "task: ")
