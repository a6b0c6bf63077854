"""`lineinfile`: make sure one line is in a file (or, with `state: absent`, that no line
matching is), as Ansible's lineinfile does, through harden's backup and atomic write.

present: the last line matching `regexp` (the first with `firstmatch`) is replaced by `line`;
with no match, an identical line already there is enough, else `line` is inserted after the
last match of `insertafter` (or before the first of `insertbefore`; `EOF`/`BOF`), default at the
end. With `backrefs`, `line` may use the regexp's groups and nothing is inserted when no line
matches. absent: every line matching `regexp` (or equal to `line`, or containing
`search_string`) is removed. `backup` is accepted: harden always backs up before writing.
"""

from __future__ import annotations

import re

from harden.apply.modules.base import Arg, TaskFailed
from harden.apply.modules.text_edit import FILE_ARGS, TextEditModule
from harden.errors import InputError


class LineInFileModule(TextEditModule):
    name = "lineinfile"
    args = (
        *FILE_ARGS,
        Arg("line"),
        Arg("regexp"),
        Arg("search_string"),
        Arg("state", choices=("present", "absent"), default="present"),
        Arg("insertafter"),
        Arg("insertbefore"),
        Arg("create", "bool", default=False),
        Arg("backrefs", "bool", default=False),
        Arg("firstmatch", "bool", default=False),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        out = super().validate(args, path, line, rendered)
        if out["state"] == "present" and out["line"] is None:
            raise InputError("lineinfile: state=present needs 'line'", path, line)
        if out["insertafter"] is not None and out["insertbefore"] is not None:
            raise InputError("lineinfile: give insertafter or insertbefore, not both", path, line)
        if out["regexp"] is not None and out["search_string"] is not None:
            raise InputError("lineinfile: give regexp or search_string, not both", path, line)
        return out

    def edit(self, text: str, args: dict) -> str:
        return edit_lines(text, args)


def edit_lines(text: str, args: dict) -> str:
    """The file's text after the edit (pure: the module's whole logic, table-testable)."""
    lines = text.splitlines(keepends=True)
    matches = _matcher(args)
    if args["state"] == "absent":
        return "".join(line for line in lines if not matches(line.rstrip("\r\n")))
    wanted = args["line"]
    found = [i for i, line in enumerate(lines) if matches(line.rstrip("\r\n"))]
    if found:
        index = found[0] if args["firstmatch"] else found[-1]
        if args["backrefs"]:
            wanted = re.search(args["regexp"], lines[index].rstrip("\r\n")).expand(wanted)
        ending = lines[index][len(lines[index].rstrip("\r\n")):] or "\n"
        # a line that already ends in a newline gets none added (Ansible's b_new_line): a
        # folded `set_fact: x: >` value keeps its trailing newline into `line: "--f={{ x }}"`
        lines[index] = wanted if wanted.endswith("\n") else wanted + ending
        return "".join(lines)
    if args["backrefs"]:
        return text
    if any(line.rstrip("\r\n") == wanted for line in lines):
        return text
    return "".join(_insert(lines, wanted + "\n", args))


def _matcher(args: dict):
    if args["regexp"] is not None:
        try:
            pattern = re.compile(args["regexp"])
        except re.error as exc:
            raise TaskFailed(f"lineinfile: regexp {args['regexp']!r}: {exc}") from None
        return lambda line: pattern.search(line) is not None
    if args["search_string"] is not None:
        return lambda line: args["search_string"] in line
    if args["state"] == "absent":
        return lambda line: line == args["line"]
    return lambda line: False


def _insert(lines: list[str], new: str, args: dict) -> list[str]:
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    after, before = args["insertafter"], args["insertbefore"]
    if before == "BOF":
        return [new, *lines]
    if before is not None:
        hits = [i for i, line in enumerate(lines) if re.search(before, line.rstrip("\r\n"))]
        at = (hits[0] if args["firstmatch"] else hits[-1]) if hits else len(lines)
        return lines[:at] + [new] + lines[at:]
    if after is not None and after != "EOF":
        hits = [i for i, line in enumerate(lines) if re.search(after, line.rstrip("\r\n"))]
        if hits:
            at = (hits[0] if args["firstmatch"] else hits[-1]) + 1
            return lines[:at] + [new] + lines[at:]
    return [*lines, new]


MODULE = LineInFileModule()
