"""Bounds on what a node may send back, so a hostile or broken node cannot exhaust the controller.

A node is not trusted to keep its files sane: a 256 MiB "config", a FIFO where a config should
be, YAML nested thousands deep (PyYAML's composer recurses: RecursionError) or a billion-laughs
alias bomb. Each limit is checked where the data is produced or first parsed, and breaking one
is an error naming the file and the limit, never a crash or an unbounded read:

* MAX_FILE_BYTES: a file whose content harden reads (apply's facts, the check probe) is sized
  on the node first; above the limit its content never leaves the node.
* MAX_OUTPUT_BYTES: everything one command prints (stdout + stderr) is read up to this much;
  beyond it the channel is closed (transport._Stream).
* MAX_YAML_DEPTH / MAX_YAML_ALIASES: YAML read from a node is scanned as an event stream (no
  recursion, no object construction) before any loader builds objects from it.
"""

from __future__ import annotations

import yaml

MAX_FILE_BYTES = 4 * 1024 * 1024          # static-pod manifests and configs are a few KiB
MAX_OUTPUT_BYTES = 64 * 1024 * 1024       # room for `kubectl get -o json` of a large cluster
MAX_YAML_DEPTH = 64                       # kubeadm manifests nest about 10 levels
MAX_YAML_ALIASES = 100                    # Kubernetes configs use none
_EVENTS = getattr(yaml, "CSafeLoader", yaml.SafeLoader)    # libyaml when present: 5x faster


class NodeDataError(ValueError):
    """Data from a node breaks one of the limits above (or is not a regular file)."""


def too_large(path: str, size: int) -> NodeDataError:
    return NodeDataError(f"{path} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit on a "
                         "file harden reads from a node (MAX_FILE_BYTES)")


def not_regular(path: str, kind: str) -> NodeDataError:
    return NodeDataError(f"{path} is a {kind}, not a regular file; harden reads only "
                         "regular files")


def check_yaml(content: str | bytes, path: str) -> None:
    """Raise NodeDataError when `content` nests deeper than MAX_YAML_DEPTH or uses more than
    MAX_YAML_ALIASES aliases. Syntax errors are left to the loader that follows (it reports
    them with its own line numbers), so text that is not YAML at all passes."""
    try:
        _scan(content, path, _EVENTS)
    except yaml.YAMLError:
        if _EVENTS is not yaml.SafeLoader:
            # libyaml refuses very deep input by itself, before any event: ask the pure
            # Python parser (an iterative state machine) where the depth limit is broken
            try:
                _scan(content, path, yaml.SafeLoader)
            except yaml.YAMLError:
                return


def _scan(content: str | bytes, path: str, loader) -> None:
    depth = aliases = 0
    for event in yaml.parse(content, Loader=loader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise NodeDataError(f"{_where(path)}YAML nested deeper than {MAX_YAML_DEPTH} "
                                    f"levels at line {event.start_mark.line + 1} "
                                    "(MAX_YAML_DEPTH)")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise NodeDataError(f"{_where(path)}more than {MAX_YAML_ALIASES} YAML aliases "
                                    "(MAX_YAML_ALIASES)")


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def safe_load(content: str | bytes, path: str):
    """yaml.safe_load after check_yaml: the loader for YAML that came from a node."""
    check_yaml(content, path)
    return yaml.safe_load(content)
