"""How a host's play ends: committed (node record and local journal) or failed (rolled back from
its backups, the cause kept). A mixin of harden.apply.runner.HostPlay."""

from __future__ import annotations

import time

from harden.apply.host_state import HostFailed
from harden.apply.rollback import read_node_run, restarts_for, restore_host
from harden.runs.journal import HostRecord, commit_script, parse_index


class HostOutcome:
    """Committing or failing one host's part of a play."""

    def fail(self, message: str) -> tuple[str, str]:
        """Record the failure, stop other hosts if fatal, roll back what was written.

        Whatever goes wrong while rolling back, the original failure stays in the message and
        the user is told where the backups are: a host must never end up "running" in the
        journal with its cause lost."""
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
        so there is nothing to undo for them) and journal the changed files."""
        state = self.state
        if self.check or not state.wrote:
            return
        tasks = [{"play": t.play, "task": t.task, "status": t.status}
                 for t in list(self.runner.result.tasks) if t.host == self.name]
        record = HostRecord(self.runner.run_id, self.name, self.runner.playbook.path, status,
                            state.started, time.time(), [r.__dict__ for r in state.restarts],
                            state.kubelet_waited, sorted(state.secret_paths), tasks)
        self._step("committing")
        out = self.session.run("sh -s", become=state.become,
                               stdin=commit_script(record, self.runner.options.backup_root,
                                                   self.runner.options.journal_root))
        if out.rc != 0:
            raise HostFailed(f"writing the run record failed: "
                             f"{out.stderr.decode(errors='replace').strip()[-300:]}")
        state.record_on_node = True
        entries = parse_index(out.stdout.decode(errors="replace"))
        self.runner.journal.files(self.runner.run_id, self.name, entries)
