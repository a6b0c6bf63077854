"""Kernel parameters as the next boot sets them, and the ones the kubelet insists on.

At boot, systemd-sysctl (and `sysctl --system`) reads every `*.conf` of SYSCTL_DIRS in file-name
order, a name in an earlier directory hiding the same name further down, then /etc/sysctl.conf;
the last assignment of a key wins (sysctl.d(5)). Shared by the `sysctl` module (which refuses
to persist a value a later file would undo) and the check that reports such a file on every
run (`harden check`), so both judge the boot the same way.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

SYSCTL_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d",
               "/lib/sysctl.d")
SYSCTL_CONF = "/etc/sysctl.conf"
# What the kubelet with protectKernelDefaults requires, or it exits at start
# (pkg/kubelet/cm/container_manager_linux.go, setupKernelTunables).
KUBELET_TUNABLES = {"vm.overcommit_memory": "1", "vm.panic_on_oom": "0", "kernel.panic": "10",
                    "kernel.panic_on_oops": "1", "kernel.keys.root_maxkeys": "1000000",
                    "kernel.keys.root_maxbytes": "25000000"}
_LINE = re.compile(r"^\s*-?\s*(?P<key>[A-Za-z0-9_./-]+)\s*=\s*(?P<value>.*?)\s*$")


def boot_order(paths: Iterable[str]) -> list[str]:
    """The given sysctl files (found in SYSCTL_DIRS, or /etc/sysctl.conf) in the order a boot
    reads them; a file hidden by the same name in an earlier directory is left out."""
    by_name: dict[str, str] = {}
    rank = {d: i for i, d in enumerate(SYSCTL_DIRS)}
    has_conf = False
    for path in paths:
        if path == SYSCTL_CONF:
            has_conf = True
            continue
        directory, name = posixpath.split(path)
        if directory in rank and name.endswith(".conf"):
            known = by_name.get(name)
            if known is None or rank[directory] < rank[posixpath.dirname(known)]:
                by_name[name] = path
    return [by_name[name] for name in sorted(by_name)] + ([SYSCTL_CONF] if has_conf else [])


def assignments(text: str) -> list[tuple[str, str]]:
    """(key, value) of every assignment in a sysctl file, in order; `a/b` keys as `a.b`."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith(("#", ";")):
            continue
        match = _LINE.match(line)
        if match:
            found.append((match.group("key").replace("/", "."), match.group("value")))
    return found


def boot_values(files: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """key -> (value, file that sets it last) over (path, text) pairs in boot order."""
    last: dict[str, tuple[str, str]] = {}
    for path, text in files:
        for key, value in assignments(text):
            last[key] = (value, path)
    return last


def same_value(a: str, b: str) -> bool:
    """Values compare as the kernel reads them: whitespace-separated fields."""
    return a.split() == b.split()
