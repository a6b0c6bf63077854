"""Command-line parsing with the rules and error texts of spf13/pflag, as Kubernetes binaries use.

Faithfulness matters here: a flag harden writes must be rejected by the lab exactly when the real
binary would reject it (unknown or removed flag, malformed bool, stray positional argument).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BOOL_WORDS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
              "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
DURATION_RE = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class FlagError(Exception):
    """The message the real binary prints after `Error: ` before exiting 1."""


@dataclass
class Parsed:
    """Flags as given: scalars keep the last value, lists accumulate (pflag StringSlice)."""

    values: dict = field(default_factory=dict)
    positional: list = field(default_factory=list)

    def get(self, name: str, default=None):
        return self.values.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.values


def parse_bool(text: str, flag: str) -> bool:
    if text not in BOOL_WORDS:
        raise FlagError(f'invalid argument "{text}" for "--{flag}" flag: strconv.ParseBool: '
                        f'parsing "{text}": invalid syntax')
    return BOOL_WORDS[text]


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string ("300s", "1h30m"); ValueError when malformed."""
    if text in ("0", "+0", "-0"):
        return 0.0
    if not DURATION_RE.match(text):
        raise ValueError(f'time: invalid duration "{text}"')
    sign = -1.0 if text.startswith("-") else 1.0
    total = sum(float(num) * DURATION_UNITS[unit]
                for num, _frac, _x, unit in re.findall(r"((\d+(\.\d*)?|\.\d+))(ns|us|µs|ms|s|m|h)",
                                                       text.lstrip("+-")))
    return sign * total


def _convert(kind: str, text: str, flag: str):
    """Value of one occurrence; raises FlagError with pflag's wording."""
    def bad(detail: str) -> FlagError:
        return FlagError(f'invalid argument "{text}" for "--{flag}" flag: {detail}')

    if kind == "bool":
        return parse_bool(text, flag)
    if kind == "int":
        if not re.fullmatch(r"[-+]?\d+", text.strip()):
            raise bad(f'strconv.ParseInt: parsing "{text}": invalid syntax')
        return int(text)
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise bad(f'strconv.ParseFloat: parsing "{text}": invalid syntax') from None
    if kind == "duration":
        try:
            parse_duration(text)
        except ValueError as err:
            raise bad(str(err)) from None
        return text
    if kind == "list":
        return [part.strip() for part in text.split(",")] if text else []
    if kind == "map":
        return _parse_map(text, flag)
    if kind == "ip":
        if not _is_ip(text):
            raise bad(f'failed to parse IP: "{text}"')
        return text
    return text


def _parse_map(text: str, flag: str) -> dict:
    result = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if "=" not in item:
            raise FlagError(f'invalid argument "{text}" for "--{flag}" flag: missing "=" in "{item}"')
        key, value = item.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class FlagSet:
    """Known flags of one binary: name -> kind (bool, int, float, duration, list, map, ip, string,
    optional = a string that may be given bare)."""

    def __init__(self, command: str, kinds: dict[str, str], shorthands: dict[str, str] | None = None,
                 positional_allowed: bool = False):
        self.command = command
        self.kinds = kinds
        self.shorthands = shorthands or {}
        self.positional_allowed = positional_allowed

    def parse(self, args: list[str]) -> Parsed:
        parsed = Parsed()
        index = 0
        while index < len(args):
            arg = args[index]
            index += 1
            if arg == "--":
                parsed.positional.extend(args[index:])
                break
            if not arg.startswith("-") or arg == "-":
                parsed.positional.append(arg)
                continue
            name, value = self._split(arg)
            kind = self.kinds[name]
            if value is None:
                if kind in ("bool", "optional"):  # optional: pflag NoOptDefVal, e.g. --version
                    value = "true"
                elif index < len(args):
                    value = args[index]
                    index += 1
                else:
                    raise FlagError(f"flag needs an argument: --{name}")
            self._store(parsed, name, kind, value)
        if parsed.positional and not self.positional_allowed and any(parsed.positional):
            quoted = " ".join(f'"{p}"' for p in parsed.positional)
            raise FlagError(f'"{self.command}" does not take any arguments, got [{quoted}]')
        return parsed

    def _split(self, arg: str) -> tuple[str, str | None]:
        """(normalised name, inline value or None); unknown flags raise pflag's error."""
        if arg.startswith("--"):
            body = arg[2:]
            name, eq, value = body.partition("=")
            name = name.replace("_", "-")  # cliflag.WordSepNormalizeFunc
            if name not in self.kinds:
                raise FlagError(f"unknown flag: --{name}")
            return name, value if eq else None
        body = arg[1:]
        short, eq, value = body.partition("=")
        if short[:1] not in self.shorthands:
            raise FlagError(f"unknown shorthand flag: '{short[:1]}' in -{body}")
        name = self.shorthands[short[:1]]
        if eq:
            return name, value
        return name, short[1:] or None

    @staticmethod
    def _store(parsed: Parsed, name: str, kind: str, text: str) -> None:
        value = _convert(kind, text, name)
        if kind == "list":
            parsed.values.setdefault(name, []).extend(value)
        elif kind == "map":
            parsed.values.setdefault(name, {}).update(value)
        else:
            parsed.values[name] = value


def kinds_from_table(table: str) -> dict[str, str]:
    """Flag tables are written as whitespace-separated `name:kind` words (kind defaults to string)."""
    abbreviations = {"b": "bool", "i": "int", "f": "float", "d": "duration", "l": "list",
                     "m": "map", "ip": "ip", "s": "string", "o": "optional"}
    kinds = {}
    for word in table.split():
        name, _, kind = word.partition(":")
        kinds[name] = abbreviations[kind or "s"]
    return kinds
