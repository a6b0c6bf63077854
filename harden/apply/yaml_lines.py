"""YAML with line numbers: every mapping remembers its line and the line of each key, so a
mistake in a playbook, a role or a vars file is reported with its file and line."""

from __future__ import annotations

from typing import Any

import yaml

from harden.errors import InputError


class LocatedDict(dict):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.key_lines = {}


class LocatedList(list):
    line: int = 0
    item_lines: list


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise InputError(f"duplicate key '{key}'", loader.name, key_node.start_mark.line + 1)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    out = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str) -> Any:
    """Parse a YAML file keeping line numbers (LocatedDict / LocatedList)."""
    try:
        with open(path, encoding="utf-8") as handle:
            loader = _Loader(handle)
            loader.name = path
            try:
                return loader.get_single_data()
            finally:
                loader.dispose()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", path,
                         mark.line + 1 if mark else None) from None
