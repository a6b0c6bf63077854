"""Read-only node scripts whose whole output a module parses on the controller (fact kind
`probe`): the raw material of `setup`, `package_facts` and `selinux`. Each runs in a subshell
of the fact exec and its output travels base64-encoded, so it cannot be mistaken for another
fact's section."""

from __future__ import annotations

from harden.apply import host_facts

# dpkg's view of every package: the native architecture first ("ARCH\t<arch>"), then one line
# per package: name, version, architecture, dpkg status abbreviation (ii, rc, ...), section;
# "none" without dpkg-query.
DPKG = r"""if command -v dpkg-query >/dev/null 2>&1; then
  printf 'ARCH\t%s\n' "$(dpkg --print-architecture)"
  dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\t${Section}\n'
else echo none; fi"""

# Which interpreters can import SELinux's Python bindings (Ansible's selinux module needs
# them; it probes the same three), then getenforce's word ("" without SELinux tools).
SELINUX = r"""for py in /usr/libexec/platform-python /usr/bin/python3 /usr/bin/python; do
  [ -x "$py" ] && "$py" -c 'import selinux' 2>/dev/null && echo "PY $py"
done
printf 'ENFORCE %s\n' "$(getenforce 2>/dev/null)"; :"""

SCRIPTS = {"host": host_facts.SCRIPT, "dpkg": DPKG, "selinux": SELINUX}


def script(name: str) -> str:
    """The shell of probe `name` (ValueError for a name that is not one)."""
    if name not in SCRIPTS:
        raise ValueError(f"unknown probe {name!r}")
    return SCRIPTS[name]
