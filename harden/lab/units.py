"""systemd units as a lab node's `systemctl` reports them, judged from the node's own files.

Roles ask a node about any unit (`systemctl show auditd`, `is-enabled`, `list-unit-files`),
not only the two the lab runs. A real systemd answers from unit files and the symlinks in
/etc/systemd/system; so does this module, with the lab's rules for what runs: the units the
supervisor runs (kubelet, sshd) report their process's state, a unit started through the shim
without a process of its own stays `active (exited)` until stopped (as a oneshot with
RemainAfterExit would), and every other unit is `inactive (dead)`. enable, disable, mask and
unmask create and remove symlinks in the node's private /etc/systemd/system, as systemctl
does, so the enablement state survives and `ansible-playbook` and harden see the same node.

`root` prefixes every path, so tests run the same code on a directory tree.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass

ETC = "/etc/systemd/system"
SEARCH_DIRS = (ETC, "/run/systemd/system", "/usr/local/lib/systemd/system",
               "/usr/lib/systemd/system", "/lib/systemd/system")
UNIT_TYPES = ("service", "socket", "target", "timer", "mount", "path", "slice", "scope",
              "automount", "swap", "device")
ENABLEMENT_KEYS = ("WantedBy", "RequiredBy", "Alias", "Also")


def unit_name(word: str) -> str:
    """`sshd` means `sshd.service`, as systemctl reads a name without a type suffix."""
    return word if word.rsplit(".", 1)[-1] in UNIT_TYPES and "." in word else word + ".service"


@dataclass
class UnitFile:
    name: str              # as asked for (an alias keeps its own name)
    path: str              # where it was found (node view)
    target: str            # the file it resolves to, "/dev/null" when masked
    install: dict          # [Install] keys -> list of words
    description: str


class Units:
    """The unit files of a node (below `root`) and the enablement links systemctl keeps."""

    def __init__(self, root: str = ""):
        self.root = root.rstrip("/")

    def _real(self, path: str) -> str:
        return self.root + path

    def find(self, name: str) -> UnitFile | None:
        """The unit file systemd would load for `name` (first search dir wins), or None."""
        for directory in SEARCH_DIRS:
            path = f"{directory}/{name}"
            real = self._real(path)
            if not os.path.lexists(real):
                continue
            target = os.path.realpath(real)
            if os.path.islink(real) and os.readlink(real) == "/dev/null":
                return UnitFile(name, path, "/dev/null", {}, "")
            if self.root and target.startswith(self.root + "/"):
                target = target[len(self.root):]
            elif os.path.islink(real) and os.path.isabs(os.readlink(real)):
                target = os.readlink(real)
                if not os.path.exists(self._real(target)):
                    continue
            try:
                text = open(self._real(target), encoding="utf-8", errors="replace").read()
            except OSError:
                continue
            return UnitFile(name, path, target, _install(text), _key(text, "Unit",
                                                                      "Description"))
        return None

    def state(self, name: str) -> str:
        """What `systemctl is-enabled` prints: enabled, disabled, static, masked, alias,
        indirect, or not-found."""
        unit = self.find(name)
        if unit is None:
            return "not-found"
        if unit.target == "/dev/null":
            return "masked"
        if os.path.basename(unit.target) != name and not name.endswith("@.service"):
            return "alias"
        if self._linked(name):
            return "enabled"
        if not any(unit.install.get(k) for k in ENABLEMENT_KEYS):
            return "static"
        if not any(unit.install.get(k) for k in ("WantedBy", "RequiredBy", "Alias")):
            return "indirect"
        return "disabled"

    def _linked(self, name: str) -> bool:
        etc = self._real(ETC)
        try:
            entries = os.listdir(etc)
        except OSError:
            return False
        return any(os.path.lexists(f"{etc}/{d}/{name}") for d in entries
                   if d.endswith((".wants", ".requires")))

    def enable(self, name: str) -> str:
        """Create the [Install] links; what systemctl prints (on stderr) about it."""
        unit = self._loadable(name)
        said = []
        for key, suffix in (("WantedBy", "wants"), ("RequiredBy", "requires")):
            for target in unit.install.get(key, []):
                said.append(self._link(f"{ETC}/{target}.{suffix}/{name}", unit.target))
        for alias in unit.install.get("Alias", []):
            said.append(self._link(f"{ETC}/{alias}", unit.target))
        if not said and not unit.install.get("Also"):
            return ("The unit files have no installation config (WantedBy=, RequiredBy=, "
                    "Also=, Alias= settings in the [Install] section). This means they are "
                    "not meant to be enabled or disabled using systemctl.\n")
        return "".join(said)

    def disable(self, name: str) -> str:
        unit = self.find(name)
        said = []
        etc = self._real(ETC)
        for entry in sorted(os.listdir(etc)) if os.path.isdir(etc) else ():
            link = f"{etc}/{entry}/{name}"
            if entry.endswith((".wants", ".requires")) and os.path.islink(link):
                os.unlink(link)
                said.append(f"Removed \"{ETC}/{entry}/{name}\".\n")
        for alias in (unit.install.get("Alias", []) if unit else []):
            if os.path.islink(self._real(f"{ETC}/{alias}")):
                os.unlink(self._real(f"{ETC}/{alias}"))
                said.append(f"Removed \"{ETC}/{alias}\".\n")
        return "".join(said)

    def mask(self, name: str) -> str:
        path = self._real(f"{ETC}/{name}")
        if os.path.islink(path) and os.readlink(path) == "/dev/null":
            return ""
        if os.path.lexists(path) and not os.path.islink(path):
            raise UnitError(1, f"Failed to mask unit: File {ETC}/{name} already exists.\n")
        if os.path.islink(path):
            os.unlink(path)
        os.symlink("/dev/null", path)
        return f"Created symlink {ETC}/{name} \u2192 /dev/null.\n"

    def unmask(self, name: str) -> str:
        path = self._real(f"{ETC}/{name}")
        if os.path.islink(path) and os.readlink(path) == "/dev/null":
            os.unlink(path)
            return f"Removed \"{ETC}/{name}\".\n"
        return ""

    def _loadable(self, name: str) -> UnitFile:
        unit = self.find(name)
        if unit is None:
            raise UnitError(1, f"Failed to enable unit: Unit file {name} does not exist.\n")
        if unit.target == "/dev/null":
            raise UnitError(1, f"Failed to enable unit: Unit file {ETC}/{name} is masked.\n")
        return unit

    def _link(self, path: str, target: str) -> str:
        real = self._real(path)
        if os.path.islink(real) and os.readlink(real) == target:
            return ""
        os.makedirs(os.path.dirname(real), exist_ok=True)
        if os.path.islink(real):
            os.unlink(real)
        os.symlink(target, real)
        return f"Created symlink {path} \u2192 {target}.\n"

    def names(self, unit_type: str | None = None, pattern: str | None = None) -> list[str]:
        """Every unit file name in the search path (what list-unit-files lists)."""
        found = set()
        for directory in SEARCH_DIRS:
            real = self._real(directory)
            for entry in os.listdir(real) if os.path.isdir(real) else ():
                kind = entry.rsplit(".", 1)[-1] if "." in entry else ""
                if kind not in UNIT_TYPES or os.path.isdir(f"{real}/{entry}"):
                    continue
                if unit_type and kind != unit_type:
                    continue
                if pattern and not fnmatch.fnmatchcase(entry, pattern):
                    continue
                found.add(entry)
        return sorted(found)


class UnitError(Exception):
    """systemctl refuses: exit code and message."""

    def __init__(self, rc: int, message: str):
        super().__init__(message)
        self.rc, self.message = rc, message


def _sections(text: str):
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep:
            yield section, key.strip(), value.strip()


def _install(text: str) -> dict:
    out: dict[str, list[str]] = {}
    for section, key, value in _sections(text):
        if section == "Install" and key in ENABLEMENT_KEYS:
            out.setdefault(key, []).extend(value.split())
    return out


def _key(text: str, wanted_section: str, wanted_key: str) -> str:
    found = ""
    for section, key, value in _sections(text):
        if section == wanted_section and key == wanted_key:
            found = value
    return found
