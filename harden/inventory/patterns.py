"""Ansible host patterns (`--limit`, a play's `hosts:`) and the host-address syntax they share
with inventories.

The rules are ansible-core's, including its surprises, because users bring patterns that
already work there: a pattern with a comma is split on commas only (so `a:&b,c` is the two
patterns `a:&b` and `c`); `name[3]` is a subscript, not a glob character class; unions are
applied first, then intersections, then exclusions, whatever order they are written in.

Where ansible-core only warns, harden refuses: a part of a pattern that names no group and no
host is almost always a typo, and a silently ignored `!cp3` would run on cp3.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harden.errors import InputError

# ---------------------------------------------------------------------------------------------
# Host addresses: `name`, `name:port`, `10.0.0.[1:9]:22`, `[::1]:22`, with optional ranges.

_RANGE_NUMERIC = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_RANGE_ALPHANUMERIC = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_RANGE_HEX = re.compile(r"\[[0-9a-f]+:[0-9a-f]+(?::[0-9]+)?\]", re.I)
_IPV4_PART = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_RANGE_NUMERIC})"
_IPV4 = re.compile(rf"^(?:{_IPV4_PART}\.){{3}}{_IPV4_PART}$", re.I)
_LABEL = rf"(?:\w|{_RANGE_ALPHANUMERIC})(?:[\w-]|{_RANGE_ALPHANUMERIC})*(?<![_-])"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I)
_BRACKETED_HOST_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")


def _is_ipv6(address: str) -> bool:
    try:
        ipaddress.IPv6Address(_RANGE_HEX.sub("0", address))
    except ValueError:
        return False
    return True


def parse_address(text: str) -> tuple[str, int | None] | None:
    """Split `host[:port]` the way ansible-core does, ranges allowed; None if `text` is not a
    host address at all (then inventories take it verbatim as a name and patterns split it)."""
    address, port = text, None
    for form in (_BRACKETED_HOST_PORT, _HOST_PORT):
        found = form.match(address)
        if found:
            address, port = found.group(1), int(found.group(2))
    if _IPV4.match(address) or _HOSTNAME.match(address) or _is_ipv6(address):
        return address, port
    return None


# ---------------------------------------------------------------------------------------------
# Patterns

_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_COLON_PARTS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_GLOB_CHARS = (".", "?", "*", "[")


@dataclass(frozen=True)
class PatternSpace:
    """What a pattern is matched against, in the orders ansible-core iterates them."""

    hosts: Sequence[str]                     # every host, in the order it was first defined
    groups: Mapping[str, Sequence[str]]      # every group -> its hosts, descendants included


def split_pattern(pattern: str) -> list[str]:
    """Break a pattern into parts; ':' separates only when the whole is not one address."""
    if "," in pattern:
        parts = pattern.split(",")
    elif parse_address(pattern) is not None:
        parts = [pattern]
    else:
        parts = _COLON_PARTS.findall(pattern)
    return [part.strip() for part in parts if part.strip()]


def order_parts(parts: Sequence[str]) -> list[str]:
    """Unions, then intersections (&), then exclusions (!); only modifiers means from 'all'."""
    unions = [p for p in parts if p[0] not in "&!"]
    intersections = [p for p in parts if p[0] == "&"]
    exclusions = [p for p in parts if p[0] == "!"]
    return (unions or ["all"]) + intersections + exclusions


def match_hosts(pattern: str, space: PatternSpace) -> list[str]:
    """Host names selected by `pattern`, in ansible's order; InputError when none are."""
    parts = split_pattern(pattern)
    if not parts:
        raise InputError(f"empty host pattern '{pattern}'")
    known_hosts = set(space.hosts)
    selected: list[str] = []
    for part in order_parts(parts):
        if part in known_hosts:
            selected.append(part)
            continue
        matched = _match_part(part[1:] if part[0] in "&!" else part, space)
        if part[0] == "!":
            excluded = set(matched)
            selected = [h for h in selected if h not in excluded]
        elif part[0] == "&":
            kept = set(matched)
            selected = [h for h in selected if h in kept]
        else:
            already = set(selected)
            selected.extend(h for h in matched if h not in already)
    selected = list(dict.fromkeys(selected))
    if not selected:
        raise InputError(f"no hosts match pattern '{pattern}'")
    return selected


def _match_part(part: str, space: PatternSpace) -> list[str]:
    expression, subscript = _split_subscript(part)
    hosts = _enumerate(expression, space)
    if not subscript:
        return hosts
    start, end = subscript
    try:
        if end is None:
            return [hosts[start]]
        return hosts[start:(len(hosts) - 1 if end == -1 else end) + 1]
    except IndexError:
        raise InputError(f"no hosts match the subscripted pattern '{part}' "
                         f"(it selects from {len(hosts)} hosts)") from None


def _split_subscript(part: str) -> tuple[str, tuple[int, int | None] | None]:
    """`web[0]`, `web[-1]`, `web[1:3]`, `web[2:]`; a regex (~) never has a subscript."""
    found = None if part.startswith("~") else _SUBSCRIPT.match(part)
    if not found:
        return part, None
    expression, index, start, _separator, end = found.groups()
    if index:
        return expression, (int(index), None)
    # ansible-core treats an end of 0 like a single index (its `if end:` test); keep that.
    end_value = int(end) if end else -1
    return expression, (int(start), end_value or None)


def _enumerate(expression: str, space: PatternSpace) -> list[str]:
    """Hosts of every group the expression names, plus hosts it names directly when it is a
    glob or regex (or named no group)."""
    try:
        regex = re.compile(expression[1:] if expression.startswith("~")
                           else fnmatch.translate(expression))
    except re.error as exc:
        raise InputError(f"invalid host pattern '{expression}': {exc}") from None
    groups = [name for name in space.groups if regex.match(name)]
    hosts = [host for name in groups for host in space.groups[name]]
    if not groups or expression.startswith("~") or any(c in expression for c in _GLOB_CHARS):
        hosts.extend(host for host in space.hosts if regex.match(host))
    if not hosts and not groups:
        raise InputError(f"no hosts match pattern '{expression}' "
                         "(it names no group or host in the inventory); groups: "
                         + ", ".join(sorted(space.groups)))
    return hosts
