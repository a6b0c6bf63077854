"""Forms that existing hardening roles (dev-sec's os_hardening) rely on, computed as ansible-core
does: the `comment` filter, the variables a template sees (`ansible_managed`,
`ansible_role_name`), `~user` paths resolved from the node's passwd."""

from __future__ import annotations

import textwrap

import pytest

from harden.apply import home_paths
from harden.apply.modules.base import PlanContext
from harden.apply.modules.template import MODULE as TEMPLATE
from harden.apply.playbook import load_playbook
from harden.apply.templating import render_string
from harden.errors import InputError
from support.modules import file_state, make_facts, plan


def write(root, files: dict[str, str]) -> str:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(root / "site.yml")


@pytest.mark.parametrize("expression, expected", [
    ("{{ 'Ansible managed' | comment }}", "#\n# Ansible managed\n#"),
    ("{{ 'a\\n\\nb' | comment }}", "#\n# a\n#\n# b\n#"),
    ("{{ 'x' | comment('c') }}", "//\n// x\n//"),
    ("{{ 'x' | comment('cblock') }}", "/*\n *\n * x\n *\n */"),
    ("{{ 'x\\ny' | comment('xml') }}", "<!--\n -\n - x\n - y\n -\n-->"),
    ("{{ 'x' | comment(decoration='; ', prefix_count=2) }}", ";\n;\n; x\n;"),
])
def test_comment_filter_frames_text_as_ansible_does(expression, expected):
    assert render_string(expression, {}) == expected


def test_comment_filter_names_the_styles_when_given_an_unknown_one():
    with pytest.raises(InputError, match="invalid style 'lua'.*plain, erlang, c, cblock, xml"):
        render_string("{{ 'x' | comment('lua') }}", {})


def _render(tmp_path, text: str, variables: dict) -> str:
    (tmp_path / "t.j2").write_text(text)
    args = TEMPLATE.validate({"src": "t.j2", "dest": "/etc/out"})
    ctx = PlanContext(variables, [str(tmp_path)], False)
    return TEMPLATE.content(args, ctx).decode()


def test_a_template_sees_ansible_managed_and_where_it_renders(tmp_path):
    out = _render(tmp_path, "{{ ansible_managed | comment }}\n{{ template_path }} -> "
                  "{{ template_destpath }}\n", {})
    assert out == "#\n# Ansible managed\n#\nt.j2 -> /etc/out\n"


def test_a_playbook_ansible_managed_wins_over_the_default(tmp_path):
    assert _render(tmp_path, "{{ ansible_managed }}", {"ansible_managed": "by harden"}) \
        == "by harden"


def test_role_tasks_and_handlers_know_their_role_name_and_path(tmp_path):
    play = load_playbook(write(tmp_path, {
        "site.yml": """\
            - hosts: all
              roles: [os_hardening]
            """,
        "roles/os_hardening/tasks/main.yml": """\
            - name: t
              debug: {msg: "{{ ansible_role_name }}"}
            """,
        "roles/os_hardening/handlers/main.yml": """\
            - name: h
              debug: {msg: "{{ role_name }}"}
            """})).plays[0]
    for task in (play.tasks[0], play.handlers[0]):
        assert task.vars["role_name"] == task.vars["ansible_role_name"] == "os_hardening"
        assert task.vars["role_path"] == str(tmp_path / "roles" / "os_hardening")


PASSWD = ("root:x:0:0:root:/root:/bin/bash\n"
          "labops:x:2000:2000::/home/labops:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
          "slash:x:3:3::/:/bin/sh\n")


@pytest.mark.parametrize("path, expected", [
    ("~root/.netrc", "/root/.netrc"),
    ("~labops/.rhosts", "/home/labops/.rhosts"),
    ("~labops", "/home/labops"),
    ("~/.ssh", "/root/.ssh"),                       # the user the module runs as
    ("~slash/x", "/x"),
    ("~ghost/.netrc", "~ghost/.netrc"),             # unknown user: left as written
    ("/etc/~root", "/etc/~root"),
])
def test_tilde_paths_expand_from_the_nodes_passwd_as_expanduser(path, expected):
    assert home_paths.expand({"path": path}, ("path",), PASSWD, "root")["path"] == expected


def test_bare_tilde_is_the_become_user_else_the_login_user():
    assert home_paths.runs_as({"ansible_user": "labops"}, True) == "root"
    assert home_paths.runs_as({"ansible_become_user": "app"}, True) == "app"
    assert home_paths.runs_as({"ansible_user": "labops"}, False) == "labops"


def test_only_the_modules_node_paths_are_expanded():
    args = {"paths": ["~root", "/etc"], "patterns": "~x", "path": "~root/a"}
    out = home_paths.expand(args, ("paths",), PASSWD, "root")
    assert out == {"paths": ["/root", "/etc"], "patterns": "~x", "path": "~root/a"}
    assert home_paths.wanted(args, ("paths",)) and not home_paths.wanted({"dest": "/x"},
                                                                         ("dest",))


def test_file_absent_plans_the_expanded_home_path():
    facts = make_facts(file_state("/root/.netrc", b"machine x\n", 0o600))
    facts.links["/root/.netrc"] = None
    facts.globs[("/root/.netrc", True)] = ["/root/.netrc"]
    args = home_paths.expand({"path": "~root/.netrc", "state": "absent"}, ("path",), PASSWD,
                             "root")
    changes = plan("file", args, facts)
    assert [c.path for c in changes] == ["/root/.netrc"]


def test_a_looped_include_runs_the_files_tasks_per_item_in_ansibles_order(tmp_path):
    play = load_playbook(write(tmp_path, {
        "site.yml": """\
            - hosts: all
              tasks:
                - include_tasks: fs.yml
                  loop_control: {loop_var: mount}
                  loop:
                    - {path: /dev, mode: "{{ dev_mode }}"}
                    - {path: /tmp, mode: "1777"}
            """,
        "fs.yml": """\
            - name: "stat {{ mount.path }}"
              stat: {path: "{{ mount.path }}"}
            - name: "mode {{ mount.path }}"
              file: {path: "{{ mount.path }}", mode: "{{ mount.mode }}"}
            """})).plays[0]
    assert [(t.module, t.vars["mount"]["path"]) for t in play.tasks] == [
        ("stat", "/dev"), ("file", "/dev"), ("stat", "/tmp"), ("file", "/tmp")]
    assert play.tasks[1].vars["mount"]["mode"] == "{{ dev_mode }}"     # rendered per host


def test_a_looped_include_over_a_templated_list_is_refused_with_its_line(tmp_path):
    with pytest.raises(InputError, match=r"site.yml:4: include_tasks: a loop over a templated"):
        load_playbook(write(tmp_path, {
            "site.yml": """\
                - hosts: all
                  tasks:
                    - include_tasks: fs.yml
                      loop: "{{ mounts }}"
                """,
            "fs.yml": "- debug: {msg: x}\n"}))


def test_a_failing_loop_item_lets_the_others_run_and_registers_them_all(tmp_path):
    from support.local_node import run_play

    result, out, runner = run_play(tmp_path, """
- hosts: all
  tasks:
    - name: probe
      shell: "test {{ item }} != b"
      loop: [a, b, c]
      register: probes
      ignore_errors: true
      changed_when: false
    - name: after
      debug:
        msg: "{{ probes.results | map(attribute='rc') | list }} {{ probes.failed }}"
""", {})
    lines = [(t.task, t.status) for t in out.lines]
    assert lines[:3] == [("probe (item=a)", "ok"), ("probe (item=b)", "failed"),
                         ("probe (item=c)", "ok")]
    assert lines[3] == ("after", "ok") and out.lines[3].message == "[0, 1, 0] True"


@pytest.mark.parametrize("raw, expected", [
    ("", {"status": "Missing selinux Python library"}),
    ("lib\n", {"status": "disabled"}),
    ("lib\nenforce 1\npolicyvers 33\nconfig enforcing\nconfigTYPE targeted\n",
     {"status": "enabled", "policyvers": 33, "mode": "enforcing", "config_mode": "enforcing",
      "type": "targeted"}),
])
def test_selinux_facts_as_ansibles_collector_reports_them(raw, expected):
    from harden.apply.host_facts import selinux

    assert selinux(raw)["selinux"] == expected
