"""`-e @FILE`: variables from a YAML/JSON file, merged with the other -e items in order."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from harden.cli import cli
from harden.errors import InputError
from harden.apply.templating import parse_extra_vars

KEY = "c2VjcmV0LWtleS1ieXRlcy10aGF0LW11c3Qtbm90LWxlYWs="


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_yaml_file_values_keep_their_types(tmp_path):
    path = write(tmp_path, "vars.yml", f"encryption_key: {KEY}\nn: 3\nplugins: [A, B]\n")
    assert parse_extra_vars([f"@{path}"]) == {"encryption_key": KEY, "n": 3,
                                              "plugins": ["A", "B"]}


def test_json_file_with_tab_indentation(tmp_path):
    # JSON allows tabs where YAML does not: a .json file must still load
    path = write(tmp_path, "vars.json", '{\n\t"encryption_key": "k",\n\t"n": 3\n}\n')
    assert parse_extra_vars([f"@{path}"]) == {"encryption_key": "k", "n": 3}


def test_items_merge_in_command_line_order(tmp_path):
    path = write(tmp_path, "vars.yml", "a: from_file\nb: from_file\n")
    merged = parse_extra_vars(["a=first", f"@{path}", "b=last", '{"c": 1}'])
    assert merged == {"a": "from_file", "b": "last", "c": 1}
    assert parse_extra_vars([f"@{path}", "a=later"])["a"] == "later"


def test_no_items_is_no_variables():
    assert parse_extra_vars([]) == {}


def test_missing_file_names_the_file(tmp_path):
    missing = str(tmp_path / "nope.yml")
    with pytest.raises(InputError) as info:
        parse_extra_vars([f"@{missing}"])
    assert info.value.path == missing and "cannot read" in str(info.value)
    assert missing in str(info.value)


def test_unreadable_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="cannot read") as info:
        parse_extra_vars([f"@{tmp_path}"])          # a directory cannot be read as a file
    assert info.value.path == str(tmp_path)


def test_yaml_error_gives_file_and_line_without_quoting_the_text(tmp_path):
    path = write(tmp_path, "vars.yml", f"a: 1\nencryption_key: {KEY}\n  bad: [\n")
    with pytest.raises(InputError) as info:
        parse_extra_vars([f"@{path}"])
    assert info.value.path == path and info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: invalid YAML")
    assert KEY not in str(info.value)


def test_json_error_gives_file_and_line(tmp_path):
    path = write(tmp_path, "vars.json", '{\n"a": 1,\n"b": \n}\n')
    with pytest.raises(InputError, match="invalid JSON") as info:
        parse_extra_vars([f"@{path}"])
    assert (info.value.path, info.value.line) == (path, 4)


@pytest.mark.parametrize("text, found", [("- a\n- b\n", "a list"), ("just text\n", "a str"),
                                         ("", "nothing")])
def test_non_mapping_is_an_error(tmp_path, text, found):
    path = write(tmp_path, "vars.yml", text)
    with pytest.raises(InputError, match=f"mapping of variables, found {found}") as info:
        parse_extra_vars([f"@{path}"])
    assert info.value.path == path


def test_at_without_a_file_name_is_an_error():
    with pytest.raises(InputError, match="file name after @"):
        parse_extra_vars(["@"])


def test_apply_reports_a_bad_vars_file_and_exits_1(tmp_path):
    inventory = write(tmp_path, "hosts.ini", "cp1 ansible_host=127.71.0.1\n")
    playbook = write(tmp_path, "play.yml", "- hosts: all\n  tasks: []\n")
    missing = str(tmp_path / "keys.yml")
    result = CliRunner().invoke(cli, ["apply", "-i", inventory, playbook, "-e", f"@{missing}"])
    assert result.exit_code == 1
    assert missing in result.output


def test_apply_help_documents_at_file():
    result = CliRunner().invoke(cli, ["apply", "--help"])
    assert result.exit_code == 0 and "@FILE" in result.output
