"""The Ansible filters and tests hardening roles use, as ansible-core computes them."""

from __future__ import annotations

import pytest

from harden.apply.templating import evaluate, render_string


@pytest.mark.parametrize("expression, expected", [
    ("'a: 1\\nb: [x]' | from_yaml", {"a": 1, "b": ["x"]}),
    ("{'a': {'x': 1, 'y': 2}} | combine({'a': {'y': 3}}, recursive=True)",
     {"a": {"x": 1, "y": 3}}),
    ("{'a': {'x': 1}} | combine({'a': {'y': 3}})", {"a": {"y": 3}}),
    ("{'l': [1]} | combine({'l': [2]}, list_merge='append')", {"l": [1, 2]}),
    ("true | ternary('yes', 'no')", "yes"),
    ("'--profiling=true' | regex_replace('=true$', '=false')", "--profiling=false"),
    ("'key=val' | regex_search('=(\\\\w+)', '\\\\1')", ["val"]),
    ("'nothing' | regex_search('x')", None),
    ("[[1, [2]], 3, None] | flatten", [1, 2, 3]),
    ("{'a': 1} | dict2items", [{"key": "a", "value": 1}]),
    ("[{'key': 'a', 'value': 1}] | items2dict", {"a": 1}),
    ("[1, 2, 3] | difference([2])", [1, 3]),
    ("'- --token-auth-file=x' is search('--token-auth-file')", True),
    ("'kube-apiserver' is match('apiserver')", False),
    ("'2.19.4' is version('2.9', '>=')", True),
    ("'1.10' is version_compare('1.9', '<')", False),
])
def test_filters_and_tests_compute_as_ansible_does(expression, expected):
    assert evaluate(expression, {}) == expected


def test_a_select_result_loops_as_a_list():
    from harden.apply.loops import items

    found = items("loop", "{{ ['a.crt', 'b.key'] | select('search', 'crt$') }}", {}, (None, None))
    assert found == ["a.crt"]
    assert render_string("{{ [1, 2] | map('string') | list | join(',') }}", {}) == "1,2"


def test_a_folded_expression_renders_to_its_value_as_ansible_native_templating():
    folded = "{{\n  {'x': 1} | combine({'y': 2})\n}}\n"
    assert render_string(folded, {}) == {"x": 1, "y": 2}
    assert render_string("{{ 'v' }}\n", {}) == "v\n"
    assert render_string("[{{ 1 }}, 'a']", {}) == [1, "a"]
    assert render_string("{{ '{' }} not a literal }", {}) == "{ not a literal }"


def test_to_nice_yaml_writes_what_ansible_writes():
    text = render_string("{{ {'spec': {'b': 1, 'a': ['x']}} | to_nice_yaml }}", {})
    assert text == "spec:\n    a:\n    - x\n    b: 1\n"
