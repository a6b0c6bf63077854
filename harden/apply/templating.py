"""Jinja2 for playbooks and templates: sandboxed, strict, Ansible-like.

Sandboxed because playbooks and templates are content a user may take from elsewhere; strict
(StrictUndefined) because a misspelt variable silently rendering as "" would write a broken
manifest to a control plane. A value that is exactly one `{{ expr }}` keeps its native type
(a list stays a list, a bool a bool), as in Ansible.

Variables may refer to other variables (`config: "{{ dir }}/x.yaml"`), as in Ansible: see
layered_vars. Only what the user wrote is templated that way, never data from a node.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import posixpath
import re
import shlex
from functools import lru_cache
from collections.abc import Mapping
from typing import Any, Callable, Iterable

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, Undefined, meta
from jinja2.exceptions import TemplateRuntimeError, UndefinedError
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
    return yaml.safe_dump(_plain(value), default_flow_style=False, sort_keys=False,
                          indent=indent)


def _plain(value):
    """Plain dicts, lists and strings: a play's `vars:` mapping is the loader's dict subclass
    (it remembers key lines), which yaml.safe_dump refuses to represent."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    return value


def _to_nice_yaml(value, indent: int = 4, **options) -> str:
    """Ansible's to_nice_yaml: block style, keys sorted, indent 4 unless given. A role that
    writes a manifest with it and then edits lines must see the same text harden plans on."""
    options.setdefault("sort_keys", True)
    return yaml.safe_dump(_plain(value), default_flow_style=False, indent=indent,
                          allow_unicode=True,
                          **{k: v for k, v in options.items() if k in ("sort_keys", "width")})


def _extract(item, container, morekeys=None):
    """Ansible's `extract`: container[item], then each of `morekeys` in turn (for
    `groups['x'] | map('extract', hostvars, ['result', 'field'])`)."""
    keys = morekeys if isinstance(morekeys, (list, tuple)) else \
        ([] if morekeys is None else [morekeys])
    path = [item, *keys]
    value = container
    for depth, key in enumerate(path):
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            where = "".join(f"[{k!r}]" for k in path[:depth])
            raise UndefinedError(f"extract: {where or 'the container'} has no {key!r} (a task "
                                 f"skipped by `when`, or run in a later play, registers "
                                 f"nothing)") from None
    return value


def _from_yaml(text: str):
    return yaml.safe_load(text) if isinstance(text, str) else text


def _combine(*dicts, recursive: bool = False, list_merge: str = "replace") -> dict:
    """Ansible's combine: later mappings win; `recursive` merges nested mappings."""
    if list_merge not in ("replace", "append", "prepend", "keep"):
        raise TemplateRuntimeError(f"combine: list_merge {list_merge!r} is not supported")
    out: dict = {}
    for item in dicts:
        for one in (item if isinstance(item, list) else [item]):
            if not isinstance(one, Mapping):
                raise TemplateRuntimeError(f"combine needs mappings, got {type(one).__name__}")
            out = _merge(out, dict(one), recursive, list_merge)
    return out


def _merge(base: dict, extra: dict, recursive: bool, list_merge: str) -> dict:
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        if recursive and isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _merge(dict(old), dict(value), True, list_merge)
        elif isinstance(old, list) and isinstance(value, list) and list_merge != "replace":
            out[key] = {"append": old + value, "prepend": value + old, "keep": old}[list_merge]
        else:
            out[key] = value
    return out


def _ternary(value, true_value, false_value, none_value=None):
    if value is None and none_value is not None:
        return none_value
    return true_value if value else false_value


def _regex_flags(ignorecase: bool = False, multiline: bool = False) -> int:
    return (re.I if ignorecase else 0) | (re.M if multiline else 0)


def _regex_search(value, pattern: str, *groups, ignorecase=False, multiline=False):
    found = re.search(pattern, str(value), _regex_flags(ignorecase, multiline))
    if found is None:
        return None
    if not groups:
        return found.group(0)
    return [found.group(int(g[1:]) if g.startswith("\\") else g) for g in groups]


def _regex_replace(value, pattern: str = "", replacement: str = "", ignorecase=False,
                   multiline=False, count: int = 0):
    return re.sub(pattern, replacement, str(value), count=count,
                  flags=_regex_flags(ignorecase, multiline))


def _flatten(value, levels=None):
    out = []
    for item in value:
        if isinstance(item, list) and (levels is None or levels > 0):
            out.extend(_flatten(item, None if levels is None else levels - 1))
        elif item is not None:
            out.append(item)
    return out


def _dict2items(value: Mapping, key_name: str = "key", value_name: str = "value") -> list:
    return [{key_name: k, value_name: v} for k, v in value.items()]


def _items2dict(value, key_name: str = "key", value_name: str = "value") -> dict:
    return {item[key_name]: item[value_name] for item in value}


_COMMENT_STYLES = {
    "plain": {"decoration": "# "},
    "erlang": {"decoration": "% "},
    "c": {"decoration": "// "},
    "cblock": {"beginning": "/*", "decoration": " * ", "end": " */"},
    "xml": {"beginning": "<!--", "decoration": " - ", "end": "-->"},
}


def _comment(text, style: str = "plain", **kw) -> str:
    """Ansible's `comment` filter, part for part (`{{ ansible_managed | comment }}` heads most
    role templates): optional beginning, prefix line(s), each text line decorated, postfix
    line(s), optional end; a decoration alone on a line loses its trailing space."""
    if style not in _COMMENT_STYLES:
        raise TemplateError(f"comment: invalid style {style!r}; styles: "
                            f"{', '.join(_COMMENT_STYLES)}")
    outer = kw.get("decoration", _COMMENT_STYLES[style]["decoration"])
    p = {"newline": "\n", "beginning": "", "prefix": outer.rstrip(), "prefix_count": 1,
         "decoration": "", "postfix": outer.rstrip(), "postfix_count": 1, "end": "",
         **_COMMENT_STYLES[style], **kw}
    nl, deco = p["newline"], p["decoration"]
    beginning = f"{p['beginning']}{nl}" if p["beginning"] else ""
    prefix = ""
    if p["prefix"]:
        prefix = (nl if p["prefix"] == nl else f"{p['prefix']}{nl}") * int(p["prefix_count"])
    body = (deco + str(text).replace(nl, nl + deco)).replace(deco + nl, deco.rstrip() + nl)
    postfix = nl.join([""] + [p["postfix"]] * int(p["postfix_count"]))
    end = f"{nl}{p['end']}" if p["end"] else ""
    return beginning + prefix + body + postfix + end


_FILTERS = {
    "comment": _comment,
    "extract": _extract,
    "from_yaml": _from_yaml,
    "from_json": lambda text: json.loads(text) if isinstance(text, str) else text,
    "to_nice_json": lambda v, indent=4: json.dumps(v, indent=indent, sort_keys=True),
    "combine": _combine,
    "ternary": _ternary,
    "regex_search": _regex_search,
    "regex_replace": _regex_replace,
    "regex_findall": lambda v, p, ignorecase=False, multiline=False: re.findall(
        p, str(v), _regex_flags(ignorecase, multiline)),
    "regex_escape": lambda v: re.escape(str(v)),
    "flatten": _flatten,
    "dict2items": _dict2items,
    "items2dict": _items2dict,
    "difference": lambda a, b: [x for x in dict.fromkeys(a) if x not in b],
    "union": lambda a, b: list(dict.fromkeys([*a, *b])),
    "intersect": lambda a, b: [x for x in dict.fromkeys(a) if x in b],
    "b64encode": _b64encode,
    "b64decode": _b64decode,
    "b64len": _b64len,
    "to_json": json.dumps,
    "to_yaml": _to_yaml,
    "to_nice_yaml": _to_nice_yaml,
    "quote": shlex.quote,
    "basename": posixpath.basename,
    "dirname": posixpath.dirname,
    "bool": lambda v: v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes", "on"),
}


def _strict_filter(function: Callable) -> Callable:
    """Our filters are plain Python: given an Undefined (`{{ missing | basename }}`, a variable
    whose own value failed) they would raise a TypeError that hides which variable is
    missing. Raise the Undefined's own error instead."""
    def apply(value, *args, **kwargs):
        return function(_defined(value), *args, **kwargs)
    return apply


def make_environment(template_dirs: Iterable[str] = (), trim_blocks: bool = False,
                     lstrip_blocks: bool = False) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader([d for d in template_dirs if os.path.isdir(d)]),
        undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False,
        trim_blocks=trim_blocks, lstrip_blocks=lstrip_blocks)
    env.filters.update({name: _strict_filter(f) for name, f in _FILTERS.items()})
    env.tests.update(_RESULT_TESTS)
    env.globals.update(_GLOBALS)
    return env


_GLOBALS: dict = {}


def add_globals(functions: dict) -> None:
    """Functions every template may call (`lookup`, `query`): harden.apply.lookups adds its
    own when imported, so the lookups, which render templates, sit above this module."""
    _GLOBALS.update(functions)
    _DEFAULT_ENV.globals.update(functions)


def _result_test(key: str, when_true: bool = True) -> Callable:
    """Ansible's tests on a registered result (`r is failed`, `r is changed`, ...)."""
    def test(result) -> bool:
        _defined(result)
        if not isinstance(result, Mapping):
            raise TemplateRuntimeError(f"the '{key}' test needs a registered task result, "
                                       f"got {type(result).__name__}")
        return bool(result.get(key, False)) == when_true
    return test


def _regex_test(how: str) -> Callable:
    """Ansible's `is search`, `is match` (from the start) and `is regex` tests."""
    def test(value, pattern: str = "", ignorecase: bool = False, multiline: bool = False,
             match_type: str = how) -> bool:
        finder = re.search if match_type == "search" else re.match
        return finder(pattern, str(_defined(value)), _regex_flags(ignorecase, multiline)) \
            is not None
    return test


def _version_test(value, other, operator: str = "eq", strict=None, version_type=None) -> bool:
    """Ansible's `version` test (loose versions: numbers compared as numbers)."""
    def key(text):
        return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-+]", str(text))]
    a, b = key(value), key(other)
    ops = {"eq": a == b, "==": a == b, "ne": a != b, "!=": a != b, "<>": a != b,
           "lt": a < b, "<": a < b, "le": a <= b, "<=": a <= b, "gt": a > b, ">": a > b,
           "ge": a >= b, ">=": a >= b}
    if operator not in ops:
        raise TemplateRuntimeError(f"version: unknown operator {operator!r}")
    return ops[operator]


_RESULT_TESTS = {
    "search": _regex_test("search"), "match": _regex_test("match"),
    "regex": _regex_test("search"),
    "version": _version_test, "version_compare": _version_test,
    **{name: _result_test("failed") for name in ("failed", "failure")},
    **{name: _result_test("failed", False) for name in ("succeeded", "success", "successful")},
    **{name: _result_test("changed") for name in ("changed", "change")},
    **{name: _result_test("skipped") for name in ("skipped", "skip")},
}


_DEFAULT_ENV = make_environment()


def _defined(value):
    """A bare `{{ name }}` yields an Undefined object instead of failing: make it fail."""
    if isinstance(value, Undefined):
        str(value)          # StrictUndefined raises UndefinedError naming the variable
    return value


def has_template(value: str) -> bool:
    return "{{" in value or "{%" in value


@lru_cache(maxsize=1024)
def _compiled_template(text: str):
    """Compiled once per text: variables are rendered again for every task of every host."""
    return _DEFAULT_ENV.from_string(text)


@lru_cache(maxsize=1024)
def _compiled_expression(expr: str):
    return _DEFAULT_ENV.compile_expression(expr, undefined_to_none=False)


def _render_text(text: str, variables: dict) -> Any:
    """render_string without the error translation (raises the template's own exception)."""
    if not has_template(text):
        return text
    single = _SINGLE_EXPR.match(text)
    if single:
        return _defined(_compiled_expression(single.group("expr"))(**variables))
    if text.endswith("\n"):
        ended = _newline_kept(text, text[:-1], variables)
        if ended is not None:
            return _literal_container(ended)
    return _literal_container(_compiled_template(text).render(**variables))


def _newline_kept(text: str, head: str, variables: dict) -> str | None:
    """Ansible renders a text without its final newline (Jinja's keep_trailing_newline off)
    and then adds newlines until the result ends in as many as the text did: so
    `content: "{{ m | to_nice_yaml }}\n"` is the YAML with one final newline, and
    `"{{ 'abc' }}\n"` is "abc\n". None when the value is not text (a lone expression
    of another type keeps the old rendering)."""
    single = _SINGLE_EXPR.match(head)
    value = _defined(_compiled_expression(single.group("expr"))(**variables)) if single \
        else _compiled_template(head).render(**variables)
    if not isinstance(value, str):
        return None
    missing = _trailing_newlines(text) - _trailing_newlines(value)
    return value + "\n" * max(missing, 0)


def _trailing_newlines(text: str) -> int:
    return len(text) - len(text.rstrip("\n"))


def _literal_container(rendered: str) -> Any:
    """A rendered text that reads as a Python dict or list literal is that value, as Ansible's
    native templating makes it (a folded `set_fact: x: > {{ a | combine(b) }}` is a mapping,
    not its text). Only literals: nothing in it is evaluated."""
    stripped = rendered.strip()
    if not (stripped.startswith(("{", "[")) and stripped.endswith(("}", "]"))):
        return rendered
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return rendered
    return value if isinstance(value, (dict, list)) else rendered


def render_string(text: str, variables: dict, where: tuple = (None, None)) -> Any:
    """Render one string; a lone `{{ expr }}` returns the expression's native value."""
    try:
        return _render_text(text, variables)
    except TemplateError as exc:
        raise InputError(f"template error in {text!r}: {exc}", *where) from None


def render_value(value: Any, variables: dict, where: tuple = (None, None)) -> Any:
    """Render every string inside lists and dicts (keys included), keeping structure."""
    return _map_strings(value, lambda text: render_string(text, variables, where))


def _map_strings(value: Any, render: Callable[[str], Any]) -> Any:
    if isinstance(value, str):
        return render(value)
    if isinstance(value, list):
        return [_map_strings(v, render) for v in value]
    if isinstance(value, dict):
        out = type(value)() if type(value) is not dict else {}
        for k, v in value.items():
            out[_map_strings(k, render)] = _map_strings(v, render)
        if hasattr(value, "key_lines"):
            out.key_lines = value.key_lines
            out.line = value.line
        return out
    return value


def _template_strings(value: Any) -> Iterable[str]:
    """Every string holding a template inside a value, dict keys included."""
    if isinstance(value, str):
        if has_template(value):
            yield value
    elif isinstance(value, list):
        for item in value:
            yield from _template_strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _template_strings(key)
            yield from _template_strings(item)


@lru_cache(maxsize=1024)
def _names_used(text: str) -> frozenset[str]:
    return frozenset(meta.find_undeclared_variables(_DEFAULT_ENV.parse(text)))


def evaluate(expression: Any, variables: dict, where: tuple = (None, None)) -> Any:
    """Evaluate a bare expression as in `when:` / `assert: that:` (booleans pass through)."""
    if isinstance(expression, bool):
        return expression
    text = str(expression).strip()
    single = _SINGLE_EXPR.match(text)
    if single:
        text = single.group("expr")
    try:
        return _defined(_compiled_expression(text)(**variables))
    except TemplateError as exc:
        raise InputError(f"cannot evaluate {expression!r}: {exc}", *where) from None


def render_template_file(name: str, template_dirs: list[str], variables: dict,
                         trim_blocks: bool = True, lstrip_blocks: bool = False) -> str:
    """Render a file from the template search path (first directory holding it wins). Block
    tags eat their newline by default, as in Ansible's template module (`trim_blocks`)."""
    env = make_environment(template_dirs, trim_blocks, lstrip_blocks)
    try:
        return env.get_template(name).render(**variables)
    except TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        filename = getattr(exc, "filename", None) or name
        raise InputError(f"template {name}: {exc}", filename, lineno) from None


class Untemplated(dict):
    """A layer of variables that are data, not playbook text: registered results (a node's
    command output) and the built-in variables. Their values are never rendered, so a node
    printing `{{ ... }}` cannot make the controller evaluate it."""


def layered_vars(*layers: dict | None, extra_vars: dict | None = None) -> dict:
    """Merge variable layers, later winning; `-e` extra vars always win last.

    A winning value from a templated layer (anything but Untemplated) that holds `{{ }}` is
    rendered, in the order its references need, so variables may refer to variables at any
    depth. A value that cannot be rendered (an undefined reference, a cycle) becomes an
    Undefined carrying the reason: using it fails naming the variable, while a variable
    nobody uses (say one that needs a result registered later) fails nothing."""
    merged: dict = {}
    data: set[str] = set()
    for layer in (*layers, extra_vars):
        if layer:
            merged.update(layer)
            if isinstance(layer, Untemplated):
                data.update(layer)
            else:
                data.difference_update(layer)
    templated = {name for name, value in merged.items()
                 if name not in data and any(_template_strings(value))}
    return _VariableRenderer(merged, templated).render_all()


class _VariableRenderer:
    """Renders each templated variable once, its references first (depth-first).

    One pass in dependency order, not a repeat-until-stable loop: a rendered value is never
    rendered again, so a variable holding a registered command output stays that text."""

    def __init__(self, variables: dict, templated: set[str]):
        self.variables = variables
        self.pending = templated
        self.visiting: list[str] = []

    def render_all(self) -> dict:
        for name in sorted(self.pending):
            self.render(name)
        return self.variables

    def render(self, name: str) -> None:
        if name not in self.pending:
            return
        if name in self.visiting:
            self.fail_cycle(self.visiting[self.visiting.index(name):])
            return
        self.visiting.append(name)
        try:
            self.render_references(name)
            if name in self.pending:          # not failed as part of a cycle
                self.variables[name] = self.rendered(name)
        finally:
            self.visiting.pop()
            self.pending.discard(name)

    def render_references(self, name: str) -> None:
        try:
            used = set().union(*(_names_used(text)
                                 for text in _template_strings(self.variables[name])))
        except TemplateError:
            return                            # a syntax error: rendered() reports it
        for reference in sorted(used):
            self.render(reference)

    def rendered(self, name: str) -> Any:
        """The rendered value, or an Undefined that fails on use with the reason.

        Every exception is kept for later, not only template errors: all variables are
        rendered for every task, and `{{ 1 / 0 }}` in a variable no task uses must not fail
        the play."""
        try:
            return _map_strings(self.variables[name],
                                lambda text: _render_text(text, self.variables))
        except Exception as exc:              # noqa: BLE001 - see the docstring
            return StrictUndefined(hint=f"variable '{name}': {exc}", name=name)

    def fail_cycle(self, cycle: list[str]) -> None:
        for index, name in enumerate(cycle):
            others = cycle[index + 1:] + cycle[:index]
            through = f" through {', '.join(others)}" if others else ""
            self.variables[name] = StrictUndefined(
                hint=f"variable '{name}' refers to itself{through}", name=name)
            self.pending.discard(name)


def parse_extra_vars(items: Iterable[str]) -> dict:
    """`-e KEY=VALUE` (value read as YAML, so `-e n=3` is an int), `-e '{json/yaml map}'` or
    `-e @FILE`, merged in command-line order (later wins), as ansible-playbook does.

    `@FILE` exists so that secrets (encryption keys) can come from a 0600 file instead of the
    command line, where `ps` and shell history would show them."""
    out: dict = {}
    for item in items:
        if item.startswith("@"):
            out.update(_vars_file(item[1:]))
        elif item.lstrip().startswith("{"):
            out.update(_inline_mapping(item))
        else:
            key, eq, value = item.partition("=")
            if not eq or not key.isidentifier():
                raise InputError(f"-e {item!r}: expected KEY=VALUE with KEY a variable name, "
                                 "a {mapping} or @FILE")
            try:
                out[key] = yaml.safe_load(value) if value else ""
            except yaml.YAMLError:
                out[key] = value
    return out


def _inline_mapping(item: str) -> dict:
    try:
        data = yaml.safe_load(item)
    except yaml.YAMLError as exc:
        raise InputError(f"-e {item!r}: not valid YAML/JSON: {_yaml_problem(exc)}") from None
    if not isinstance(data, dict):
        raise InputError(f"-e {item!r}: expected a mapping")
    return data


def _vars_file(path: str) -> dict:
    """Errors name the file and line but never quote its text: it may hold keys."""
    if not path:
        raise InputError("-e @: expected a file name after @")
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"cannot read extra-vars file (-e @{path}): {reason}", path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if path.endswith(".json"):
            raise InputError(f"invalid JSON in extra-vars file: {exc.msg}", path,
                             exc.lineno) from None
        data = _yaml_file(text, path)
    if not isinstance(data, dict):
        found = "nothing" if data is None else f"a {type(data).__name__}"
        raise InputError(f"extra-vars file must hold a mapping of variables, found {found}",
                         path)
    return data


def _yaml_file(text: str, path: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"invalid YAML in extra-vars file: {_yaml_problem(exc)}", path,
                         mark.line + 1 if mark is not None else None) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """The parser's reason without its snippet of the offending text (it may be a key)."""
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    return " ".join(p for p in (context, problem) if p) or type(exc).__name__
