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
    import yaml
    dirs = [str(REPO / "templates")]
    key = base64.b64encode(bytes(range(32))).decode()
    enc = yaml.safe_load(render_template_file("encryption-config.yaml.j2", dirs,
                                              {"encryption_key": key}))
    assert enc["resources"][0]["providers"] == [
        {"secretbox": {"keys": [{"name": "key1", "secret": key}]}}, {"identity": {}}]
    rotated = yaml.safe_load(render_template_file("encryption-config.yaml.j2", dirs, {
        "encryption_keys": [{"name": "key2", "secret": "bmV3"}, {"name": "key1",
                                                                 "secret": "b2xk"}]}))
    keys = rotated["resources"][0]["providers"][0]["secretbox"]["keys"]
    assert [k["name"] for k in keys] == ["key2", "key1"]
    admission = yaml.safe_load(render_template_file("admission-config.yaml.j2", dirs, {}))
    assert admission["plugins"][0]["configuration"]["defaults"]["audit"] == "restricted"
    policy = yaml.safe_load(render_template_file("audit-policy.yaml.j2", dirs, {}))
    assert policy["kind"] == "Policy"
    assert admission["plugins"][1]["configuration"]["limits"][1] == {
        "type": "Namespace", "qps": 50, "burst": 100, "cacheSize": 2000}


HOSTILE = ["*.apps", "*.*", "&anchor", "!tag", "secrets", "- x", "a: b", "#c", "'q\"", "@x",
           "%p", "|", ">", "{x}", "[y]", "null", "yes", "0x10"]


def test_templates_keep_hostile_values_as_literal_strings():
    """An unquoted `*.apps` is a YAML alias: the real API server fails to parse the file and
    crash-loops. Every value a user can pass must come back as exactly that string."""
    import yaml
    dirs = [str(REPO / "templates")]
    enc = yaml.safe_load(render_template_file("encryption-config.yaml.j2", dirs, {
        "encryption_resources": HOSTILE,
        "encryption_keys": [{"name": v, "secret": v} for v in HOSTILE]}))
    assert enc["resources"][0]["resources"] == HOSTILE
    keys = enc["resources"][0]["providers"][0]["secretbox"]["keys"]
    assert [k["name"] for k in keys] == HOSTILE and [k["secret"] for k in keys] == HOSTILE
    admission = yaml.safe_load(render_template_file("admission-config.yaml.j2", dirs, {
        "pod_security_enforce": "*x", "pod_security_audit": "&y", "pod_security_warn": "!z",
        "pod_security_exempt_namespaces": HOSTILE,
        "event_rate_limits": [{"type": "*.*", "qps": 1, "burst": 2}]}))
    psa = admission["plugins"][0]["configuration"]
    assert psa["defaults"]["enforce"] == "*x" and psa["defaults"]["audit"] == "&y"
    assert psa["defaults"]["warn"] == "!z" and psa["exemptions"]["namespaces"] == HOSTILE
    assert admission["plugins"][1]["configuration"]["limits"][0]["type"] == "*.*"
    policy = yaml.safe_load(render_template_file("audit-policy.yaml.j2", dirs, {
        "audit_extra_rules": [{"level": "None", "users": HOSTILE}]}))
    assert {"level": "None", "users": HOSTILE} in policy["rules"]


def test_missing_template_is_an_input_error():
    with pytest.raises(InputError, match="nope.j2"):
        render_template_file("nope.j2", [str(REPO / "templates")], {})
