"""How a host's play ends: committed (node record and local journal) or failed (rolled back from
its backups, the cause kept). A mixin of harden.apply.runner.HostPlay."""

from __future__ import annotations

import time

from harden.apply.host_state import BECOME_RANK, HostFailed
from harden.apply.rollback import read_node_run, restarts_for, restore_host
from harden.runs.journal import HostRecord, commit_script, parse_index


class HostOutcome:
    """Committing or failing one host's part of a play."""

    def fail(self, message: str) -> tuple[str, str]:
        """Record the failure, stop other hosts if fatal, roll back what was written.

        Whatever goes wrong while rolling back, the original failure stays in the message and
        the user is told where the backups are: a host must never end up "running" in the
        journal with its cause lost. A batch still waiting to be written (the host was stopped
        between tasks, or a bug ended it) is dropped: nothing may reach the node after its
        rollback, and its record must say what the node holds."""
        self.pending = []
        if self.play.any_errors_fatal:
            self.abort.set()
        if not self.failed_line:          # failed outside a task line: still a failed host
            self.runner.summary(self.name).failed += 1
        self.runner.out.warning(self.name, f"host failed: {message}")  # also non-task reasons
        if self.check or not self.state.wrote or self.session is None:
            return "failed", message
        self._step("rolling back")
        options = self.runner.options
        become = self.state.become
        try:
            node_run = read_node_run(self.session, self.runner.run_id, become,
                                     options.backup_root, options.journal_root)
            if node_run is None:
                return "failed", message
            restarts = restarts_for([e.path for e in node_run.entries],
                                    [r.__dict__ for r in self.state.restarts])
            outcome = restore_host(self.session, self.runner.run_id, node_run.entries,
                                   become=become, restarts=restarts,
                                   wait_kubelet=self.state.kubelet_waited,
                                   backup_root=options.backup_root)
        except Exception as exc:          # noqa: BLE001 - see the docstring
            self.runner.out.warning(self.name, f"ROLLBACK FAILED: {exc}; backups are in "
                                               f"{options.backup_root}/{self.runner.run_id}")
            return "failed", f"{message}; rollback failed: {exc}"
        for warning in outcome.warnings:
            self.runner.out.warning(self.name, warning)
        if not outcome.healthy:
            self.runner.out.warning(self.name, f"restored, but not healthy: {outcome.detail}")
            return "failed", f"{message}; restored but unhealthy: {outcome.detail}"
        self.runner.summary(self.name).rolled_back += 1
        self.runner.out.warning(self.name, f"rolled back {len(outcome.restored)} path(s), "
                                           f"removed {len(outcome.removed)} created path(s)")
        try:
            self.commit("rolled_back")
        except Exception as exc:          # noqa: BLE001 - see the docstring
            self.runner.out.warning(self.name, f"could not write the run record: {exc}")
        return "rolled_back", message

    def commit(self, status: str) -> None:
        """Write the node record (only where this run wrote files: commands leave no backup,
        so there is nothing to undo for them) and journal the changed files.

        The play's last write batch, when nothing has to follow it (run_tasks deferred it),
        goes to the node in the same exec, before the record: the record is written only once
        every change is. So is the node lock's release after the host's last play: its node
        record is committed, this run writes there no more."""
        state = self.state
        deferred = self.pending if any(item.changes for item in self.pending) else []
        if not deferred or not _same_identity(state, deferred[0].become):
            self.flush()
            deferred = []
        if self.check or not state.wrote and not deferred:
            return
        become = deferred[0].become if deferred else state.become
        tasks = [{"play": t.play, "task": t.task, "status": t.status}
                 for t in list(self.runner.result.tasks) if t.host == self.name]
        tasks += [{"play": i.result.play, "task": i.result.task, "status": i.result.status}
                  for i in deferred]
        restarts = state.restarts + [r for item in deferred for r in item.undo]
        record = HostRecord(self.runner.run_id, self.name, self.runner.playbook.path, status,
                            state.started, time.time(), [r.__dict__ for r in restarts],
                            state.kubelet_waited, sorted(state.secret_paths), tasks)
        script = commit_script(record, self.runner.options.backup_root,
                               self.runner.options.journal_root).decode()
        release = self.runner.release_script(self.name, self.play, become) \
            if status == "committed" else ""
        if deferred:
            output = self.flush(tail=script + release)
        else:
            self._step("committing")
            out = self.session.run("sh -s", become=become, stdin=(script + release).encode())
            if out.rc != 0:
                raise HostFailed(f"writing the run record failed: "
                                 f"{out.stderr.decode(errors='replace').strip()[-300:]}")
            output = out.stdout.decode(errors="replace")
        state.record_on_node = True
        if release:
            self.runner.lock_released(self.name, output)
        self.runner.journal.files(self.runner.run_id, self.name, parse_index(output))


def _same_identity(state, become) -> bool:
    """Whether the deferred batch's identity can also write the record: the record is written
    as the most privileged identity of the host's writes (HostRunState.wrote_as)."""
    return not state.wrote or BECOME_RANK[become] >= BECOME_RANK[state.become]
