"""`include_vars`: variables from YAML/JSON files on the controller, for this host for the
rest of the run (as set_fact's, above play vars), as ansible-core's include_vars loads them.

A relative `file` is searched along the task's `ansible_search_path` in `vars/` first (a
role's vars/, then the task file's directory, then the playbook's); a relative `dir` the same
way. `dir` loads every file with one of `extensions` (sorted by name, as Ansible walks it) down
to `depth` levels, keeping those matching `files_matching` and leaving out `ignore_files`.
`name` puts everything under one variable. Nothing is read from or written to the node."""

from __future__ import annotations

import os
import re

import yaml

from harden.apply import lookups
from harden.apply.facts import Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.errors import InputError


class IncludeVarsModule(Module):
    name = "include_vars"
    args = (
        Arg("file"),
        Arg("dir"),
        Arg("name"),
        Arg("depth", "int", default=0),
        Arg("files_matching"),
        Arg("ignore_files", "list", default=[]),
        Arg("extensions", "list", default=["yaml", "yml", "json"]),
        Arg("ignore_unknown_extensions", "bool", default=False),
        Arg("hash_behaviour", choices=("replace",)),
    )

    def validate(self, args, path=None, line=None, rendered=True) -> dict:
        out = super().validate(args, path, line, rendered)
        if (out["file"] is None) == (out["dir"] is None):
            raise InputError("include_vars: give file (or a free-form file name) or dir, "
                             "not both and not neither", path, line)
        if out["name"] is not None and rendered and not re.match(r"^[A-Za-z_]\w*$",
                                                                 str(out["name"])):
            raise InputError(f"include_vars: name {out['name']!r} is not a variable name",
                             path, line)
        return out

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        return []

    def loaded(self, args: dict, variables: dict) -> tuple[dict, list[str]]:
        """(the variables, the files they came from); TaskFailed naming what is missing."""
        if args["file"] is not None:
            files = [_found(variables, str(args["file"]), "file")]
        else:
            files = _dir_files(_found(variables, str(args["dir"]), "dir"), args)
        loaded: dict = {}
        for path in files:
            data = _vars_file_data(path)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise TaskFailed(f"include_vars: {path} is not a mapping of variables")
            loaded.update(data)
        if args["name"] is not None:
            loaded = {str(args["name"]): loaded}
        return loaded, files


def _vars_file_data(path: str):
    """A vars file's content (YAML, of which JSON is a part); its errors name file and line."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except OSError as exc:
        raise TaskFailed(f"include_vars: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise TaskFailed(f"include_vars: invalid YAML in {path}"
                         + (f" line {mark.line + 1}" if mark is not None else "")) from None


def _found(variables: dict, needle: str, what: str) -> str:
    found = lookups.find_file(variables, "vars", needle)
    if found is None or (what == "file") != os.path.isfile(found):
        raise TaskFailed(f"include_vars: could not find {what} {needle!r} (looked in vars/ and "
                         f"beside each of {', '.join(variables.get('ansible_search_path', []))})")
    return found


def _dir_files(top: str, args: dict) -> list[str]:
    """The files of `dir` Ansible loads, in its order: each directory's files by name, then
    its subdirectories' (depth 0: all levels)."""
    pattern = re.compile(args["files_matching"]) if args["files_matching"] else None
    extensions = [str(e).lstrip(".") for e in args["extensions"]]
    out = []
    for root, dirs, names in os.walk(top):
        dirs.sort()
        level = root[len(top):].count(os.sep)
        if args["depth"] and level >= args["depth"]:
            dirs[:] = []
        for name in sorted(names):
            if name in args["ignore_files"] or (pattern and not pattern.search(name)):
                continue
            extension = name.rsplit(".", 1)[-1] if "." in name else ""
            if extension not in extensions:
                if args["ignore_unknown_extensions"]:
                    continue
                raise TaskFailed(f"include_vars: {os.path.join(root, name)} does not have a "
                                 f"valid extension: {', '.join(extensions)}")
            out.append(os.path.join(root, name))
    return out


MODULE = IncludeVarsModule()
