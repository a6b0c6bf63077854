"""Writing a batch of queued tasks to the node: one `sh -s` exec, the process list taken before
it, markers telling which task the exec reached. A mixin of harden.apply.runner.HostPlay."""

from __future__ import annotations

import shlex

from harden.apply.host_state import HostFailed, PendingTask, denied_hint
from harden.apply.modules.base import Change, apply_script
from harden.apply.rollback import is_manifest
from harden.node import markers


class NodeWriter:
    """The write batches of one host's play."""

    def flush(self, tail: str = "") -> str | None:
        """Write every pending task's changes in ONE exec; markers tell which task failed.

        `tail` is more node-side script run in the same exec once every change is written
        (the play's commit, see HostOutcome.commit): its output, after the COMMIT marker, is
        returned; None when nothing was pending."""
        if not self.pending:
            return None
        pending, self.pending = self.pending, []
        if not tail and not any(item.changes for item in pending):
            for item in pending:
                self.done(item.result, item.result.status, item.result.message)
            return None
        out = self._write(pending, tail)
        stdout = out.stdout.decode(errors="replace")
        processes = _between(stdout, markers.PS, markers.PS_END)
        reached = [int(line.split()[1]) for line in stdout.splitlines()
                   if line.startswith(markers.TASK)]
        _, marker, tail_out = stdout.partition(f"{markers.COMMIT}\n")
        if out.rc == 0 or (tail and marker):      # every change written (the tail may fail)
            for item in pending:
                self.state.restarts.extend(item.undo)
                self._applied(item.changes, processes)
                self.done(item.result, item.result.status, item.result.message)
            if out.rc != 0:
                raise HostFailed(f"writing the run record failed (exit {out.rc}): "
                                 f"{out.stderr.decode(errors='replace').strip()[-300:]}")
            return tail_out
        for index, item in enumerate(pending):
            if index in reached:
                self.state.restarts.extend(item.undo)
        failed_at = reached[-1] if reached else 0
        for item in pending[:failed_at]:
            self._applied(item.changes, processes)
            self.done(item.result, item.result.status, item.result.message)
        bad = pending[failed_at]
        self._applied(bad.changes, processes)   # partly written: rollback must consider them
        error = out.stderr.decode(errors="replace").strip()[-300:]
        hint = denied_hint(self.session, error, pending[0].become)
        self.done(bad.result, "failed", f"writing failed (exit {out.rc}): {hint}{error}")
        self.write_failed = True          # the facts no longer tell what is on the node
        raise HostFailed(f"task '{bad.result.task}': writing failed")

    def _write(self, pending: list[PendingTask], tail: str = ""):
        """The exec itself. Before writing it lists the node's processes: a pod running then
        belongs to an earlier version of a manifest this exec writes, even one started after
        the play began (a second change to the same manifest in one play). And the first write
        of a play after an earlier play committed takes the node record back, so a run killed
        now reads as unfinished on the node (next run's warning, `harden rollback`)."""
        changes: list[Change] = []
        if self.state.record_on_node:
            options = self.runner.options
            run = shlex.quote(self.runner.run_id)
            changes.append(Change(summary="", script=(
                f"rm -f -- {shlex.quote(options.journal_root)}/{run}.json "
                f"{shlex.quote(options.backup_root)}/{run}/after-index")))
        if tail:       # where this exec's after-partial lines begin (commit_script reuses them)
            changes.append(Change(summary="", script=(
                'hb_ap0=0; if [ -f "$HB/after-partial" ]; then '
                'hb_ap0=$(wc -l < "$HB/after-partial"); fi')))
        if any(change.path for item in pending for change in item.changes):
            changes.append(Change(summary="", script=(
                f"printf '%s\\n' {markers.PS}; ps -ww -eo pid=,args= 2>/dev/null || true; "
                f"printf '%s\\n' {markers.PS_END}")))
        for index, item in enumerate(pending):
            changes.append(Change(summary="", script=f"echo '{markers.TASK}{index}'"))
            changes += item.changes
        if tail:
            changes.append(Change(summary="", script=f"echo '{markers.COMMIT}'\n{tail}"))
        self.state.wrote_as(pending[0].become)
        self._step("writing and committing" if tail else "writing")
        out = self.session.run("sh -s", become=pending[0].become,
                               stdin=apply_script(changes, self.runner.run_id,
                                                  self.runner.options.backup_root).encode())
        self.state.record_on_node = False
        return out

    def _applied(self, changes: list[Change], processes: list[str]) -> None:
        for change in changes:
            if change.path:
                self.changed_paths.add(change.path)
                self.ps_before_write[change.path] = processes
                if is_manifest(change.path) and change.rewrites:
                    self.unverified.add(change.path)   # a chmod restarts nothing: no wait


def _between(text: str, start: str, end: str) -> list[str]:
    """The lines between two marker lines, whitespace-normalised (a `ps` listing)."""
    lines = text.splitlines()
    if start not in lines or end not in lines:
        return []
    section = lines[lines.index(start) + 1:lines.index(end)]
    return [" ".join(line.split()) for line in section if line.strip()]
