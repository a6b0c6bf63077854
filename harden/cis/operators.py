"""The comparison operators of catalogue test items (kube-bench's compareOp idea), in one place.

Every operator takes the found value as text and the catalogue's expected value as text; the
table tests in tests/unit/test_operators.py pin each one down.
"""

from __future__ import annotations

import re

OPS = ("eq", "noteq", "gt", "gte", "lt", "lte", "has", "nothave", "valid_elements", "regex")
ZERO_DURATION = re.compile(r"^(0+(\.0+)?(ns|us|µs|ms|s|m|h)?)+$")


def compare(op: str, actual: str, expected: str) -> bool:
    """kube-bench's compare operators (true/false compare case-insensitively)."""
    if op in ("eq", "noteq"):
        if expected == "0" and ZERO_DURATION.match(actual):
            actual = "0"      # "0s", "0m0s": a zero Go duration is zero (kube-bench compares text)
        if expected.lower() in ("true", "false"):
            same = actual.lower() == expected.lower()
        else:
            same = actual == expected
        return same if op == "eq" else not same
    if op in ("gt", "gte", "lt", "lte"):
        try:
            a, e = int(actual), int(expected)
        except ValueError:
            return False
        return {"gt": a > e, "gte": a >= e, "lt": a < e, "lte": a <= e}[op]
    if op == "has":
        return expected in actual
    if op == "nothave":
        return expected not in actual
    if op == "valid_elements":
        allowed = {e.strip() for e in expected.split(",") if e.strip()}
        elements = [e.strip() for e in actual.split(",") if e.strip()]
        return bool(elements) and all(e in allowed for e in elements)
    if op == "regex":
        return re.search(expected, actual) is not None
    raise ValueError(f"unknown op {op}")


def bitmask_ok(mode: int, max_mode: int) -> bool:
    """kube-bench's bitmask: the file's permission bits must be a subset of the maximum."""
    return (max_mode & mode) == mode
