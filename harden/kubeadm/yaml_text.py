"""Line-level editing of YAML written by kubeadm (static-pod manifests, kubelet config,
ClusterConfiguration).

Why not load → modify → dump: a dump rewrites quoting, ordering and spacing, so a one-flag
change would show (and be reviewed, and be journaled) as a rewrite of the whole file, and it
would fight kubeadm's own style on the next upgrade. Here PyYAML only *locates* things (node
start/end marks); edits replace, insert or delete whole lines of the original text, so every
line not involved stays byte-identical. New entries are rendered the way kubeadm renders them
(keys sorted, list dashes at the parent key's column) and placed in sorted position when the
existing entries are sorted. Every edit re-parses the text, so edits compose safely.

It lives below `apply` and `cis` because both read kubeadm's documents (harden.kubeadm).
"""

from __future__ import annotations

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harden.errors import InputError
from harden.node.limits import NodeDataError, check_yaml


class YamlText:
    """A YAML document as lines, with structure-aware edits that touch the fewest lines."""

    def __init__(self, text: str, path: str = ""):
        self.path = path
        self.lines = text.splitlines(keepends=True)
        # a file written with CRLF (an editor on Windows) gets CRLF on the lines we add too,
        # so one edit never leaves it with mixed line endings
        self.newline = "\r\n" if self.lines and self.lines[0].endswith("\r\n") else "\n"
        self._root = self._parse()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def _parse(self) -> Node:
        try:
            check_yaml(self.text, "")        # the composer recurses: bound the depth first
        except NodeDataError as exc:
            raise InputError(str(exc), self.path) from None
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(f"not valid YAML: {getattr(exc, 'problem', exc)}", self.path,
                             mark.line + 1 if mark else None) from None
        if not isinstance(root, MappingNode):
            raise InputError("expected a YAML mapping at the top", self.path, 1)
        return root

    def _error(self, message: str, node: Node | None = None) -> InputError:
        return InputError(message, self.path, node.start_mark.line + 1 if node else None)

    # --- reading ---------------------------------------------------------------------------
    def value(self, keys: list) -> object:
        """Python value at a key path (None when absent)."""
        node = self.node(keys)
        return None if node is None else _construct(node)

    def node(self, keys: list, start: Node | None = None) -> Node | None:
        node = start or self._root
        for key in keys:
            if isinstance(key, int):
                if not isinstance(node, SequenceNode) or key >= len(node.value):
                    return None
                node = node.value[key]
            else:
                entry = _entry(node, key)
                if entry is None:
                    return None
                node = entry[1]
        return node

    # --- editing primitives ----------------------------------------------------------------
    def _splice(self, start: int, end: int, new_lines: list[str]) -> None:
        """Replace lines start..end-1 by new_lines, then re-parse."""
        if start == len(self.lines) and self.lines and not self.lines[-1].endswith("\n"):
            self.lines[-1] += self.newline
        if self.newline != "\n":
            new_lines = [line[:-1] + self.newline if line.endswith("\n")
                         and not line.endswith(self.newline) else line for line in new_lines]
        self.lines[start:end] = new_lines
        self._root = self._parse()

    def _entry_prefix(self, key_node: Node) -> tuple[str, str]:
        """Text before a key on its line ('  - ' for a list item's first key) and the indent
        of continuation lines."""
        line = self.lines[key_node.start_mark.line]
        col = key_node.start_mark.column
        return line[:col], " " * col

    def set(self, keys: list[str], value) -> bool:
        """Set a mapping value at a dotted key path, creating missing mappings. True if changed."""
        parent = self._root
        for depth, key in enumerate(keys):
            entry = _entry(parent, key)
            last = depth == len(keys) - 1
            if entry is None:
                self._insert_entry(parent, key, _nest(keys[depth + 1:], value))
                return True
            key_node, value_node = entry
            if last or not (isinstance(value_node, MappingNode) and not value_node.flow_style):
                if not last:
                    current = _construct(value_node)
                    merged = _merge(current if isinstance(current, dict) else {},
                                    keys[depth + 1:], value)
                    if merged == current:
                        return False
                    self._replace_entry(key_node, value_node, key, merged)
                    return True
                if _construct(value_node) == value and type(_construct(value_node)) is type(value):
                    return False
                self._replace_entry(key_node, value_node, key, value)
                return True
            parent = value_node
        return False

    def delete(self, keys: list[str]) -> bool:
        """Remove the entry at a key path. True if something was removed."""
        parent = self.node(keys[:-1])
        entry = _entry(parent, keys[-1]) if parent is not None else None
        if entry is None:
            return False
        key_node, value_node = entry
        if len(parent.value) == 1:
            raise self._error(f"refusing to leave '{'.'.join(keys[:-1])}' empty", key_node)
        self._splice(key_node.start_mark.line, _last_line(value_node) + 1, [])
        return True

    def _replace_entry(self, key_node: Node, value_node: Node, key: str, value) -> None:
        first, rest = self._entry_prefix(key_node)
        self._splice(key_node.start_mark.line, _last_line(value_node) + 1,
                     _render({key: value}, first, rest))

    def _insert_entry(self, mapping: MappingNode, key: str, value) -> None:
        """Insert key: value into a block mapping, in sorted position when keys are sorted."""
        if mapping.flow_style or not mapping.value:
            raise self._error(f"cannot add '{key}' to an empty or inline mapping", mapping)
        keys = [k.value for k, _ in mapping.value]
        col = mapping.value[0][0].start_mark.column
        rendered = _render({key: value}, " " * col, " " * col)
        at = None
        if keys == sorted(keys):
            later = [k for k, _ in mapping.value if k.value > key]
            first_prefix = self._entry_prefix(mapping.value[0][0])[0]
            if later and (later[0] is not mapping.value[0][0] or not first_prefix.strip()):
                at = later[0].start_mark.line
        if at is None:
            at = _last_line(mapping.value[-1][1]) + 1
        self._splice(at, at, rendered)

    def insert_item(self, seq: SequenceNode, value, sort_key=None) -> None:
        """Add an item to a block sequence: before the first item whose sort_key is greater
        (when the existing items are sorted by it), else at the end."""
        if seq.flow_style or not seq.value:
            raise self._error("cannot add to an empty or inline list", seq)
        first, rest = self._entry_prefix(seq.value[0])
        lines = _render(value, first, rest)
        at = _last_line(seq.value[-1]) + 1
        if sort_key is not None:
            existing = [sort_key(_construct(item)) for item in seq.value]
            if None not in existing and existing == sorted(existing):
                mine = sort_key(value)
                for item, k in zip(seq.value, existing):
                    if k > mine:
                        at = item.start_mark.line
                        break
        self._splice(at, at, lines)

    def replace_item(self, item: Node, value) -> None:
        first, rest = self._entry_prefix(item)
        self._splice(item.start_mark.line, _last_line(item) + 1,
                     _render(value, first, rest))

    def delete_items(self, items: list[Node]) -> None:
        """Delete sequence items (bottom-up so earlier line numbers stay valid)."""
        spans = sorted(((i.start_mark.line, _last_line(i) + 1) for i in items), reverse=True)
        for start, end in spans:
            self.lines[start:end] = []
        self._root = self._parse()


def _entry(node: Node | None, key: str):
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            return key_node, value_node
    return None


def _construct(node: Node):
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _nest(keys: list[str], value):
    for key in reversed(keys):
        value = {key: value}
    return value


def _merge(current: dict, keys: list[str], value) -> dict:
    out = dict(current)
    if len(keys) == 1:
        out[keys[0]] = value
        return out
    inner = out.get(keys[0])
    out[keys[0]] = _merge(inner if isinstance(inner, dict) else {}, keys[1:], value)
    return out


def _last_line(node: Node) -> int:
    """0-based last line holding text of this node (block collections end at the next token,
    so look at their last child instead)."""
    if isinstance(node, ScalarNode) or node.flow_style:
        end = node.end_mark
        return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line
    if not node.value:
        return node.start_mark.line
    last = node.value[-1]
    return _last_line(last[1] if isinstance(node, MappingNode) else last)


def _dump(value) -> list[str]:
    text = yaml.safe_dump(value, default_flow_style=False, sort_keys=True, width=10**9,
                          allow_unicode=True)
    if text.endswith("\n...\n"):
        text = text[:-4]
    return text.splitlines(keepends=True)


def _render(value, first: str, rest: str) -> list[str]:
    """`value` dumped kubeadm-style; `first` prefixes its first line (indent, or the '- ' of
    a list item), `rest` indents the others."""
    lines = _dump(value)
    return [first + lines[0]] + [rest + line for line in lines[1:]]
