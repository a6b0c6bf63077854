"""Make a lab process's /proc/<pid>/cmdline read exactly like a real component's argv.

Hardening checks (ours and kube-bench's) read component flags from `ps` and /proc/<pid>/cmdline,
so an emulated `kube-apiserver` must show `kube-apiserver --flag=...`, not `python -m ...`.
prctl(PR_SET_MM) needs CAP_SYS_RESOURCE, which lab hosts may lack, so instead we exec Python with
a padding argument sized so the kernel's argv area is exactly as long as the wanted argv, then
overwrite that area in place at start-up (the kernel reports arg_start..arg_end verbatim).
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

ARGV_ENV = "HARDEN_LAB_ARGV"
RUNNER_MODULE = "harden.lab.components.run"


def encoded_argv(argv: list[str]) -> bytes:
    """The bytes /proc/<pid>/cmdline shows for argv: each argument NUL-terminated."""
    return b"".join(arg.encode() + b"\0" for arg in argv)


def runner_argv(argv: list[str], module: str = RUNNER_MODULE) -> list[str]:
    """Python argv for `module` whose argv area has the byte length of `argv`.

    When the wanted argv is shorter than the Python prefix the padding is empty and the
    rewritten area ends in extra NULs (only happens for tiny command lines).
    """
    prefix = [sys.executable, "-m", module]
    fixed = len(encoded_argv(prefix)) + 1  # +1: the padding argument's own NUL
    padding = max(0, len(encoded_argv(argv)) - fixed)
    return [*prefix, "x" * padding]


def exec_as(argv: list[str], module: str = RUNNER_MODULE, env: dict | None = None) -> None:
    """Replace this process with `module` running under the command line `argv`."""
    env = dict(os.environ if env is None else env)
    env[ARGV_ENV] = json.dumps(argv)
    python_argv = runner_argv(argv, module)
    os.execve(sys.executable, python_argv, env)


def _argv_area() -> tuple[int, int]:
    """(arg_start, arg_end) of this process, from /proc/self/stat fields 48 and 49."""
    with open("/proc/self/stat", "rb") as stat:
        text = stat.read()
    fields = text[text.rindex(b")") + 2:].split()
    return int(fields[45]), int(fields[46])


def rewrite_cmdline(argv: list[str]) -> None:
    """Overwrite the kernel-visible argv area with `argv` (truncated if the area is smaller)."""
    start, end = _argv_area()
    size = end - start
    data = encoded_argv(argv)[:size]
    data = data + b"\0" * (size - len(data))
    if not data.endswith(b"\0"):
        data = data[:-1] + b"\0"
    ctypes.memmove(start, data, size)


COMM_LENGTH = 15       # TASK_COMM_LEN - 1: the kernel keeps this many bytes of a command name
PR_SET_NAME = 15


def command_name(argv0: str) -> bytes:
    """The comm the kernel shows for a binary exec'd as argv0: its basename, 15 bytes at most
    (`kube-controller-manager` -> `kube-controller`)."""
    return os.path.basename(argv0).encode()[:COMM_LENGTH]


def set_command_name(argv0: str) -> None:
    """Set this process's comm (what `ps -C`, `pgrep -x` and /proc/<pid>/comm read) the way an
    exec of the real binary would. prctl(PR_SET_NAME) needs no privilege."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NAME, ctypes.c_char_p(command_name(argv0)), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NAME) failed")


def apply_from_env() -> list[str] | None:
    """At start-up of an exec_as child: retitle (argv and comm) from the environment and return
    the argv.

    The variable is removed so grandchildren do not inherit someone else's command line.
    """
    raw = os.environ.pop(ARGV_ENV, None)
    if raw is None:
        return None
    argv = json.loads(raw)
    rewrite_cmdline(argv)
    if argv:
        set_command_name(argv[0])
    return argv


def read_cmdline(pid: int) -> list[str]:
    """The argv of process `pid` as `ps` sees it (empty trailing entries dropped)."""
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        raw = handle.read()
    return [part.decode(errors="replace") for part in raw.rstrip(b"\0").split(b"\0")] if raw else []
