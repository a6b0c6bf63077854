"""Task loops as Ansible runs them: `loop`, `with_items`, `with_list`, `with_dict`, any
other `with_<lookup>` (harden.apply.lookups: `with_first_found`, `with_subelements`,
`with_community.general.flattened`, ...), with `loop_control` (`loop_var`, `index_var`,
`label`).

A looped task runs once per item with the item as a variable; `when` is judged per item.
`register` keeps Ansible's shape: `results` (one result per item, each with its `item`),
`changed` when any item changed, `skipped` when every item was skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

from jinja2.exceptions import UndefinedError

from harden.apply import lookups
from harden.apply.modules.base import TaskFailed
from harden.apply.templating import _render_text, render_string, render_value

LOOP_KEYS = ("loop", "with_items", "with_list", "with_dict")
LOOP_CONTROL_KEYS = ("loop_var", "index_var", "label")


def loop_kind(key) -> str | None:
    """The loop a task key asks for (`with_community.general.flattened` → `with_flattened`),
    None when the key is no loop; an unknown `with_<lookup>` is returned as it is (the loader
    refuses it naming the lookups there are)."""
    if key in LOOP_KEYS:
        return key
    if isinstance(key, str) and key.startswith("with_"):
        return "with_" + lookups.canonical(key[len("with_"):])
    return None


def known(kind: str) -> bool:
    return kind in LOOP_KEYS or kind[len("with_"):] in lookups.LOOKUPS


def items(kind: str, value, variables: dict, where: tuple, module: str = "") -> list:
    """The items a loop runs over, from the rendered `loop`/`with_*` value."""
    if kind not in LOOP_KEYS:
        return _lookup_items(kind[len("with_"):], value, variables, where, module)
    rendered = render_value(value, variables, where)
    if kind == "with_dict":
        if not isinstance(rendered, dict):
            raise TaskFailed(f"with_dict needs a mapping, got {type(rendered).__name__}")
        return [{"key": k, "value": v} for k, v in rendered.items()]
    if isinstance(rendered, str):
        rendered = [rendered] if kind == "with_items" else rendered
    elif isinstance(rendered, (tuple, Iterator)):    # select(), map(): Jinja's generators
        rendered = list(rendered)
    if not isinstance(rendered, list):
        raise TaskFailed(f"{kind} needs a list, got {type(rendered).__name__}: {rendered!r}")
    if kind == "with_items":                   # flattens one level, as Ansible does
        flat = []
        for item in rendered:
            flat.extend(item if isinstance(item, list) else [item])
        return flat
    return rendered


def item_vars(control: dict, item, index: int) -> dict:
    loop_var = control.get("loop_var") or "item"
    out = {loop_var: item, "ansible_loop_var": loop_var}
    if control.get("index_var"):
        out[control["index_var"]] = index
    return out


def label(control: dict, item, variables: dict, where: tuple) -> str:
    if control.get("label") is not None:
        return str(render_value(control["label"], variables, where))
    return str(item)


def aggregate(results: list[dict]) -> dict:
    """What `register` keeps for a looped task."""
    failed = any(r.get("failed") for r in results)
    return {"results": results, "changed": any(r.get("changed") for r in results),
            "failed": failed, "skipped": bool(results) and all(r.get("skipped") for r in results),
            "msg": "One or more items failed" if failed else "All items completed"}


def _lookup_items(name: str, value, variables: dict, where: tuple, module: str) -> list:
    """`with_<lookup>`: the lookup run on the rendered terms, as ansible-core's loop does (a
    string is one term; first_found leaves out terms that are undefined and searches the
    directory of the task's kind: vars/ for include_vars, templates/ for template)."""
    if name == "first_found":
        terms = _without_undefined(value, variables, where)
        options = {"subdir": next((d + "s" for d in ("template", "var", "file")
                                   if d in module), "files")}
    else:
        terms, options = render_value(value, variables, where), {}
    if not isinstance(terms, list):
        terms = [terms]
    try:
        found = lookups.run(name, terms, variables, **options)
    except lookups.LookupFailed as exc:
        raise TaskFailed(str(exc)) from None
    return [list(item) if isinstance(item, tuple) else item for item in found]


_DROPPED = object()


def _without_undefined(value, variables: dict, where: tuple):
    """The value rendered, strings that name an undefined variable left out."""
    if isinstance(value, str):
        try:
            return _render_text(value, variables)
        except UndefinedError:
            return _DROPPED
        except Exception:                   # any other template error: reported as usual
            return render_string(value, variables, where)
    if isinstance(value, list):
        return [v for v in (_without_undefined(i, variables, where) for i in value)
                if v is not _DROPPED]
    if isinstance(value, dict):
        return {k: v for k, v in ((k, _without_undefined(i, variables, where))
                                  for k, i in value.items()) if v is not _DROPPED}
    return value
