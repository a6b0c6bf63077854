"""Variables that refer to variables: rendered recursively from what the user wrote (inventory,
play vars, -e), never from data (registered results, built-in variables), with cycles and
undefined references failing where the variable is used, naming it."""

from __future__ import annotations

import threading

import pytest

from harden.errors import InputError
from harden.apply.modules import get_module
from harden.apply.modules.base import PlanContext
from harden.apply.runner import HostPlay
from harden.apply.templating import (Untemplated, evaluate, layered_vars, render_string,
                               render_template_file, render_value)
from harden.ssh.session import CommandResult

from support.local_node import ShellSession, run_play

ENCRYPTION = {"encryption_dir": "/etc/kubernetes/enc",
              "encryption_config": "{{ encryption_dir }}/encryption-config.yaml"}


def test_a_variable_referring_to_a_variable_renders_in_task_arguments():
    variables = layered_vars(ENCRYPTION)
    args = {"dest": "{{ encryption_config }}", "other": "x={{ encryption_config }}"}
    assert render_value(args, variables) == {
        "dest": "/etc/kubernetes/enc/encryption-config.yaml",
        "other": "x=/etc/kubernetes/enc/encryption-config.yaml"}


def test_references_chain_at_any_depth_inside_lists_and_dicts_keys_included():
    variables = layered_vars({
        "top": "{{ middle }}/c", "middle": "{{ bottom }}/b", "bottom": "/a",
        "paths": ["{{ top }}", {"{{ bottom }}-key": ["{{ middle }}"]}],
        "uses_paths": "{{ paths[1]['/a-key'][0] }}"})
    assert variables["top"] == "/a/b/c"
    assert variables["paths"] == ["/a/b/c", {"/a-key": ["/a/b"]}]
    assert variables["uses_paths"] == "/a/b"


def test_native_types_survive_through_references():
    variables = layered_vars({"n": "{{ m }}", "m": [1, 2], "i": "{{ j }}", "j": "{{ 3 }}",
                              "flag": "{{ off }}", "off": False})
    assert render_string("{{ n }}", variables) == [1, 2]
    assert render_string("{{ i }}", variables) == 3
    assert render_string("{{ flag }}", variables) is False
    assert render_string("{{ i + 1 }}", variables) == 4


def test_later_layers_and_extra_vars_feed_references_across_layers():
    inventory = {"cluster_dir": "/srv/{{ cluster }}", "cluster": "prod"}
    play = {"encryption_dir": "{{ cluster_dir }}/enc",
            "encryption_config": "{{ encryption_dir }}/encryption-config.yaml"}
    variables = layered_vars(inventory, play, extra_vars={"cluster": "lab",
                                                          "note": "in {{ encryption_dir }}"})
    assert variables["encryption_config"] == "/srv/lab/enc/encryption-config.yaml"
    assert variables["note"] == "in /srv/lab/enc"


def test_registered_results_and_built_in_variables_are_never_templated():
    registered = Untemplated({"probe": {"stdout": "{{ secret }}", "rc": 0}})
    magic = Untemplated({"inventory_hostname": "{{ secret }}"})
    play = {"secret": "s3cr3t", "shown": "got {{ probe.stdout }}",
            "same": "{{ probe.stdout }}"}
    variables = layered_vars(magic, play, registered)
    assert variables["probe"] == {"stdout": "{{ secret }}", "rc": 0}
    assert variables["inventory_hostname"] == "{{ secret }}"
    assert variables["shown"] == "got {{ secret }}"     # rendered once, output kept as text
    assert render_string("{{ same }}", variables) == "{{ secret }}"
    assert "s3cr3t" not in render_string("{{ shown }} {{ same }}", variables)


def test_the_winning_layer_decides_whether_a_value_is_templated():
    data_wins = layered_vars({"x": "{{ y }}", "y": 1}, Untemplated({"x": "{{ y }}"}))
    assert data_wins["x"] == "{{ y }}"
    user_wins = layered_vars(Untemplated({"x": "raw"}), {"x": "{{ y }}", "y": 1})
    assert user_wins["x"] == 1


@pytest.mark.parametrize("use", ["{{ a }}", "path/{{ b }}", "{{ a | upper }}", "{{ c }}"])
def test_a_cycle_fails_where_it_is_used_naming_the_variables(use):
    variables = layered_vars({"a": "{{ b }}", "b": "{{ a }}/x", "c": "{{ a }}", "ok": "{{ d }}",
                              "d": 1})
    assert variables["ok"] == 1                          # the cycle spoils only its users
    with pytest.raises(InputError, match=r"variable '(a|b)' refers to itself through (b|a)") \
            as caught:
        render_string(use, variables, ("play.yml", 4))
    assert caught.value.path == "play.yml" and caught.value.line == 4
    if use == "{{ c }}":
        assert "variable 'c': variable 'a' refers to itself through b" in str(caught.value)


def test_a_variable_referring_to_itself():
    variables = layered_vars({"path": "{{ path }}/bin"}, extra_vars={})
    with pytest.raises(InputError, match="variable 'path' refers to itself$"):
        render_string("{{ path }}", variables)


@pytest.mark.parametrize("use", ["{{ encryption_config }}", "--config={{ encryption_config }}",
                                 "{{ encryption_config | basename }}"])
def test_an_undefined_reference_fails_on_use_and_never_leaves_braces(use):
    variables = layered_vars({"encryption_config": "{{ encryption_dir }}/enc.yaml"})
    with pytest.raises(InputError, match="variable 'encryption_config': "
                                         "'encryption_dir' is undefined"):
        render_value({"dest": use}, variables)


def test_an_unusable_variable_no_task_uses_fails_nothing():
    variables = layered_vars({"later": "{{ not_registered_yet.stdout }}", "zero": "{{ 1 / 0 }}",
                              "bad": "{{ unclosed", "fine": "{{ 2 }}"})
    assert render_string("{{ fine }}", variables) == 2
    assert evaluate("later is defined", variables) is False
    assert render_string("{{ later | default('none yet') }}", variables) == "none yet"
    with pytest.raises(InputError, match="variable 'zero': division by zero"):
        render_string("{{ zero }}", variables)
    with pytest.raises(InputError, match="variable 'bad'"):
        render_string("{{ bad }}", variables)


def test_variables_are_rendered_inside_the_sandbox():
    variables = layered_vars({"escape": "{{ ''.__class__.__mro__ }}"})
    with pytest.raises(InputError, match="variable 'escape'.*unsafe"):
        render_string("{{ escape }}", variables)


def test_when_assert_and_template_files_see_rendered_values(tmp_path):
    variables = layered_vars({"size": "{{ base * 2 }}", "base": 16, "name": "{{ who }}-cfg",
                              "who": "kube"})
    assert evaluate("size == 32", variables) is True
    assert evaluate("{{ name == 'kube-cfg' }}", variables) is True
    assert get_module("assert").plan({"that": ["size > 16", "name is string"],
                                      "fail_msg": None, "success_msg": None},
                                     None, PlanContext(vars=variables)) == []
    (tmp_path / "t.j2").write_text("{{ name }}: {{ size }}\n")
    assert render_template_file("t.j2", [str(tmp_path)], variables) == "kube-cfg: 32\n"


# --- through the runner -----------------------------------------------------------------------

PLAY = """
- name: recursive vars
  hosts: all
  vars:
    conf_dir: "{{ root }}/etc"
    conf: "{{ conf_dir }}/app.conf"
    shown: "payload: {{ probe.stdout }}"
    wanted: "{{ mode_digits }}"
  tasks:
    - name: probe
      command:
        cmd: "cat {{ conf }}"
      register: probe
      changed_when: "probe.rc == 0 and conf.startswith(conf_dir + '/')"
    - name: write what the node said, literally
      copy:
        dest: "{{ conf_dir }}/copy.conf"
        content: "{{ shown }}\\n"
        mode: "{{ wanted }}"
      when: "conf.endswith('/etc/app.conf')"
"""


def test_a_run_renders_references_but_never_a_nodes_output(tmp_path):
    result, out, _ = run_play(tmp_path, PLAY, {"mode_digits": "0600", "secret": "s3cr3t"})
    assert result.exit_code == 0, [(t.task, t.status, t.message) for t in out.lines]
    assert [(t.task, t.status) for t in out.lines] == [
        ("probe", "changed"), ("write what the node said, literally", "changed")]
    written = tmp_path / "h1" / "etc" / "copy.conf"
    assert written.read_text() == "payload: {{ secret }}\n"
    assert oct(written.stat().st_mode & 0o777) == "0o600"


def test_a_run_fails_naming_an_undefined_reference_and_writes_no_braces(tmp_path):
    result, out, _ = run_play(tmp_path, PLAY, {"secret": "s3cr3t"})
    failed = [t for t in out.lines if t.status == "failed"]
    assert result.exit_code != 0 and len(failed) == 1
    assert "variable 'wanted': 'mode_digits' is undefined" in failed[0].message
    assert not list(tmp_path.rglob("*{*")) and not (tmp_path / "h1/etc/copy.conf").exists()


def test_base_vars_layers_inventory_play_registered_and_extra(tmp_path):
    playbook = """
- hosts: all
  vars:
    who: "{{ inventory_hostname }}"
    greeting: "{{ word }} {{ who }}"
    word: play
  tasks: []
"""
    _, _, runner = run_play(tmp_path, playbook, {"word": "{{ root | basename }}"})
    play, host = runner.playbook.plays[0], runner.inventory.hosts["h1"]
    host_play = HostPlay(runner, play, host, None, [host], threading.Event())
    host_play.registered["word"] = {"stdout": "{{ who }}"}
    variables = host_play.base_vars()
    assert variables["greeting"] == "h1 h1"              # -e word wins: rendered from root
    host_play.runner.options.extra_vars = {}
    variables = host_play.base_vars()
    assert variables["word"] == {"stdout": "{{ who }}"}   # registered wins, kept as data
    assert variables["greeting"] == "{'stdout': '{{ who }}'} h1"
    judged = host_play.base_vars({"word": "fresh"})           # what changed_when would see
    assert judged["greeting"] == "fresh h1" and host_play.registered["word"] != "fresh"


def test_changed_when_sees_variables_built_from_the_result_it_judges(tmp_path):
    playbook = """
- hosts: all
  vars:
    said: "{{ probe.stdout }}"
  tasks:
    - name: probe
      command:
        cmd: echo same
      register: probe
      changed_when: "said != 'same'"
"""
    result, out, _ = run_play(tmp_path, playbook, {})
    assert [(t.task, t.status) for t in out.lines] == [("probe", "ok")]
    assert result.exit_code == 0


def test_a_failing_changed_when_fails_the_task_and_counts_the_host(tmp_path):
    playbook = """
- hosts: all
  tasks:
    - name: probe
      command:
        cmd: "true"
      changed_when: "nothing_here == 1"
"""
    result, out, _ = run_play(tmp_path, playbook, {})
    assert [(t.task, t.status) for t in out.lines] == [("probe", "failed")]
    assert "'nothing_here' is undefined" in out.lines[0].message
    assert result.hosts["h1"].failed == 1 and result.exit_code == 4


def test_a_host_failing_outside_any_task_line_still_counts_as_failed(tmp_path, monkeypatch):
    """Unparsable facts fail the host before any task runs: no task line says so, yet the
    recap and the exit code must."""
    monkeypatch.setattr(ShellSession, "run", lambda self, command, **_: CommandResult(
        0, b"garbage that is no fact output\n", b""))
    playbook = """
- hosts: all
  tasks:
    - name: a file
      copy:
        dest: /nonexistent/x
        content: x
"""
    result, out, _ = run_play(tmp_path, playbook, {})
    assert out.lines == [] and result.hosts["h1"].failed == 1 and result.exit_code == 4


@pytest.mark.parametrize("text,expected", [
    ("{{ m | to_nice_yaml }}\n", "a: 1\n"),          # the YAML's own newline, not a second
    ("{{ 'abc' }}\n", "abc\n"),                      # one put back
    ("x{{ 'abc\\n' }}\n", "xabc\n"),
    ("pre {{ 'abc' }}\n", "pre abc\n"),
    ("{{ 'a' }}\n\n", "a\n\n"),                      # only the final newline is Ansible's
])
def test_a_final_newline_is_dropped_then_put_back_as_ansible_renders(text, expected):
    assert render_string(text, {"m": {"a": 1}}) == expected


def test_to_nice_yaml_takes_a_play_vars_mapping():
    class Loaded(dict):          # the loader's mapping type (it remembers key lines)
        pass
    assert render_string("{{ m | to_nice_yaml(indent=2) }}", {"m": Loaded(a=[1])}) == "a:\n- 1\n"
