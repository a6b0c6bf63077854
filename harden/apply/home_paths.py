"""`~` and `~user` in a module's node paths, resolved from the node's /etc/passwd.

Ansible types such arguments as `path` and expands them on the node, in the module's process
(`os.path.expanduser`): `~root/.netrc` is `/root/.netrc`, `~` is the home of the user the
module runs as (the become user, else the login user). Roles loop over every account with
`dest: ~{{ item }}/.rhosts`. harden plans on the controller, so it reads the node's passwd (one
fact, fetched once per host) and expands the same way; a user passwd does not name is left as
written, as expanduser does (the module then refuses the relative path). `$VAR` expansion is
not done: the node's environment is not a fact.
"""

from __future__ import annotations

PASSWD = "/etc/passwd"


def wanted(args: dict, names: tuple[str, ...]) -> bool:
    """Whether any node path of these arguments starts with `~`."""
    return any(_tilde(v) for name in names for v in _values(args.get(name)))


def homes(passwd: str) -> dict[str, str]:
    """user -> home directory, first entry of a name winning (as getpwnam)."""
    found: dict[str, str] = {}
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] and not line.startswith(("#", "+", "-")):
            found.setdefault(fields[0], fields[5])
    return found


def expand(args: dict, names: tuple[str, ...], passwd: str, runs_as: str) -> dict:
    """`args` with every `~`-path of `names` expanded (lists element by element)."""
    table = homes(passwd)
    out = dict(args)
    for name in names:
        value = out.get(name)
        if isinstance(value, list):
            out[name] = [expand_one(v, table, runs_as) for v in value]
        elif isinstance(value, str):
            out[name] = expand_one(value, table, runs_as)
    return out


def expand_one(path: str, table: dict[str, str], runs_as: str) -> str:
    if not _tilde(path):
        return path
    head, sep, rest = path[1:].partition("/")
    home = table.get(head or runs_as)
    if home is None:
        return path
    home = home.rstrip("/") or "/"
    return home + (("/" if home != "/" else "") + rest if sep else "")


def runs_as(variables: dict, become: bool | None) -> str:
    """Whose `~` a bare tilde means: the become user (root unless set), else the login user."""
    if become:
        return str(variables.get("ansible_become_user") or "root")
    return str(variables.get("ansible_user") or variables.get("ansible_ssh_user") or "root")


def _values(value) -> list:
    return value if isinstance(value, list) else [value]


def _tilde(value) -> bool:
    return isinstance(value, str) and value.startswith("~")
