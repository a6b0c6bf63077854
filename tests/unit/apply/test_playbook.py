"""Playbook loading and validation: shipped playbooks load; every mistake names file:line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harden.errors import InputError
from harden.apply.playbook import load_playbook, load_playbooks, serial_batches, task_selected
from support.paths import REPO

SHIPPED = sorted((REPO / "playbooks").glob("*.yml"))


def write(tmp_path: Path, text: str, name: str = "play.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def error_of(tmp_path: Path, text: str) -> InputError:
    with pytest.raises(InputError) as caught:
        load_playbook(write(tmp_path, text))
    return caught.value


def test_shipped_playbooks_are_all_there():
    names = {p.stem for p in SHIPPED}
    assert {"site", "cis-control-plane", "cis-worker", "audit", "encryption-at-rest",
            "pod-security", "kubelet"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_playbook_loads(path):
    playbook = load_playbook(str(path))
    assert playbook.plays
    for play in playbook.plays:
        assert play.tasks
        for task in play.tasks + play.handlers:
            assert task.line > 0 and task.path.endswith(".yml")


def test_site_imports_the_others_and_control_planes_go_one_by_one():
    site = load_playbook(str(REPO / "playbooks" / "site.yml"))
    # cis-control-plane, audit and pod-security's admission play share a restart_group: one play
    assert [p.name for p in site.plays] == [
        "CIS control plane + API server audit logging + Pod security admission",
        "Pod Security labels on namespaces", "Pod security preflight", "Kubelet hardening",
        "CIS node files"]
    for play in site.plays:
        preflight = all(t.module in ("command", "shell") and t.run_once and t.check_mode is False
                        for t in play.tasks)
        if play.hosts == "control_plane" and not preflight:
            assert play.serial == [1] and play.max_fail_percentage == 0
        elif play.hosts == "control_plane":     # the Pod Security preflight: one host, once
            assert play.name == "Pod security preflight"


def test_fixture_playbook_uses_every_module():
    from harden.apply.modules import MODULES
    playbook = load_playbook(str(REPO / "tests/fixtures/playbooks/every-module.yml"))
    used = {t.module for p in playbook.plays for t in p.tasks + p.handlers}
    assert used == set(MODULES)
    first = playbook.plays[0]
    assert first.vars["harden_marker_dir"] == "/etc/kubernetes/harden-test"   # vars_files
    probe = [t for t in first.tasks if t.register == "probe"][0]
    assert probe.check_mode is False and probe.changed_when == [False]
    flags = next(t for t in first.tasks if t.name == "kube-apiserver flags")
    assert flags.notify == ["wait for kube-apiserver"]


def test_full_data_model(tmp_path):
    path = write(tmp_path, """\
        - name: p
          hosts: [control_plane, "!cp3"]
          serial: [1, "50%"]
          max_fail_percentage: 20
          any_errors_fatal: true
          become: true
          tags: cis
          vars: {a: 1}
          tasks:
            - name: t
              file: {path: /etc/x, mode: "0600"}
              when: a == 1
              register: r
              notify: h
              tags: [files]
              run_once: true
              check_mode: false
              no_log: true
              changed_when: "r.rc == 0"
              become: false
          handlers:
            - name: h
              service: {name: kubelet, state: restarted}
        """)
    play = load_playbook(path).plays[0]
    assert (play.hosts, play.serial, play.max_fail_percentage, play.any_errors_fatal,
            play.become, play.tags, play.vars) == ("control_plane:!cp3", [1, "50%"], 20.0, True,
                                                   True, ["cis"], {"a": 1})
    task = play.tasks[0]
    assert (task.module, task.args["mode"], task.when, task.register, task.notify, task.tags,
            task.run_once, task.check_mode, task.no_log, task.changed_when, task.become,
            task.line) == ("file", "0600", ["a == 1"], "r", ["h"], ["files"], True, False,
                           True, ["r.rc == 0"], False, 11)
    assert task_selected(task, play, ["cis"]) and not task_selected(task, play, ["other"])


def test_unknown_play_keyword(tmp_path):
    err = error_of(tmp_path, """\
        - hosts: all
          strategy: free
          tasks: []
        """)
    assert err.line == 2 and err.path.endswith("play.yml")
    assert "unknown play keyword 'strategy'; valid: any_errors_fatal, become" in str(err)


def test_unknown_module_names_modules_and_keywords(tmp_path):
    err = error_of(tmp_path, """\
        - hosts: all
          tasks:
            - name: x
              synchronize: {src: /etc/x}
        """)
    assert err.line == 4
    assert "unknown module or task keyword 'synchronize'" in str(err)
    assert "modules: apt, assert, blockinfile, command, copy, debug, dnf, encryption_census, " \
           "encryption_key, etcd_snapshot, fail, file, find," in str(err)
    assert "task keywords: any_errors_fatal, become, changed_when, check_mode, delay," in str(err)


def test_unknown_module_argument_points_at_its_line(tmp_path):
    err = error_of(tmp_path, """\
        - hosts: all
          tasks:
            - static_pod:
                manifest: /etc/kubernetes/manifests/kube-apiserver.yaml
                sett:
                  profiling: false
        """)
    assert err.line == 5
    assert "module 'static_pod' has no argument 'sett'; valid: add_to_list, " in str(err)


def test_two_modules_missing_required_argument_and_bad_types(tmp_path):
    assert "exactly one module, got file, copy" in str(error_of(tmp_path, """\
        - hosts: all
          tasks:
            - file: {path: /a}
              copy: {dest: /a, content: x}
        """))
    assert "needs argument 'path'" in str(error_of(tmp_path, """\
        - hosts: all
          tasks:
            - file: {mode: "0600"}
        """))


def test_unquoted_modes_read_as_ansible_reads_them(tmp_path):
    """YAML makes an unquoted 0600 the number 384, which is the mode meant; an unquoted 644 is
    decimal 644, mode 01204: Ansible's documented caveat, kept so a role means the same."""
    (tmp_path / "p.yml").write_text(textwrap.dedent("""\
        - hosts: all
          tasks:
            - file: {path: /a, mode: 0600}
            - file: {path: /b, mode: 644}
        """))
    tasks = load_playbook(str(tmp_path / "p.yml")).plays[0].tasks
    assert [t.args["mode"] for t in tasks] == ["0600", "1204"]


def test_notify_must_name_a_handler(tmp_path):
    err = error_of(tmp_path, """\
        - hosts: all
          tasks:
            - file: {path: /a, mode: "0600"}
              notify: restart kubelt
          handlers:
            - name: restart kubelet
              service: {name: kubelet, state: restarted}
        """)
    assert err.line == 3 and "notify 'restart kubelt' names no handler" in str(err)
    assert "handlers: restart kubelet" in str(err)


@pytest.mark.parametrize("bad, message", [
    ("serial: 0", "not a positive number or percentage"),
    ("serial: lots", "not a positive number or percentage"),
    ("max_fail_percentage: 150", "from 0 to 100"),
    ("become: yes please", "true or false"),
    ("vars: [1]", "vars must be a mapping"),
])
def test_play_value_errors(tmp_path, bad, message):
    err = error_of(tmp_path, f"- hosts: all\n  {bad}\n  tasks: []\n")
    assert message in str(err) and err.line == 2


def test_yaml_errors_duplicates_and_shape(tmp_path):
    assert error_of(tmp_path, "- hosts: all\n  hosts: x\n").line == 2
    assert "a playbook is a list of plays" in str(error_of(tmp_path, "hosts: all\n"))
    assert "play needs 'hosts'" in str(error_of(tmp_path, "- tasks: []\n"))
    err = error_of(tmp_path, "- hosts: all\n  tasks:\n    - file: {path: /a\n")
    assert "not valid YAML" in str(err) and err.line is not None


def test_import_loop_is_refused(tmp_path):
    write(tmp_path, "- import_playbook: b.yml\n", "a.yml")
    write(tmp_path, "- import_playbook: a.yml\n", "b.yml")
    with pytest.raises(InputError, match="import_playbook loop"):
        load_playbook(str(tmp_path / "a.yml"))


def test_templated_arguments_are_checked_after_rendering(tmp_path):
    play = load_playbook(write(tmp_path, """\
        - hosts: all
          tasks:
            - file: {path: /a, mode: "{{ m }}"}
        """)).plays[0]
    assert play.tasks[0].args["mode"] == "{{ m }}"


def test_serial_batches():
    assert serial_batches([], 5) == [5]
    assert serial_batches([1], 3) == [1, 1, 1]
    assert serial_batches([1, "50%"], 5) == [1, 2, 2]
    assert serial_batches(["30%"], 5) == [1, 1, 1, 1, 1]
    assert serial_batches([2, 10], 5) == [2, 3]


def test_adjacent_plays_of_one_restart_group_run_as_one(tmp_path):
    for name, tags, var in (("a", "[ta]", "va: 1"), ("b", "[tb]", "vb: 2")):
        (tmp_path / f"{name}.yml").write_text(f"""
- name: {name}
  hosts: control_plane
  serial: 1
  tags: {tags}
  restart_group: g
  vars: {{{var}}}
  tasks:
    - name: {name} task
      static_pod: {{manifest: /m.yaml, set: {{x: "{{{{ v{name} }}}}"}}}}
      notify: wait
  handlers:
    - name: wait
      wait_for_static_pod: {{name: kube-apiserver}}
""")
    (tmp_path / "site.yml").write_text("- import_playbook: a.yml\n- import_playbook: b.yml\n")
    site = load_playbook(str(tmp_path / "site.yml"))
    assert len(site.plays) == 1
    play = site.plays[0]
    assert [t.name for t in play.tasks] == ["a task", "b task"]
    assert [t.tags for t in play.tasks] == [["ta"], ["tb"]] and play.tags == []
    assert [h.name for h in play.handlers] == ["wait"] and play.vars == {"va": 1, "vb": 2}
    assert len(load_playbook(str(tmp_path / "a.yml")).plays) == 1      # alone: unchanged
    across = load_playbooks([str(tmp_path / "a.yml"), str(tmp_path / "b.yml")])
    assert [p.name for p in across.plays] == ["a + b"]              # two files: still one restart
    assert across.plays[0].playbook == str(tmp_path / "b.yml")      # the stop rules see b's play


def test_restart_group_plays_must_agree(tmp_path):
    from harden.errors import InputError
    (tmp_path / "two.yml").write_text("""
- {name: a, hosts: control_plane, serial: 1, restart_group: g, tasks: []}
- {name: b, hosts: control_plane, serial: 2, restart_group: g, tasks: []}
""")
    with pytest.raises(InputError, match="two.yml:3: restart_group 'g': serial differs"):
        load_playbook(str(tmp_path / "two.yml"))


def _inventory(tmp_path: Path):
    from harden.inventory.loader import load_inventory

    path = tmp_path / "hosts.ini"
    path.write_text("[control_plane]\ncp1\ncp2\n[workers]\nw1\n")
    return load_inventory([str(path)])


@pytest.mark.parametrize("hosts, says", [
    ("control_plain", "no hosts match pattern 'control_plain'"),
    ("control_plane[9]", "no hosts match the subscripted pattern"),
    ("'~(unclosed'", "invalid host pattern"),
], ids=["unknown-group", "subscript", "bad-regex"])
def test_a_hosts_pattern_error_names_the_playbook_file_and_hosts_line(tmp_path, hosts, says):
    path = write(tmp_path, f"""
        - name: Hardening
          become: true
          hosts: {hosts}
          tasks:
            - command: {{cmd: "true"}}
        """)
    [play] = load_playbook(path).plays
    with pytest.raises(InputError) as caught:
        play.select_hosts(_inventory(tmp_path), None)
    assert caught.value.path == path and caught.value.line == 4
    assert str(caught.value).startswith(f"{path}:4: hosts ") and says in str(caught.value)


def test_a_limit_leaving_a_play_no_host_gives_none_and_a_bad_limit_is_not_blamed_on_it(
        tmp_path):
    path = write(tmp_path, """
        - hosts: control_plane
          tasks:
            - command: {cmd: "true"}
        """)
    [play] = load_playbook(path).plays
    assert [h.name for h in play.select_hosts(_inventory(tmp_path), "cp2")] == ["cp2"]
    # as ansible-playbook: the play is skipped ("skipping: no hosts matched")
    assert play.select_hosts(_inventory(tmp_path), "w1") == []
    with pytest.raises(InputError) as caught:
        play.select_hosts(_inventory(tmp_path), "nosuch")
    assert caught.value.path is None and "--limit" in str(caught.value)
