"""A result's JSON form: every field in declaration order with asdict's values, and a copy
of the evidence list (a report's dict must not alias the result it came from)."""

from __future__ import annotations

from dataclasses import asdict

from harden.cis.results import CheckResult


def test_a_result_as_json_is_what_asdict_gives_in_the_same_order():
    result = CheckResult(host="cp1", id="1.2.15", title="t", status="FAIL", scored=True,
                         expected="e", actual="a", remediation="r", section="1.2 API Server",
                         node_type="control-plane", drift="d", facts=["f1", "f2"],
                         computed="FAIL")
    data = result.to_json()
    assert data == asdict(result)
    assert list(data) == list(asdict(result))
    data["facts"].append("changed")
    assert result.facts == ["f1", "f2"]
