"""`blockinfile`: a block of lines between two marker lines, kept as given (Ansible's
blockinfile). The markers let a later run find and replace the block; `state: absent` (or an
empty block) removes it, markers included. A new block goes at the end, or after the last line
matching `insertafter` / before the first matching `insertbefore` (`BOF`/`EOF` too)."""

from __future__ import annotations

import re

from harden.apply.modules.base import Arg, TaskFailed
from harden.apply.modules.text_edit import FILE_ARGS, TextEditModule


class BlockInFileModule(TextEditModule):
    name = "blockinfile"
    args = (
        *FILE_ARGS,
        Arg("block", default=""),
        Arg("marker", default="# {mark} ANSIBLE MANAGED BLOCK"),
        Arg("marker_begin", default="BEGIN"),
        Arg("marker_end", default="END"),
        Arg("state", choices=("present", "absent"), default="present"),
        Arg("insertafter"),
        Arg("insertbefore"),
        Arg("create", "bool", default=False),
    )

    def edit(self, text: str, args: dict) -> str:
        return edit_block(text, args)


def edit_block(text: str, args: dict) -> str:
    begin = args["marker"].replace("{mark}", args["marker_begin"])
    end = args["marker"].replace("{mark}", args["marker_end"])
    lines = text.splitlines(keepends=True)
    bare = [line.rstrip("\r\n") for line in lines]
    start = next((i for i, line in enumerate(bare) if line == begin), None)
    stop = next((i for i, line in enumerate(bare) if line == end and start is not None
                 and i > start), None)
    block = args["block"]
    new = [] if args["state"] == "absent" or not block else \
        [begin + "\n", *(line + "\n" for line in block.rstrip("\n").split("\n")), end + "\n"]
    if start is not None and stop is not None:
        return "".join(lines[:start] + new + lines[stop + 1:])
    if not new:
        return text
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(_place(lines, bare, new, args))


def _place(lines: list[str], bare: list[str], new: list[str], args: dict) -> list[str]:
    after, before = args["insertafter"], args["insertbefore"]
    try:
        if before == "BOF":
            return new + lines
        if before is not None:
            hits = [i for i, line in enumerate(bare) if re.search(before, line)]
            if hits:
                return lines[:hits[0]] + new + lines[hits[0]:]
        elif after is not None and after != "EOF":
            hits = [i for i, line in enumerate(bare) if re.search(after, line)]
            if hits:
                return lines[:hits[-1] + 1] + new + lines[hits[-1] + 1:]
    except re.error as exc:
        raise TaskFailed(f"blockinfile: {exc}") from None
    return lines + new


MODULE = BlockInFileModule()
