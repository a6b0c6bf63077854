"""`selinux` (ansible.posix.selinux): SELinux's mode and policy in its config file, and the
running mode when SELinux is enabled.

Ansible's module needs SELinux's Python bindings on the node and fails before looking at
anything without them; harden probes the same interpreters and fails the same way (so on a
Debian lab node the task fails, as ansible-playbook's does). With them, the config file's
`SELINUX=` / `SELINUXTYPE=` lines are rewritten through the usual backup/atomic write, and
`setenforce` switches a running enforcing/permissive node (a rollback restores the file, not
the running mode). Enabling or disabling SELinux itself takes a reboot, which harden leaves to
the operator; `update_kernel_param` (grubby) is refused at load.
"""

from __future__ import annotations

import re

from harden.apply.facts import FILE, PROBE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write

MISSING_LIB = ("Failed to import the required Python library (libselinux-python) on this "
               "host's Python. Please read the module documentation and install it in the "
               "appropriate location. If the required library is installed, but Ansible is "
               "using the wrong Python interpreter, please consult the documentation on "
               "ansible_python_interpreter")


class SelinuxModule(Module):
    name = "selinux"
    args = (Arg("policy"),
            Arg("state", choices=("enforcing", "permissive", "disabled"), required=True),
            Arg("configfile", default="/etc/selinux/config"))

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict):
            for alias in ("conf", "file"):
                if alias in args and "configfile" not in args:
                    args = {"configfile" if k == alias else k: v for k, v in args.items()}
        return super().validate(args, path, line, rendered)

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(PROBE, "selinux"), FactRequest(FILE, args["configfile"], content=True)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        probe = facts.probe("selinux").splitlines()
        if not any(line.startswith("PY ") for line in probe):
            raise TaskFailed(MISSING_LIB)
        state, policy, path = args["state"], args["policy"], args["configfile"]
        config = facts.file(path, content=True)
        if config is None:
            raise TaskFailed(f"Unable to find file {path}")
        if state != "disabled" and not policy:
            raise TaskFailed("Policy is required if state is not 'disabled'")
        old = (config.content or b"").decode(errors="replace")
        new = _set(old, "SELINUX", state)
        if policy:
            new = _set(new, "SELINUXTYPE", policy)
        changes = plan_write(path, new.encode(), config, None, None, None, secret=False) \
            if new != old else []
        running = next((line[8:].strip().lower() for line in probe
                        if line.startswith("ENFORCE ")), "")
        if running in ("enforcing", "permissive") and state != "disabled" and state != running:
            changes.append(Change(summary=f"setenforce {state} (was {running})",
                                  script=f"setenforce {1 if state == 'enforcing' else 0}",
                                  diff=f"-running {running}\n+running {state}\n"))
        return changes


def _set(text: str, key: str, value: str) -> str:
    """Each `KEY=` line set to value, as Ansible's module rewrites them (a file without one
    gains none: Ansible's regex replacement adds no line either)."""
    return re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)


MODULE = SelinuxModule()
