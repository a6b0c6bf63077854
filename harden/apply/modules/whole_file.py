"""What `copy` and `template` share: a file whose whole content the controller decides.

Both gather `dest`, write it atomically (or, with `force: false`, create it once and from then
on leave it entirely alone, mode/owner/group included, as Ansible does), and register the
`checksum` of what `dest` holds after the task. A subclass only says where the bytes come from (`content`).
"""

from __future__ import annotations

import posixpath

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write

DEST_ARGS = (
    Arg("dest", required=True),
    Arg("mode", "mode"),
    Arg("owner"),
    Arg("group"),
    Arg("secret", "bool", default=False),
    Arg("force", "bool", default=True),
    Arg("backup", "bool", default=False),          # accepted: harden always backs up
)


class WholeFileModule(Module):
    node_paths = ("dest",)
    """Base of copy and template; subclasses set `name`, `args` and implement `content`."""

    def content(self, args: dict, ctx: PlanContext) -> bytes:
        raise NotImplementedError

    def facts_needed(self, args: dict) -> list[FactRequest]:
        # With content even under force: false: the plan needs only a stat then, but the
        # registered checksum needs the bytes, and asking later would cost another exec.
        return [FactRequest(FILE, args["dest"], content=True),
                FactRequest(FILE, posixpath.dirname(args["dest"].rstrip("/")) or "/")]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        changes = self.plan_content(args, facts, lambda: self.content(args, ctx))
        return missing_directory(args["dest"], facts, ctx, changes)

    def plan_content(self, args: dict, facts: Facts, content) -> list[Change]:
        """The write of `content()` (only called when the bytes matter: force true or no
        dest yet)."""
        if not args["force"]:
            existing = facts.file(args["dest"])
            if existing is not None:
                return plan_keep_existing(existing)
        return plan_write(args["dest"], content(),
                          facts.file(args["dest"], content=True),
                          args["mode"], args["owner"], args["group"], args["secret"])

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        return {"checksum": content_checksum(args["dest"], facts, changes)}


def missing_directory(dest: str, facts: Facts, ctx: PlanContext,
                      changes: list[Change]) -> list[Change]:
    """A new dest whose directory does not exist: Ansible's copy module (template's too) fails
    the task, "Destination directory D does not exist", and creates nothing. In --check its
    action plugin reports `changed` before the module would find out, so harden says changed
    there too, and names the failure the real run will meet (with --check-mode ansible an
    earlier task may still make the directory: the note says only that it is missing now)."""
    parent = posixpath.dirname(dest.rstrip("/")) or "/"
    if not changes or facts.file(dest) is not None or facts.file(parent) is not None:
        return changes
    if not ctx.check_mode:
        raise TaskFailed(f"Destination directory {parent} does not exist")
    note = "does not exist yet" if ctx.as_found else "does not exist: a real run fails"
    for change in changes:
        change.summary += f" (its directory {parent} {note})"
    return changes


def plan_keep_existing(existing) -> list[Change]:
    """`force: false` on an existing dest: Ansible's copy returns at once ("file already
    exists"), so nothing is compared or enforced, not even mode/owner/group (a rotated
    encryption config must survive a re-run; a playbook that wants its mode kept says so in a
    `file` task). Only something that is not a regular file is refused, as before."""
    if existing.kind != "file":
        raise TaskFailed(f"{existing.path} exists and is not a regular file")
    return []


def content_checksum(path: str, facts: Facts, changes: list[Change]) -> str | None:
    """sha256 of what `path` holds once the task is done (None: it will not exist), as
    Ansible's copy registers `checksum`: lets a play compare a file across hosts without the
    content (a key) ever leaving the node's facts."""
    for change in reversed(changes):
        if change.path == path and change.after is not None and \
                change.after.content is not None:
            return change.after.sha256
    state = facts.file(path, content=True)
    return state.sha256 if state is not None else None
