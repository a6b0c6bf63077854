"""`getent`: read a colon database (passwd, group, shadow, gshadow) of the node into
`ansible_facts.getent_<database>`, keyed by the first field with the other fields as a list,
as Ansible's getent module leaves it (a name seen twice becomes a list of those lists).

The node's files are read in the play's one gather (with become, so shadow is readable); lab
nodes and kubeadm hosts resolve these databases from files. `key` selects one entry by name (or,
for passwd and group, by numeric id); a missing key fails the task unless `fail_key: false`,
which sets the key to None. Other databases (hosts, services, ...) go through NSS services
harden does not model and are refused at load.
"""

from __future__ import annotations

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.errors import InputError

DATABASES = ("passwd", "group", "shadow", "gshadow")
NOT_FOUND = "One or more supplied key could not be found in the database."


class GetentModule(Module):
    name = "getent"
    args = (
        Arg("database", required=True),
        Arg("key"),
        Arg("split"),
        Arg("fail_key", "bool", default=True),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        out = super().validate(args, path, line, rendered)
        database = out["database"]
        if isinstance(database, str) and "{{" not in database and database not in DATABASES:
            raise InputError(f"getent: database {database!r} is not supported (harden reads "
                             f"{', '.join(DATABASES)} from the node's files)", path, line)
        return out

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, f"/etc/{args['database']}", content=True)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        self.lookup(args, facts)        # a missing key fails the task here
        return []

    def lookup(self, args: dict, facts: Facts) -> dict:
        """{first field: other fields} of the entries asked for, as the module builds it."""
        state = facts.file(f"/etc/{args['database']}", content=True)
        lines = state.content.decode(errors="replace").splitlines() if state else []
        entries = [l for l in lines if l.strip() and not l.startswith(("#", "+", "-"))]
        key = args["key"]
        if key is not None:
            entries = [l for l in entries if _matches(l, key, args["database"])][:1]
            if not entries:
                if args["fail_key"]:
                    raise TaskFailed(NOT_FOUND)
                return {key: None}
        return as_tree(entries, args["split"] if args["split"] is not None else ":")

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        """`ansible_facts` in a result become the host's facts (harden.apply.tasks)."""
        tree = self.lookup(args, facts)
        found = {"ansible_facts": {f"getent_{args['database']}": tree}}
        if args["key"] is not None and tree.get(args["key"]) is None:
            found["msg"] = NOT_FOUND
        return found


def _matches(line: str, key: str, database: str) -> bool:
    """getent's key: the entry's name, or for passwd and group its numeric id."""
    fields = line.split(":")
    if fields[0] == key:
        return True
    return database in ("passwd", "group") and key.isdigit() and len(fields) > 2 \
        and fields[2] == key


def as_tree(lines: list[str], split: str) -> dict:
    """Ansible's shape: first field → the rest; a repeated first field → list of those."""
    tree: dict = {}
    seen: dict[str, int] = {}
    for line in lines:
        record = line.split(split)
        name = record[0]
        if name in seen:
            if seen[name] == 1:
                tree[name] = [tree[name]]
            tree[name].append(record[1:])
            seen[name] += 1
        else:
            tree[name], seen[name] = record[1:], 1
    return tree


MODULE = GetentModule()
