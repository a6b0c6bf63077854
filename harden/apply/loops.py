"""Task loops as Ansible runs them: `loop`, `with_items`, `with_list`, `with_dict`, with
`loop_control` (`loop_var`, `index_var`, `label`).

A looped task runs once per item with the item as a variable; `when` is judged per item.
`register` keeps Ansible's shape: `results` (one result per item, each with its `item`),
`changed` when any item changed, `skipped` when every item was skipped.
"""

from __future__ import annotations

from collections.abc import Iterator

from harden.apply.modules.base import TaskFailed
from harden.apply.templating import render_value

LOOP_KEYS = ("loop", "with_items", "with_list", "with_dict")
LOOP_CONTROL_KEYS = ("loop_var", "index_var", "label")


def items(kind: str, value, variables: dict, where: tuple) -> list:
    """The items a loop runs over, from the rendered `loop`/`with_*` value."""
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
    return {"results": results, "changed": any(r.get("changed") for r in results),
            "failed": False, "skipped": bool(results) and all(r.get("skipped") for r in results),
            "msg": "All items completed"}
