"""`user`: a local account as Ansible's ansible.builtin.user leaves it on Linux, for the
arguments hardening content uses. The plan compares the node's passwd, shadow and group (read
in the play's one gather) with the arguments exactly as that module does, and what differs
becomes the same shadow-utils command line: `useradd` (present, new), `usermod` (shell,
comment, home, uid, primary group, supplementary groups, password, lock), `chage` (password
ages), `userdel` (absent; the home stays, as without `remove`). A home directory an existing user lacks is
created from /etc/skel when `create_home` (Ansible's default). Nothing to change: no command,
no write. Check mode plans the same and runs nothing; the module shows no --diff (as Ansible).
"""

from __future__ import annotations

import shlex

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.accounts import (GROUP, PASSWD, SHADOW, AccountChange, account_facts,
                                           command_script, entries, find, find_group,
                                           login_defs, q)
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.errors import InputError

ALIASES = {"user": "name", "createhome": "create_home"}
EXPIRES = (("password_expire_min", "-m", 3), ("password_expire_max", "-M", 4),
           ("password_expire_warn", "-W", 5))


class UserModule(Module):
    name = "user"
    args = (
        Arg("name", required=True),
        Arg("state", choices=("present", "absent"), default="present"),
        Arg("shell"),
        Arg("comment"),
        Arg("home"),
        Arg("uid", "int"),
        Arg("system", "bool", default=False),
        Arg("group"),
        Arg("groups", "any"),
        Arg("append", "bool", default=False),
        Arg("create_home", "bool", default=True),
        Arg("password"),
        Arg("password_lock", "bool"),
        Arg("password_expire_min", "int"),
        Arg("password_expire_max", "int"),
        Arg("password_expire_warn", "int"),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict):
            lines = getattr(args, "key_lines", {})
            for alias, name in ALIASES.items():
                if alias in args and name in args:
                    raise InputError(f"user: give '{name}' or its alias '{alias}', not both",
                                     path, lines.get(alias, line))
            args = {ALIASES.get(k, k): v for k, v in args.items()}
        out = super().validate(args, path, line, rendered)
        if rendered:
            out["groups"] = _groups(out["groups"], path, line)
        return out

    def facts_needed(self, args: dict) -> list[FactRequest]:
        wanted = account_facts()
        if args["home"]:
            wanted.append(FactRequest(FILE, args["home"]))
        return wanted

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        row = find(facts, PASSWD, args["name"])
        if args["state"] == "absent":
            return [] if row is None else [_remove(args, facts)]
        if row is None:
            return [_create(args, facts, ctx.check_mode)]
        return _modify(args, row, facts)

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        found = {"name": args["name"], "state": args["state"]}
        if args["password"] is not None:
            found["password"] = "NOT_LOGGING_PASSWORD"
        return found


def _groups(value, path, line) -> list[str] | None:
    """`groups` as Ansible takes it: a list, or a comma-separated string; '' or [] = none."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        raise InputError(f"user: 'groups' must be a list or a comma-separated string, got "
                         f"{value!r}", path, line)
    return [str(g).strip() for g in value if str(g).strip()]


def _group_names(args: dict, facts: Facts) -> list[str]:
    names = []
    for wanted in args["groups"]:
        group = find_group(facts, wanted)
        if group is None:
            raise TaskFailed(f"Group {wanted} does not exist")
        names.append(group[0])
    return sorted(set(names))


def _primary_group(wanted: str, facts: Facts) -> list[str]:
    """The group row `group:` names (by gid or name, as Ansible's group_info), or the
    task fails as Ansible's does."""
    group = find_group(facts, wanted)
    if group is None:
        raise TaskFailed(f"Group {wanted} does not exist")
    return group


def _memberships(name: str, facts: Facts) -> list[str]:
    """Groups listing the user as a member (its primary group too, when listed)."""
    return [g[0] for g in entries(facts, GROUP)
            if len(g) > 3 and name in g[3].split(",")]


def _shadow_row(name: str, facts: Facts) -> list[str]:
    found = find(facts, SHADOW, name)
    return (found or [name]) + [""] * (9 - len(found or [name]))


def _modify(args: dict, row: list[str], facts: Facts) -> list[Change]:
    """usermod's options for what differs, Ansible's modify_user_usermod; then chage; then a
    missing home directory."""
    name, shadow = args["name"], _shadow_row(args["name"], facts)
    row = row + [""] * (7 - len(row))
    opts, new_row = [], list(row)
    members = _memberships(name, facts)
    if args["uid"] is not None and row[2] != str(args["uid"]):
        opts += ["-u", str(args["uid"])]
        new_row[2] = str(args["uid"])
    if args["group"] is not None:
        primary = _primary_group(args["group"], facts)
        if row[3] != primary[2]:
            opts += ["-g", primary[2]]
            new_row[3] = primary[2]
    if args["groups"] is not None:
        wanted = _group_names(args, facts) if args["groups"] else []
        differ = set(members) ^ set(wanted)
        if not args["groups"]:
            if members and not args["append"]:
                opts += ["-G", ""]
        elif differ and args["append"] and any(g in differ for g in wanted):
            opts += ["-a", "-G", ",".join(wanted)]
        elif differ and not args["append"]:
            opts += ["-G", ",".join(wanted)]
    for arg, flag, index in (("comment", "-c", 4), ("home", "-d", 5), ("shell", "-s", 6)):
        if args[arg] is not None and row[index] != args[arg]:
            opts += [flag, args[arg]]
            new_row[index] = args[arg]
    password = shadow[1]
    lock = []
    if args["password_lock"] and not password.startswith("!"):
        lock = ["-L"]
    elif args["password_lock"] is False and password.startswith("!"):
        lock = ["-U"]
    if args["password"] is not None and password.lstrip("!") != args["password"].lstrip("!"):
        lock = ["-p", ("!" if args["password_lock"] else "") + args["password"]]
    opts += lock
    commands = [shlex.join(["usermod", *opts, name])] if opts else []
    chage = []
    for arg, flag, index in EXPIRES:
        if args[arg] is not None and _shadow_int(shadow[index]) != args[arg]:
            chage += [flag, str(args[arg])]
    if chage:
        commands.append(shlex.join(["chage", *chage, name]))
    home = args["home"] or new_row[5]
    extra: tuple[str, ...] = ()
    if args["create_home"] and home and facts.file(home) is None:
        commands.append(_homedir_script(home, new_row[2], new_row[3], facts))
        extra = (home,)
    if not commands:
        return []
    what = ", ".join(sorted({c.split()[0] for c in commands if not c.startswith("hb_")}))
    return [AccountChange(summary=f"user {name}: {what or 'home directory'}",
                          script=command_script(commands, extra), secret=True)]


def _shadow_int(value: str) -> int:
    """A shadow age field as getspnam reports it: -1 when empty."""
    try:
        return int(value)
    except ValueError:
        return -1


def _homedir_script(home: str, uid: str, gid: str, facts: Facts) -> str:
    """Ansible's create_homedir + chown_homedir: /etc/skel copied (symlinks as links), the
    home's mode from login.defs (HOME_MODE, else 0777 & ~UMASK, else 0755), owned by the user.
    Every path the copy creates is recorded as absent first, so a rollback removes it."""
    defs = login_defs(facts)
    mode = 0o755
    if defs.get("HOME_MODE", "").isdigit():
        mode = int(defs["HOME_MODE"], 8)
    elif defs.get("UMASK", "").isdigit():
        mode = 0o777 & ~int(defs["UMASK"], 8)
    h = q(home)
    return (f"hb_mkdirs \"$(dirname -- {h})\"; hb_backup {h}\n"
            f"if [ -d /etc/skel ]; then hb_under hb_backup /etc/skel {h}\n"
            f"  cp -a /etc/skel {h}; else mkdir -p {h}; fi\n"
            f"chmod {mode:o} {h}; chown -hR {q(uid)}:{q(gid)} {h}\n"
            f"hb_under hb_after {h} {h}; hb_after {h}")


def _create(args: dict, facts: Facts, check_mode: bool) -> Change:
    """useradd with Ansible's options (create_user_useradd), then chage for the ages asked.
    Check mode reports the change before looking at groups, as Ansible does."""
    name, opts = args["name"], []
    if args["uid"] is not None:
        opts += ["-u", str(args["uid"])]
    if args["group"] is not None:
        if not check_mode:
            _primary_group(args["group"], facts)    # fails on a group that does not exist
        opts += ["-g", args["group"]]
    elif find_group(facts, name) is not None and not name.isdigit():
        opts.append("-N")               # a group of that name exists: no user private group
    if args["groups"] and not check_mode:
        _group_names(args, facts)       # fails on a group that does not exist
        opts += ["-G", ",".join(args["groups"])]
    for arg, flag in (("comment", "-c"), ("home", "-d"), ("shell", "-s")):
        if args[arg] is not None:
            opts += [flag, args[arg]]
    if args["password"] is not None:
        opts += ["-p", ("!" if args["password_lock"] else "") + args["password"]]
    opts.append("-m" if args["create_home"] else "-M")
    if args["system"]:
        opts.append("-r")
    commands = [shlex.join(["useradd", *opts, name])]
    home = args["home"] or f"/home/{name}"
    extra: tuple[str, ...] = ()
    if args["create_home"]:
        h = q(home)
        commands.insert(0, f"hb_backup {h}\n"
                           f"if [ -d /etc/skel ]; then hb_under hb_backup /etc/skel {h}; fi")
        extra = (home,)
    for arg, flag, index in EXPIRES:
        if args[arg] is not None:
            commands.append(f"[ \"$(awk -F: -v u={q(name)} '$1 == u {{print ${index + 1}}}' "
                            f"/etc/shadow)\" = {q(args[arg])} ] || chage {flag} {q(args[arg])} "
                            f"{q(name)}")
    return AccountChange(summary=f"user {name}: useradd",
                         script=command_script(commands, extra), secret=True)


def _remove(args: dict, facts: Facts) -> Change:
    name = args["name"]
    return AccountChange(summary=f"user {name}: userdel",
                         script=command_script([shlex.join(["userdel", name])]),
                         secret=True)


MODULE = UserModule()
