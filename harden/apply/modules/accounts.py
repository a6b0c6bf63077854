"""What the `user` and `group` modules share: the account databases read from the node's files,
and the change that runs shadow-utils (useradd, usermod, chage, groupadd, ...) on the node as
Ansible's modules do, with every file those tools may write backed up first and recorded after.

Running the distribution's own tools (rather than editing the files on the controller) leaves
the very bytes ansible-playbook leaves: the `-` copies (`/etc/passwd-`), gshadow, subuid,
lastlog. The files are restored byte for byte by `harden rollback` from the run's backups.
"""

from __future__ import annotations

import shlex
from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Change

PASSWD, SHADOW, GROUP, GSHADOW = "/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"
LOGIN_DEFS = "/etc/login.defs"
DATABASES = (PASSWD, SHADOW, GROUP, GSHADOW)
# Every configuration file shadow-utils may write when it adds, changes or removes an account.
# (Not /var/log/lastlog or faillog: sshd writes them at every login, so a backup of them would
# make every later rollback refuse as "changed since the run"; they are login records.)
TOUCHED = DATABASES + tuple(p + "-" for p in DATABASES) + (
    "/etc/subuid", "/etc/subgid", "/etc/subuid-", "/etc/subgid-")


def account_facts() -> list[FactRequest]:
    return [FactRequest(FILE, p, content=True) for p in DATABASES + (LOGIN_DEFS,)]


def entries(facts: Facts, path: str) -> list[list[str]]:
    """The colon-separated entries of an account file (comments and blanks left out)."""
    state = facts.file(path, content=True)
    text = state.content.decode(errors="replace") if state and state.content else ""
    return [line.split(":") for line in text.splitlines()
            if line.strip() and not line.startswith("#")]


def find(facts: Facts, path: str, name: str) -> list[str] | None:
    return next((e for e in entries(facts, path) if e[0] == name), None)


def find_group(facts: Facts, name_or_gid: str) -> list[str] | None:
    """A group by gid first, then by name (Ansible's group_exists/group_info order)."""
    groups = entries(facts, GROUP)
    if str(name_or_gid).isdigit():
        by_gid = next((g for g in groups if len(g) > 2 and g[2] == str(name_or_gid)), None)
        if by_gid:
            return by_gid
    return next((g for g in groups if g[0] == name_or_gid), None)


def login_defs(facts: Facts) -> dict[str, str]:
    state = facts.file(LOGIN_DEFS, content=True)
    text = state.content.decode(errors="replace") if state and state.content else ""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and not words[0].startswith("#"):
            out[words[0]] = words[1]
    return out


class AccountChange(Change):
    """Shadow-utils commands on the node. They decide ids and defaults themselves, so the
    controller does not guess what the files hold afterwards: a real run reads them again
    right after the write (harden.apply.tasks), and check mode plans later tasks on the files
    as they are, as Ansible's check mode does (a user it would add is not there yet)."""

    def record_in(self, facts: Facts) -> None:
        return None


def command_script(commands: list[str], extra_paths: tuple[str, ...] = ()) -> str:
    """Back up every file the commands may write, run them, record what they left."""
    paths = " ".join(shlex.quote(p) for p in TOUCHED + extra_paths)
    return (f"for hb_a in {paths}; do hb_backup \"$hb_a\"; done\n"
            + "\n".join(commands) + "\n"
            f"for hb_a in {paths}; do if [ -e \"$hb_a\" ]; then hb_after \"$hb_a\"; fi; done")


def q(value) -> str:
    return shlex.quote(str(value))
