"""Ansible's lookup plugins that hardening roles use, run on the controller as Ansible runs
them: `lookup()`, `query()`/`q()` in templates and `with_<lookup>` loops.

Each lookup takes the rendered terms and the task's variables and returns a list. Files are
found as ansible-core finds them: along `ansible_search_path` (the enclosing roles, innermost
first, then the task file's directory, then the playbook's), in the lookup's subdirectory
(`files/`, `templates/`, `vars/`) of each entry and then in the entry itself.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Mapping

from jinja2 import pass_context
from jinja2.exceptions import TemplateRuntimeError

from harden.apply.templating import add_globals, render_template_file



class LookupFailed(Exception):
    """A lookup's own error (the task fails with it; a template reports it as its error)."""

# Collections whose lookups are these same plugins (with_community.general.flattened, ...).
PREFIXES = ("ansible.builtin.", "ansible.legacy.", "community.general.")
_FIRST_FOUND_FLAGS = ("files", "paths", "skip")


def canonical(name: str) -> str:
    """`community.general.flattened` → `flattened` (an unknown name is returned as it is)."""
    for prefix in PREFIXES:
        if name.startswith(prefix) and name[len(prefix):] in LOOKUPS:
            return name[len(prefix):]
    return name


def find_file(variables: Mapping, subdir: str | None, needle: str) -> str | None:
    """The first existing candidate for `needle`, searched as ansible-core's
    path_dwim_relative_stack does; None when there is none."""
    needle = os.path.expanduser(str(needle))
    if os.path.isabs(needle):
        return needle if os.path.exists(needle) else None
    for candidate in _candidates(variables, subdir, needle):
        if os.path.exists(candidate):
            return candidate
    return None


def _candidates(variables: Mapping, subdir: str | None, needle: str) -> list[str]:
    paths = list(variables.get("ansible_search_path") or [os.getcwd()])
    out = []
    for path in paths:
        if subdir and needle.split("/")[0] != subdir:
            out.append(os.path.join(path, subdir, needle))
        out.append(os.path.join(path, needle))
    return out


def _need_file(variables: Mapping, subdir: str, needle: str, lookup: str) -> str:
    found = find_file(variables, subdir, needle)
    if found is None:
        raise LookupFailed(f"lookup {lookup}: could not locate file {needle!r} in "
                         f"{', '.join(_candidates(variables, subdir, str(needle)))}")
    return found


# --- the lookups ---------------------------------------------------------------------------

def _varnames(terms, variables, **_):
    """Names of the variables matching each regular expression (searched, not anchored)."""
    out = []
    for term in terms:
        if not isinstance(term, str):
            raise LookupFailed(f"lookup varnames: {term!r} is not a string")
        pattern = re.compile(term)
        out += [name for name in variables if pattern.search(name)]
    return out


def _file(terms, variables, rstrip=True, lstrip=False, **_):
    out = []
    for term in terms:
        with open(_need_file(variables, "files", term, "file"), encoding="utf-8",
                  errors="replace") as handle:
            text = handle.read()
        text = text.rstrip() if rstrip else text
        out.append(text.lstrip() if lstrip else text)
    return out


def _env(terms, variables, default="", **_):
    return [os.environ.get(str(term), default) for term in terms]


_MISSING = object()


def _vars(terms, variables, default=_MISSING, **_):
    out = []
    for term in terms:
        if term in variables:
            out.append(variables[term])
        elif default is not _MISSING:
            out.append(default)
        else:
            raise LookupFailed(f"lookup vars: no variable named {term!r}")
    return out


def _template(terms, variables, **_):
    out = []
    for term in terms:
        found = _need_file(variables, "templates", term, "template")
        out.append(render_template_file(os.path.basename(found), [os.path.dirname(found)],
                                        dict(variables)))
    return out


def _fileglob(terms, variables, **_):
    out = []
    for term in terms:
        name, folder = os.path.basename(term), os.path.dirname(term)
        if folder:
            found = find_file(variables, "files", folder)
            places = [found] if found else []
        else:
            places = [p for base in variables.get("ansible_search_path") or [os.getcwd()]
                      for p in (os.path.join(base, "files"), base)]
        for place in places:
            matched = [g for g in glob.glob(os.path.join(place, name)) if os.path.isfile(g)]
            if matched:
                out += matched
                break
    return out


def _first_found(terms, variables, subdir=None, **kwargs):
    """The first file that exists of the names (and `paths`) given; [] with `skip`. Called
    as lookup()/query() it looks in no subdirectory (as ansible-core 2.19 does); as a
    `with_first_found` loop the loop gives the subdirectory of the task's kind."""
    candidates, skip = _first_found_terms(terms, kwargs)
    for candidate in candidates:
        found = find_file(variables, subdir, candidate)
        if found is not None:
            return [os.path.normpath(found)]
    if skip:
        return []
    raise LookupFailed("No file was found when using first_found.")


def _first_found_terms(terms, options: dict) -> tuple[list[str], bool]:
    out, skip = [], bool(options.get("skip", False))
    for term in terms if isinstance(terms, list) else [terms]:
        if isinstance(term, Mapping):
            unknown = set(term) - set(_FIRST_FOUND_FLAGS)
            if unknown:
                raise LookupFailed(f"first_found: unknown option(s) {', '.join(sorted(unknown))};"
                                 f" valid: {', '.join(_FIRST_FOUND_FLAGS)}")
            files = _split(term.get("files", []), ",;")
            paths = _split(term.get("paths", []), ",:;")
            skip = skip or bool(term.get("skip", False))
            out += [os.path.join(p, f) for p in paths for f in files] if paths else files
        elif isinstance(term, str):
            out.append(term)
        elif isinstance(term, list):
            more, more_skip = _first_found_terms(term, {})
            out += more
            skip = skip or more_skip
        else:
            raise LookupFailed(f"first_found: a term is a string, a mapping or a list, not "
                             f"{type(term).__name__}")
    return out, skip


def _split(value, separators: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        out += [p for p in re.split(f"[{re.escape(separators)}]", str(item))] \
            if isinstance(item, str) else _split(item, separators)
    return out


def _flattened(terms, variables, **_):
    """Every nested list flattened (community.general's); a 'None'/'null' ends the list."""
    out = []
    for term in terms:
        if term in ("None", "null"):
            break
        if isinstance(term, list):
            out += _flattened(term, variables)
        else:
            out.append(term)
    return out


def _items(terms, variables, **_):
    out = []
    for term in terms:
        out += term if isinstance(term, list) else [term]
    return out


def _dict(terms, variables, **_):
    out = []
    for term in terms:
        if not isinstance(term, Mapping):
            raise LookupFailed(f"with_dict expects a dict, got {type(term).__name__}")
        out += [{"key": k, "value": v} for k, v in term.items()]
    return out


def _list(terms, variables, **_):
    return list(terms)


def _indexed_items(terms, variables, **_):
    return [[index, item] for index, item in enumerate(terms)]


def _subelements(terms, variables, **_):
    """(element, sub-item) pairs, as ansible-core's subelements: terms are the list (or a
    registered result), the key path to the sub-list, and optionally {skip_missing: bool}."""
    if not isinstance(terms, list) or not 2 <= len(terms) <= 3:
        raise LookupFailed("subelements expects a list of two or three items")
    source, key = terms[0], terms[1]
    if not isinstance(source, (list, dict)) or not isinstance(key, str):
        raise LookupFailed("subelements expects first a list or a mapping, second a string "
                         "naming the sub-key")
    flags = terms[2] if len(terms) == 3 else {}
    if not isinstance(flags, Mapping) or set(flags) - {"skip_missing"}:
        raise LookupFailed("subelements: the optional third item must be {skip_missing: bool}")
    if isinstance(source, dict):
        if source.get("skipped", False) is not False:
            return []
        source = list(source.values())
    skip_missing = str(flags.get("skip_missing", False)).lower() in ("true", "yes", "1", "on")
    out = []
    for element in source:
        out += [[element, sub] for sub in _sub_list(element, key.split("."), skip_missing)]
    return out


def _sub_list(element, keys: list[str], skip_missing: bool) -> list:
    if not isinstance(element, Mapping):
        raise LookupFailed(f"subelements expects a dictionary, got {element!r}")
    if element.get("skipped", False) is not False:
        return []
    value = element
    for index, key in enumerate(keys):
        if key not in value:
            if skip_missing:
                return []
            raise LookupFailed(f"could not find '{key}' key in iterated item {value!r}")
        value = value[key]
        last = index == len(keys) - 1
        if not last and not isinstance(value, Mapping):
            if skip_missing:
                return []
            raise LookupFailed(f"the key {key} should point to a dictionary, got {value!r}")
        if last and not isinstance(value, list):
            raise LookupFailed(f"the key {key} should point to a list, got {value!r}")
    return list(value)


LOOKUPS = {
    "varnames": _varnames, "file": _file, "env": _env, "vars": _vars, "template": _template,
    "fileglob": _fileglob, "first_found": _first_found, "flattened": _flattened,
    "items": _items, "dict": _dict, "list": _list, "subelements": _subelements,
    "indexed_items": _indexed_items,
}


def run(name: str, terms: list, variables: Mapping, **options) -> list:
    """One lookup's result list; LookupFailed on an unknown lookup or its own error."""
    function = LOOKUPS.get(canonical(name))
    if function is None:
        raise LookupFailed(f"lookup {name!r} is not supported; lookups: "
                         f"{', '.join(sorted(LOOKUPS))}")
    return list(function(terms, variables, **options))


# --- in templates --------------------------------------------------------------------------

def _context_vars(context) -> dict:
    globals_ = context.environment.globals
    return {k: v for k, v in context.get_all().items()
            if k not in globals_ and not k.startswith("_harden")}


@pass_context
def lookup(context, name: str, *terms, wantlist: bool = False, errors: str = "strict",
           **options):
    """Ansible's `lookup()`: one element alone, several strings joined by commas, else the
    list; `wantlist=True` always the list. `errors=ignore|warn` turns a failure into None."""
    try:
        found = run(name, list(terms), _context_vars(context), **options)
    except LookupFailed as exc:
        if errors in ("ignore", "warn"):
            return [] if wantlist else None
        raise TemplateRuntimeError(str(exc)) from None
    if wantlist or not found:
        return found
    if len(found) == 1:
        return found[0]
    if all(isinstance(item, str) for item in found):
        return ",".join(found)
    return found


@pass_context
def query(context, name: str, *terms, **options):
    """Ansible's `query()` / `q()`: always the list."""
    options["wantlist"] = True
    return lookup(context, name, *terms, **options)


TEMPLATE_GLOBALS = {"lookup": lookup, "query": query, "q": query}
add_globals(TEMPLATE_GLOBALS)
