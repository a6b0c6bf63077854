"""Error types that map onto the command line's exit codes.

Every error a user can cause must say *where*: the file and line of bad input, or the host and
setting of a bad connection. The CLI turns these into one clear line and exit code 1 without
touching any node.
"""

from __future__ import annotations


class HardenError(Exception):
    """Base class: bad input or an internal error; the CLI exits 1 and nothing was changed."""

    exit_code = 1


class InputError(HardenError):
    """Bad user input, located in a file (and line when known)."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return f"{where}{self.message}"


class HostError(HardenError):
    """A problem tied to one host and one of its settings (e.g. a missing key file)."""

    def __init__(self, host: str, message: str, setting: str | None = None):
        self.host = host
        self.setting = setting
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        what = f" ({self.setting})" if self.setting else ""
        return f"host {self.host}{what}: {self.message}"
