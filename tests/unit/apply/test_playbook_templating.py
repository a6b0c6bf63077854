"""Jinja2 for playbooks: sandboxed, strict, native types, -e precedence."""

from __future__ import annotations

import base64

import pytest

from harden.errors import InputError
from harden.apply.templating import (evaluate, layered_vars, parse_extra_vars, render_string,
                               render_template_file, render_value)
from support.modules import REPO


def test_single_expression_keeps_native_type():
    variables = {"n": 3, "items": ["a", "b"], "flag": False}
    assert render_string("{{ n }}", variables) == 3
    assert render_string("{{ items }}", variables) == ["a", "b"]
    assert render_string("{{ flag }}", variables) is False
    assert render_string("n={{ n }}", variables) == "n=3"
    assert render_value({"k": ["{{ n }}", "x"]}, variables) == {"k": [3, "x"]}


def test_a_trailing_newline_is_content_not_blank_around_an_expression():
    assert render_string("{{ key }}\n", {"key": "abc"}) == "abc\n"
    assert render_string("{{ n }}\n", {"n": 3}) == "3\n"
    assert render_string("  {{ n }}\t", {"n": 3}) == 3


def test_undefined_variable_is_an_error_with_location():
    with pytest.raises(InputError, match="play.yml:7: template error .*'nope' is undefined"):
        render_string("{{ nope }}", {}, ("play.yml", 7))
    assert render_string("{{ nope | default('d') }}", {}) == "d"


def test_sandbox_blocks_unsafe_attribute_access():
    with pytest.raises(InputError, match="unsafe|not safely"):
        render_string("{{ ''.__class__.__mro__ }}", {})


def test_extra_vars_win_and_parse_as_yaml():
    extra = parse_extra_vars(["n=3", "name=cp1", '{"flag": true}', "empty="])
    assert extra == {"n": 3, "name": "cp1", "flag": True, "empty": ""}
    merged = layered_vars({"n": 1, "a": 1}, {"n": 2}, extra_vars=extra)
    assert merged["n"] == 3 and merged["a"] == 1
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_extra_vars(["not a pair"])


def test_evaluate_when_expressions():
    assert evaluate("a == 1 and b", {"a": 1, "b": True}) is True
    assert evaluate(True, {}) is True
    assert evaluate("{{ a > 2 }}", {"a": 1}) is False


def test_shipped_templates_render():
    dirs = [str(REPO / "templates")]
    key = base64.b64encode(bytes(range(32))).decode()
    enc = render_template_file("encryption-config.yaml.j2", dirs, {"encryption_key": key})
    assert f"secret: {key}\n" in enc and "      - secretbox:\n" in enc
    assert enc.rstrip().endswith("- identity: {}")
    rotated = render_template_file("encryption-config.yaml.j2", dirs, {
        "encryption_keys": [{"name": "key2", "secret": "bmV3"}, {"name": "key1",
                                                                 "secret": "b2xk"}]})
    assert rotated.index("name: key2") < rotated.index("name: key1")
    admission = render_template_file("admission-config.yaml.j2", dirs, {})
    assert 'enforce: "baseline"' in admission and "type: Namespace" in admission
    policy = render_template_file("audit-policy.yaml.j2", dirs, {})
    assert "kind: Policy" in policy
    import yaml
    for text in (enc, rotated, admission, policy):
        assert isinstance(yaml.safe_load(text), dict)
    assert yaml.safe_load(admission)["plugins"][1]["configuration"]["limits"][1] == {
        "type": "Namespace", "qps": 50, "burst": 100, "cacheSize": 2000}


def test_missing_template_is_an_input_error():
    with pytest.raises(InputError, match="nope.j2"):
        render_template_file("nope.j2", [str(REPO / "templates")], {})
