"""`ansible.cfg`, found and read as ansible-core finds it, for the settings harden shares with
ansible-playbook: where the inventory is, how to log in, how to become root, where roles are.

ansible-core reads ONE file, the first of: `$ANSIBLE_CONFIG` (a file, or a directory holding
ansible.cfg), `./ansible.cfg` (skipped when the current directory is world-writable, as
Ansible does), `~/.ansible.cfg`, `/etc/ansible/ansible.cfg`. An `ANSIBLE_*` environment
variable beats the file. Relative paths in the file are relative to the file's directory.
Command-line options beat both; a host's inventory variables beat all three (Ansible's
precedence: connection variables win over the command line), which is why the results are
handed on as *defaults* of host variables (`host_defaults`).
"""

from __future__ import annotations

import configparser
import os
import stat
from dataclasses import dataclass, field

from harden.errors import InputError

SEARCH = ("./ansible.cfg", "~/.ansible.cfg", "/etc/ansible/ansible.cfg")

# (section, key, environment variable, kind)
SETTINGS = {
    "inventory": ("defaults", "inventory", "ANSIBLE_INVENTORY", "paths"),
    "remote_user": ("defaults", "remote_user", "ANSIBLE_REMOTE_USER", "str"),
    "private_key_file": ("defaults", "private_key_file", "ANSIBLE_PRIVATE_KEY_FILE", "path"),
    "host_key_checking": ("defaults", "host_key_checking", "ANSIBLE_HOST_KEY_CHECKING", "bool"),
    "roles_path": ("defaults", "roles_path", "ANSIBLE_ROLES_PATH", "paths"),
    "forks": ("defaults", "forks", "ANSIBLE_FORKS", "int"),
    "become": ("privilege_escalation", "become", "ANSIBLE_BECOME", "bool"),
    "become_user": ("privilege_escalation", "become_user", "ANSIBLE_BECOME_USER", "str"),
    "become_method": ("privilege_escalation", "become_method", "ANSIBLE_BECOME_METHOD", "str"),
    "become_ask_pass": ("privilege_escalation", "become_ask_pass", "ANSIBLE_BECOME_ASK_PASS",
                        "bool"),
    "ssh_args": ("ssh_connection", "ssh_args", "ANSIBLE_SSH_ARGS", "str"),
}
_TRUE = ("true", "yes", "on", "1", "y", "t")
_FALSE = ("false", "no", "off", "0", "n", "f")


@dataclass
class AnsibleConfig:
    """The settings found (None: not set anywhere) and the file they came from."""

    path: str | None = None
    values: dict = field(default_factory=dict)

    def get(self, name: str, default=None):
        value = self.values.get(name)
        return default if value is None else value


def find_config(env=None, cwd: str | None = None) -> str | None:
    """The one file ansible-core would read, or None."""
    env = os.environ if env is None else env
    cwd = cwd or os.getcwd()
    named = env.get("ANSIBLE_CONFIG")
    if named:
        named = os.path.expanduser(named)
        if os.path.isdir(named):
            named = os.path.join(named, "ansible.cfg")
        if os.path.isfile(named):
            return os.path.abspath(named)
    for candidate in SEARCH:
        path = os.path.abspath(os.path.join(cwd, os.path.expanduser(candidate)))
        if not os.path.isfile(path):
            continue
        if candidate.startswith("./") and os.stat(cwd).st_mode & stat.S_IWOTH:
            continue            # Ansible ignores a config in a world-writable directory
        return path
    return None


def load_config(env=None, cwd: str | None = None) -> AnsibleConfig:
    """The config file's settings with ANSIBLE_* variables on top; InputError (file:line) on
    a value of the wrong kind."""
    env = os.environ if env is None else env
    path = find_config(env, cwd)
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None,
                                       strict=False)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                parser.read_file(handle)
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise InputError(f"not an ini file: {str(exc).splitlines()[0]}", path) from None
    values = {}
    for name, (section, key, variable, kind) in SETTINGS.items():
        if env.get(variable) not in (None, ""):
            values[name] = _convert(env[variable], kind, f"${variable}", None, os.getcwd())
        elif parser.has_option(section, key):
            values[name] = _convert(parser.get(section, key), kind, path,
                                    _line_of(path, key), os.path.dirname(path))
    return AnsibleConfig(path, values)


def _convert(text: str, kind: str, where: str, line: int | None, base: str):
    text = text.strip()
    if kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise InputError(f"{where.split('/')[-1] if line else where}: expected a boolean, got "
                         f"{text!r}", where if line else None, line)
    if kind == "int":
        if not text.isdigit() or int(text) < 1:
            raise InputError(f"forks must be a positive number, got {text!r}",
                             where if line else None, line)
        return int(text)
    if kind == "path":
        return os.path.join(base, os.path.expanduser(text))
    if kind == "paths":
        separator = "," if kind == "paths" and "," in text else os.pathsep
        return [os.path.join(base, os.path.expanduser(p.strip()))
                for p in text.split(separator) if p.strip()]
    return text


def _line_of(path: str, key: str) -> int | None:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.split("=", 1)[0].strip() == key:
                return number
    return None


def host_defaults(config: AnsibleConfig, *, user: str | None = None,
                  private_key: str | None = None, become: bool | None = None,
                  become_user: str | None = None) -> dict:
    """Inventory variables every host gets unless it sets them itself: the command line's
    -u/--private-key/-b/--become-user, else ansible.cfg's (or ANSIBLE_*) values."""
    picks = {
        "ansible_user": user or config.get("remote_user"),
        "ansible_ssh_private_key_file": private_key or config.get("private_key_file"),
        "ansible_become": become if become else config.get("become"),
        "ansible_become_user": become_user or config.get("become_user"),
        "ansible_become_method": config.get("become_method"),
        "ansible_ssh_args": config.get("ssh_args"),
        "ansible_host_key_checking": config.get("host_key_checking"),
    }
    return {k: v for k, v in picks.items() if v is not None}
