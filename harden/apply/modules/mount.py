"""`mount` (ansible.posix.mount), judged only: whether a mount point is as `state` asks, from
the node's /etc/fstab and /proc/self/mounts (read in the play's one fact exec).

`present`: fstab has a line for `path` with the given src/fstype/opts/dump/passno; `mounted`:
that, and it is mounted; `unmounted`: not mounted; `absent`: neither in fstab nor mounted.
A mount point already in that state is `ok`; otherwise `--check` reports the change, and a
real run fails the task saying what it would change (harden does not edit fstab or mount).
`remounted` is a change every time, as in Ansible (which runs `mount -o remount[,opts]`
without judging anything first): `--check` reports it changed, a real run fails the same way.
"""

from __future__ import annotations

from harden.apply.facts import MOUNTS, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed


class MountModule(Module):
    name = "mount"
    args = (
        Arg("path", required=True),
        Arg("state", choices=("mounted", "present", "unmounted", "absent",
                                     "remounted"), required=True),
        Arg("src"),
        Arg("fstype"),
        Arg("opts", default="defaults"),
        Arg("dump", default="0"),
        Arg("passno", default="0"),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict) and "name" in args and "path" not in args:
            args = {"path" if k == "name" else k: v for k, v in args.items()}
        return super().validate(args, path, line, rendered)

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(MOUNTS, "/proc/mounts")]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        table = facts.mounts()
        point = args["path"].rstrip("/") or "/"
        in_fstab = _lines(table.get("F", ""), point)
        mounted = bool(_lines(table.get("M", ""), point))
        wanted = [args["src"], point, args["fstype"], args["opts"], str(args["dump"]),
                  str(args["passno"])]
        state = args["state"]
        if state == "remounted":
            opts = "" if args["opts"] == "defaults" else "," + args["opts"]
            return self._judged(ctx, point, [f"mount -o remount{opts} {point}"])
        if state in ("present", "mounted") and not (args["src"] and args["fstype"]):
            raise TaskFailed(f"mount: state {state} needs src and fstype")
        todo = []
        if state in ("present", "mounted") and wanted not in in_fstab:
            todo.append("fstab entry " + " ".join(wanted))
        if state == "absent" and in_fstab:
            todo.append("remove the fstab entry")
        if state == "mounted" and not mounted:
            todo.append("mount " + point)
        if state in ("unmounted", "absent") and mounted:
            todo.append("unmount " + point)
        return self._judged(ctx, point, todo)

    @staticmethod
    def _judged(ctx: PlanContext, point: str, todo: list[str]) -> list[Change]:
        if not todo:
            return []
        if not ctx.check_mode:
            raise TaskFailed(f"mount: {point} would need: {'; '.join(todo)} (harden judges "
                             "mounts in --check only and changes none)")
        return [Change(summary=f"{point}: {'; '.join(todo)}", script="false",
                       diff="".join(f"{t}\n" for t in todo))]


def _lines(text: str, point: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#") or len(fields) < 2:
            continue
        target = fields[1].replace("\\040", " ").rstrip("/") or "/"
        if target == point:
            out.append((fields + ["0", "0"])[:6])
    return out


MODULE = MountModule()
