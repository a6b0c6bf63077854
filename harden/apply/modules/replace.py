"""`replace`: every match of a regular expression replaced (Ansible's replace: Python `re`,
MULTILINE, backreferences as `\\1` or `\\g<name>`), optionally only in the part of the file
after the first match of `after` and before the first match of `before`."""

from __future__ import annotations

import re

from harden.apply.modules.base import Arg, TaskFailed
from harden.apply.modules.text_edit import FILE_ARGS, TextEditModule


class ReplaceModule(TextEditModule):
    name = "replace"
    can_create = False
    args = (
        *FILE_ARGS,
        Arg("regexp", required=True),
        Arg("replace", default=""),
        Arg("after"),
        Arg("before"),
    )

    def edit(self, text: str, args: dict) -> str:
        return edit_replace(text, args)


def edit_replace(text: str, args: dict) -> str:
    try:
        pattern = re.compile(args["regexp"], re.MULTILINE)
        start, end = 0, len(text)
        if args["after"]:
            found = re.search(args["after"], text, re.MULTILINE)
            start = found.end() if found else start
        if args["before"]:
            found = re.search(args["before"], text[start:], re.MULTILINE)
            end = start + found.start() if found else end
        return text[:start] + pattern.sub(args["replace"], text[start:end]) + text[end:]
    except re.error as exc:
        raise TaskFailed(f"replace: {exc}") from None


MODULE = ReplaceModule()
