"""The comparison operators of catalogue test items, one table row per behaviour
(harden/cis/operators.py; kube-bench's compareOp semantics unless docs/cis-coverage.md says otherwise)."""

from __future__ import annotations

import pytest

from harden.cis.operators import OPS, bitmask_ok, compare


@pytest.mark.parametrize("op,actual,expected,result", [
    ("eq", "FALSE", "false", True), ("eq", "127.0.0.1", "127.0.0.1", True), ("eq", "Abc", "abc", False),
    ("noteq", "0s", "0", False), ("noteq", "0m0s", "0", False), ("noteq", "5m", "0", True),
    ("noteq", "false", "false", False), ("gte", "30", "30", True), ("gte", "7", "30", False),
    ("gte", "30d", "30", False), ("gte", "-1", "0", False), ("lt", "1", "2", True),
    ("has", "Node,RBAC", "Node", True), ("has", "AlwaysAllow", "Node", False),
    ("nothave", "RotateKubeletServerCertificate=false,X=true", "RotateKubeletServerCertificate=false", False),
    ("valid_elements", "A,B", "A,B,C", True), ("valid_elements", "A,D", "A,B,C", False),
    ("valid_elements", "A,B,", "A,B", True), ("valid_elements", "", "A,B", False),
    ("regex", "v1.2", r"^v1\.", True), ("regex", "v2.0", r"^v1\.", False),
    ("gt", "5", "5", False), ("gt", "6", "5", True), ("lte", "5", "5", True), ("lt", "x", "5", False),
    ("eq", "0s", "0", True), ("eq", "true", "TRUE", True),
])
def test_compare_matches_kube_bench(op, actual, expected, result):
    assert compare(op, actual, expected) is result


def test_bitmask_is_a_subset_test():
    assert bitmask_ok(0o600, 0o600) and bitmask_ok(0o400, 0o600) and bitmask_ok(0o000, 0o600)
    assert not bitmask_ok(0o640, 0o600) and not bitmask_ok(0o644, 0o600) and not bitmask_ok(0o700, 0o600)
    assert bitmask_ok(0o644, 0o644) and not bitmask_ok(0o664, 0o644)




def test_every_catalogue_operator_is_implemented_and_unknown_ones_raise():
    for op in OPS:
        compare(op, "1", "1")
    with pytest.raises(ValueError):
        compare("approximately", "1", "1")

