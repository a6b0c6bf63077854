"""Jinja2 for playbooks and templates: sandboxed, strict, Ansible-like.

Sandboxed because playbooks and templates are content a user may take from elsewhere; strict
(StrictUndefined) because a misspelt variable silently rendering as "" would write a broken
manifest to a control plane. A value that is exactly one `{{ expr }}` keeps its native type
(a list stays a list, a bool a bool), as in Ansible.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import re
import shlex
from typing import Any, Iterable

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harden.errors import InputError

# A value that is exactly one expression keeps its native type ("{{ 3 }}" is the int 3). Only
# blanks may surround it: a newline is content ("{{ key }}\n" in a block scalar is a string that
# ends in a newline), and \Z, unlike $, does not match before a final newline.
_SINGLE_EXPR = re.compile(r"\A[ \t]*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}[ \t]*\Z", re.S)


def _b64encode(value) -> str:
    data = value.encode() if isinstance(value, str) else bytes(value)
    return base64.b64encode(data).decode()


def _b64decode(value: str) -> str:
    return base64.b64decode(value).decode("utf-8", errors="surrogateescape")


def _b64len(value: str) -> int:
    """Decoded length in bytes (key-size checks: secretbox/aescbc keys must be 32 bytes)."""
    try:
        return len(base64.b64decode(str(value), validate=True))
    except ValueError:
        return -1


def _to_yaml(value, indent: int = 2) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False, indent=indent)


_FILTERS = {
    "b64encode": _b64encode,
    "b64decode": _b64decode,
    "b64len": _b64len,
    "to_json": json.dumps,
    "to_yaml": _to_yaml,
    "to_nice_yaml": _to_yaml,
    "quote": shlex.quote,
    "basename": posixpath.basename,
    "dirname": posixpath.dirname,
    "bool": lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on"),
}


def make_environment(template_dirs: Iterable[str] = ()) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader([d for d in template_dirs if os.path.isdir(d)]),
        undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters.update(_FILTERS)
    return env


_DEFAULT_ENV = make_environment()


def _defined(value):
    """A bare `{{ name }}` yields an Undefined object instead of failing: make it fail."""
    if isinstance(value, Undefined):
        str(value)          # StrictUndefined raises UndefinedError naming the variable
    return value


def has_template(value: str) -> bool:
    return "{{" in value or "{%" in value


def render_string(text: str, variables: dict, where: tuple = (None, None)) -> Any:
    """Render one string; a lone `{{ expr }}` returns the expression's native value."""
    if not has_template(text):
        return text
    try:
        single = _SINGLE_EXPR.match(text)
        if single:
            return _defined(_DEFAULT_ENV.compile_expression(
                single.group("expr"), undefined_to_none=False)(**variables))
        return _DEFAULT_ENV.from_string(text).render(**variables)
    except TemplateError as exc:
        raise InputError(f"template error in {text!r}: {exc}", *where) from None


def render_value(value: Any, variables: dict, where: tuple = (None, None)) -> Any:
    """Render every string inside lists and dicts (keys included), keeping structure."""
    if isinstance(value, str):
        return render_string(value, variables, where)
    if isinstance(value, list):
        return [render_value(v, variables, where) for v in value]
    if isinstance(value, dict):
        out = type(value)() if type(value) is not dict else {}
        for k, v in value.items():
            out[render_value(k, variables, where)] = render_value(v, variables, where)
        if hasattr(value, "key_lines"):
            out.key_lines = value.key_lines
            out.line = value.line
        return out
    return value


def evaluate(expression: Any, variables: dict, where: tuple = (None, None)) -> Any:
    """Evaluate a bare expression as in `when:` / `assert: that:` (booleans pass through)."""
    if isinstance(expression, bool):
        return expression
    text = str(expression).strip()
    single = _SINGLE_EXPR.match(text)
    if single:
        text = single.group("expr")
    try:
        return _defined(_DEFAULT_ENV.compile_expression(text, undefined_to_none=False)(
            **variables))
    except TemplateError as exc:
        raise InputError(f"cannot evaluate {expression!r}: {exc}", *where) from None


def render_template_file(name: str, template_dirs: list[str], variables: dict) -> str:
    """Render a file from the template search path (first directory holding it wins)."""
    env = make_environment(template_dirs)
    try:
        return env.get_template(name).render(**variables)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        filename = getattr(exc, "filename", None) or name
        raise InputError(f"template {name}: {exc}", filename, lineno) from None


def layered_vars(*layers: dict | None, extra_vars: dict | None = None) -> dict:
    """Merge variable layers, later winning; `-e` extra vars always win last."""
    merged: dict = {}
    for layer in (*layers, extra_vars):
        if layer:
            merged.update(layer)
    return merged


def parse_extra_vars(items: Iterable[str]) -> dict:
    """`-e KEY=VALUE` (value read as YAML, so `-e n=3` is an int) or `-e '{json/yaml map}'`."""
    out: dict = {}
    for item in items:
        if item.lstrip().startswith("{"):
            data = yaml.safe_load(item)
            if not isinstance(data, dict):
                raise InputError(f"-e {item!r}: expected a mapping")
            out.update(data)
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.isidentifier():
            raise InputError(f"-e {item!r}: expected KEY=VALUE with KEY a variable name")
        try:
            out[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            out[key] = value
    return out
