"""`command`: run a program on the node, without a shell (Ansible's semantics).

The command line is split into words as a shell would split them (quotes honoured), but
nothing else a shell does happens: `echo hi > f` prints "hi > f" and writes no file. Use
`shell` for pipes, redirections and variables. `argv` gives the words as a list instead.

Commands may write anything, so they are skipped in check mode unless the task says
`check_mode: false` (then they are read-only probes and run in both modes). `creates` makes
them idempotent (not run when that path exists), `removes` the other way round; `chdir` runs
them in a directory. Whether a run counts as changed can be overridden with `changed_when`.
`show_output` puts the command's stdout on the task line: a report the operator must read
(what Pod Security would reject) is not lost in a registered variable.

A command's side effects are not backed up, except for programs listed in
data/command_writes.yaml (pam-auth-update): the files they rewrite are backed up before the
command runs, so a rollback restores them too.
"""

from __future__ import annotations

import base64
import functools
import posixpath
import shlex
from pathlib import Path

import yaml

from harden.errors import InputError
from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext

WRITES_FILE = Path(__file__).resolve().parents[1] / "data" / "command_writes.yaml"


class CommandModule(Module):
    name = "command"
    check_mode_safe = False
    args = (
        Arg("cmd"),
        Arg("argv", "list"),
        Arg("creates"),
        Arg("removes"),
        Arg("chdir"),
        Arg("show_output", "bool", default=False),
        Arg("stdin"),
        Arg("stdin_add_newline", "bool", default=True),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        out = super().validate(args, path, line, rendered)
        if bool(out["cmd"]) == bool(out["argv"]):
            raise InputError(f"{self.name} needs either 'cmd' (or a free-form command) or "
                             "'argv', not both", path, line)
        return out

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, p) for p in (args["creates"], args["removes"]) if p]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        if args["creates"] and facts.file(args["creates"]) is not None:
            return []
        if args["removes"] and facts.file(args["removes"]) is None:
            return []
        script = self.script(args)
        if args["stdin"] is not None:
            data = str(args["stdin"]) + ("\n" if args["stdin_add_newline"] else "")
            encoded = base64.b64encode(data.encode()).decode()
            script = f"printf '%s' {encoded} | base64 -d | {script}"
        if args["chdir"]:
            script = f"cd {shlex.quote(args['chdir'])} && {script}"
        shown = args["cmd"] or shlex.join(map(str, args["argv"]))
        return [Change(summary=f"run: {shown}", script=backups(args) + script)]

    def script(self, args: dict) -> str:
        """The words, each quoted: the node's sh only executes, it interprets nothing."""
        words = [str(w) for w in args["argv"]] if args["argv"] else shlex.split(args["cmd"])
        return "(\nexec " + " ".join(shlex.quote(w) for w in words) + "\n)"


def program(args: dict) -> str:
    """The program a command runs: its first word, without its directory. A module that
    runs through the command path without a command line (etcd_snapshot) has none."""
    try:
        words = [str(w) for w in args["argv"]] if args.get("argv") else \
            shlex.split(args.get("cmd") or "")
    except ValueError:
        return ""
    return posixpath.basename(words[0]) if words else ""


@functools.cache
def _known_writes() -> dict[str, list[str]]:
    with open(WRITES_FILE, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def known_writes(args: dict) -> list[str]:
    """The files the command's program is known to rewrite (data/command_writes.yaml)."""
    return list(_known_writes().get(program(args), []))


def backups(args: dict) -> str:
    """`hb_backup` of each file the program is known to rewrite, so the run's record holds
    them and a rollback restores them."""
    return "".join(f"hb_backup {shlex.quote(p)}\n" for p in known_writes(args))


MODULE = CommandModule()
