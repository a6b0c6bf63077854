"""`dnf` (and `yum`, which Ansible redirects to dnf): RPM packages present, absent or latest,
judged from the node's rpm database (read in the play's one fact exec) like `package`.

On a node without rpm and dnf/yum (a Debian-family node) the task fails as Ansible's dnf
action fails there: it cannot tell which dnf backend to use. `--check` reports what would
change from rpm; a real run runs `dnf -y install` / `dnf -y remove`, which, like `package`,
is not rolled back. Only `name` and `state` are taken; state `latest` (which needs the
repositories' metadata) and `list`, `enablerepo`, `exclude`, `update_cache`, ... are refused at
load.
"""

from __future__ import annotations

import shlex

from harden.apply.facts import RPM, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.apply.modules.package import STATES, _names

NO_BACKEND = ("Could not detect which major revision of dnf is in use, which is required to "
              "determine module backend. You should manually specify use_backend to tell the "
              "module whether to use the dnf4 or dnf5 backend")


class DnfModule(Module):
    name = "dnf"
    args = (Arg("name", "any", required=True),
            Arg("state", choices=("present", "installed", "absent", "removed"),
                default="present"))

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        if isinstance(args, dict) and "pkg" in args and "name" not in args:
            args = {"name" if k == "pkg" else k: v for k, v in args.items()}
        return super().validate(args, path, line, rendered)

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(RPM, n) for n in _names(args["name"])]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        state = STATES[args["state"]]
        install, remove = [], []
        for name in _names(args["name"]):
            found = facts.rpm(name)
            if not found["rpm"]:
                raise TaskFailed(NO_BACKEND + f" (this host has no rpm/dnf; harden judges "
                                 f"{self.name} from the rpm database)")
            if state == "absent" and found["installed"]:
                remove.append(name)
            elif state != "absent" and not found["installed"]:
                install.append(name)
        return [_dnf(verb, names) for verb, names in (("install", install), ("remove", remove))
                if names]


class YumModule(DnfModule):
    name = "yum"


def _dnf(verb: str, names: list[str]) -> Change:
    words = " ".join(shlex.quote(n) for n in names)
    return Change(summary=f"{verb} {', '.join(names)}", diff=f"{verb}: {', '.join(names)}\n",
                  script=f"dnf -y -q {verb} -- {words}")


MODULE = DnfModule()
YUM = YumModule()
