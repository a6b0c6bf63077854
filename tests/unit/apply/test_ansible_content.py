"""Ansible content loads as ansible-playbook reads it: module names of the collections,
free-form arguments, blocks, task includes, pre/post tasks, roles, handlers that listen, task
vars. Loading is checked from the YAML alone; what runs is checked on a local node."""

from __future__ import annotations

import textwrap

import pytest

from harden.apply.playbook import load_playbook
from harden.errors import InputError

from support.local_node import Env


def write(root, files: dict[str, str]):
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return str(root / "site.yml")


def tasks_of(root, files):
    return load_playbook(write(root, files)).plays[0].tasks


def test_collection_module_names_and_key_value_arguments(tmp_path):
    tasks = tasks_of(tmp_path, {"site.yml": """\
        - hosts: all
          tasks:
            - ansible.builtin.file: path=/etc/x mode=0600 owner=root
            - ansible.posix.sysctl: {name: net.ipv4.ip_forward, value: "1"}
            - ansible.legacy.command: creates=/etc/done /usr/bin/touch "/etc/a b"
        """})
    assert [t.module for t in tasks] == ["file", "sysctl", "command"]
    assert (tasks[0].args["path"], tasks[0].args["mode"], tasks[0].args["owner"]) == \
        ("/etc/x", "0600", "root")
    assert tasks[2].args["cmd"] == '/usr/bin/touch "/etc/a b"'
    assert tasks[2].args["creates"] == "/etc/done"


def test_an_unknown_collection_module_is_refused_with_its_line(tmp_path):
    with pytest.raises(InputError) as err:
        tasks_of(tmp_path, {"site.yml": """\
            - hosts: all
              tasks:
                - community.general.no_such_module: {a: 1}
            """})
    assert err.value.line == 3 and "no_such_module" in str(err.value)


def test_a_block_passes_its_keywords_to_its_tasks(tmp_path):
    tasks = tasks_of(tmp_path, {"site.yml": """\
        - hosts: all
          tasks:
            - name: group
              when: x == 1
              become: true
              tags: [outer]
              vars: {a: 1, b: 1}
              block:
                - file: {path: /etc/x, mode: "0600"}
                  when: y == 2
                  vars: {b: 2}
                - block:
                    - file: {path: /etc/y, mode: "0600"}
                      become: false
                  tags: inner
        """})
    first, second = tasks
    assert first.when == ["x == 1", "y == 2"] and first.become is True
    assert first.vars == {"a": 1, "b": 2} and first.tags == ["outer"]
    assert second.when == ["x == 1"] and second.become is False
    assert second.tags == ["outer", "inner"]


def test_rescue_and_always_tasks_are_marked_with_their_block_and_section(tmp_path):
    tasks = tasks_of(tmp_path, {"site.yml": """\
        - hosts: all
          tasks:
            - block:
                - file: {path: /etc/x, mode: "0600"}
              rescue:
                - file: {path: /etc/y, mode: "0600"}
              always:
                - file: {path: /etc/z, mode: "0600"}
              tags: [t]
            - file: {path: /etc/after, mode: "0600"}
        """})
    sections = [[(section, rescue, always) for _, section, rescue, always in t.blocks]
                for t in tasks]
    assert sections == [[("block", True, True)], [("rescue", True, True)],
                        [("always", True, True)], []]
    assert len({t.blocks[0][0] for t in tasks[:3]}) == 1 and tasks[1].tags == ["t"]


def test_a_handler_block_with_rescue_is_refused(tmp_path):
    with pytest.raises(InputError, match="handler cannot be a block with rescue") as err:
        tasks_of(tmp_path, {"site.yml": """\
            - hosts: all
              tasks: []
              handlers:
                - block:
                    - file: {path: /etc/x, mode: "0600"}
                  always:
                    - file: {path: /etc/y, mode: "0600"}
            """})
    assert err.value.line == 4


def test_import_and_include_tasks_load_relative_files_with_their_keywords(tmp_path):
    tasks = tasks_of(tmp_path, {
        "site.yml": """\
            - hosts: all
              pre_tasks:
                - file: {path: /etc/pre, mode: "0600"}
              tasks:
                - import_tasks: tasks/perms.yml
                  when: do_perms
                - include_tasks: tasks/perms.yml
              post_tasks:
                - file: {path: /etc/post, mode: "0600"}
            """,
        "tasks/perms.yml": """\
            - file: {path: /etc/a, mode: "0600"}
            - import_tasks: more.yml
            """,
        "tasks/more.yml": "- file: {path: /etc/b, mode: '0600'}\n"})
    assert [t.args["path"] for t in tasks] == ["/etc/pre", "/etc/a", "/etc/b", "/etc/a",
                                               "/etc/b", "/etc/post"]
    assert tasks[1].when == tasks[2].when == ["do_perms"] and tasks[3].when == []
    assert tasks[2].path.endswith("tasks/more.yml")


def test_a_templated_include_name_is_refused(tmp_path):
    with pytest.raises(InputError, match="templated name"):
        tasks_of(tmp_path, {"site.yml": """\
            - hosts: all
              tasks:
                - include_tasks: "{{ os }}.yml"
            """})


ROLE = {
    "site.yml": """\
        - hosts: all
          roles:
            - role: hardening
              level: 2
          tasks:
            - import_role: {name: hardening, tasks_from: extra}
        """,
    "roles/hardening/meta/main.yml": "dependencies: [common]\n",
    "roles/hardening/defaults/main.yml": "level: 1\nowner: root\n",
    "roles/hardening/vars/main.yml": "conf: /etc/app.conf\n",
    "roles/hardening/tasks/main.yml": """\
        - template: {src: app.conf.j2, dest: "{{ conf }}", mode: "0600"}
          notify: app changed
        """,
    "roles/hardening/tasks/extra.yml": "- file: {path: /etc/extra, mode: '0600'}\n",
    "roles/hardening/handlers/main.yml": """\
        - name: restart app
          listen: app changed
          service: {name: app, state: restarted}
        """,
    "roles/hardening/templates/app.conf.j2": "level={{ level }}\n",
    "roles/common/tasks/main.yml": "- file: {path: /etc/common, mode: '0600'}\n",
}


def test_roles_load_dependencies_defaults_vars_handlers_and_search_dirs(tmp_path):
    play = load_playbook(write(tmp_path, ROLE)).plays[0]
    assert [t.module for t in play.tasks] == ["file", "template", "file"]
    assert play.tasks[0].args["path"] == "/etc/common"             # the dependency first
    assert play.defaults == {"level": 1, "owner": "root"} and play.vars["conf"] == "/etc/app.conf"
    assert play.tasks[1].vars["level"] == 2                         # role params
    assert play.tasks[1].search_dirs[0].endswith("roles/hardening/templates")
    assert play.tasks[1].notify == ["restart app"]                  # a listen topic, resolved
    assert [h.name for h in play.handlers] == ["restart app"]


def test_a_missing_role_names_where_it_was_looked_for(tmp_path):
    with pytest.raises(InputError, match="role 'nope' not found; looked in: .*roles") as err:
        load_playbook(write(tmp_path, {"site.yml": "- hosts: all\n  roles: [nope]\n"}))
    assert err.value.line == 2


def test_import_playbook_with_when_and_vars(tmp_path):
    plays = load_playbook(write(tmp_path, {
        "site.yml": """\
            - import_playbook: other.yml
              when: enabled
              vars: {who: me}
            """,
        "other.yml": "- hosts: all\n  tasks:\n    - file: {path: /etc/o, mode: '0600'}\n"})).plays
    assert plays[0].vars == {"who": "me"} and plays[0].tasks[0].when == ["enabled"]


# --- what runs ------------------------------------------------------------------------------

def test_command_uses_no_shell_and_shell_does(tmp_path):
    env = Env(tmp_path)
    result, _ = env.apply("""
- hosts: h1
  tasks:
    - command: echo hi > {{ root }}/by-command
    - shell: echo hi > {{ root }}/by-shell
    - command:
        argv: [sh, -c, "echo argv > {{ root }}/by-argv"]
""")
    assert result.exit_code == 0
    assert not (env.root("h1") / "by-command").exists()
    assert (env.root("h1") / "by-shell").read_text() == "hi\n"
    assert (env.root("h1") / "by-argv").read_text() == "argv\n"


def test_role_defaults_lose_to_inventory_and_task_vars_win_over_play_vars(tmp_path):
    env = Env(tmp_path)
    (tmp_path / "roles" / "r" / "defaults").mkdir(parents=True)
    (tmp_path / "roles" / "r" / "defaults" / "main.yml").write_text("root: /nowhere\nx: d\n")
    (tmp_path / "roles" / "r" / "tasks").mkdir()
    (tmp_path / "roles" / "r" / "tasks" / "main.yml").write_text(
        "- copy: {dest: '{{ root }}/etc/out', content: \"{{ x }}-{{ y }}\\n\", mode: '0600'}\n"
        "  vars: {y: task}\n")
    result, _ = env.apply("- hosts: h1\n  vars: {y: play}\n  roles: [r]\n")
    assert result.exit_code == 0
    assert (env.root("h1") / "etc" / "out").read_text() == "d-task\n"


def test_templates_render_with_ansibles_block_settings(tmp_path):
    from harden.apply.templating import render_template_file
    (tmp_path / "t.j2").write_text("{% if true %}\nyes\n{% endif %}\n  {% if true %}x{% endif %}\nend\n")
    assert render_template_file("t.j2", [str(tmp_path)], {}) == "yes\n  xend\n"
    assert render_template_file("t.j2", [str(tmp_path)], {}, lstrip_blocks=True) == \
        "yes\nxend\n"
    assert render_template_file("t.j2", [str(tmp_path)], {}, trim_blocks=False) == \
        "\nyes\n\n  x\nend\n"


LOOPS = """
- hosts: h1
  vars:
    names: [a, b, c]
  tasks:
    - name: one file per item
      copy: {dest: "{{ root }}/etc/{{ item }}.conf", content: "{{ item }}\\n", mode: "0600"}
      loop: "{{ names }}"
      when: item != 'b'
      register: made
    - name: items flattened one level
      copy: {dest: "{{ root }}/etc/{{ f }}-{{ i }}", content: "x\\n", mode: "0600"}
      with_items: [[d, e]]
      loop_control: {loop_var: f, index_var: i, label: "file {{ f }}"}
    - name: from a mapping
      copy: {dest: "{{ root }}/etc/{{ item.key }}", content: "{{ item.value }}\\n", mode: "0600"}
      with_dict: {k1: v1}
    - name: what was registered
      copy:
        dest: "{{ root }}/etc/summary"
        content: "{{ made.changed }} {{ made.results | map(attribute='item') | join(',') }} {{ made.results | map(attribute='skipped') | join(',') }}\\n"
        mode: "0600"
"""


def test_loops_run_per_item_judge_when_per_item_and_register_results(tmp_path):
    env = Env(tmp_path)
    result, out = env.apply(LOOPS)
    assert result.exit_code == 0, [(r.task, r.message) for r in out.lines]
    etc = env.root("h1") / "etc"
    assert sorted(p.name for p in etc.iterdir()) == ["a.conf", "app.conf", "c.conf", "d-0",
                                                      "e-1", "k1", "summary"]
    assert (etc / "k1").read_text() == "v1\n"
    assert (etc / "summary").read_text() == "True a,b,c False,True,False\n"
    names = [r.task for r in out.lines]
    assert "one file per item (item=b)" in names and "items flattened one level (item=file e)" in names
    again, _ = env.apply(LOOPS)
    assert again.hosts["h1"].changed == 1       # only the summary: made.changed is False now


def test_loop_items_from_a_node_are_never_templated(tmp_path):
    env = Env(tmp_path)
    (env.root("h1") / "etc" / "app.conf").write_text("{{ 7 * 6 }}\n")
    result, out = env.apply("""
- hosts: h1
  tasks:
    - shell: cat {{ root }}/etc/app.conf
      register: seen
      changed_when: false
    - copy: {dest: "{{ root }}/etc/out", content: "{{ item }}", mode: "0600"}
      loop: "{{ seen.stdout_lines }}"
""")
    assert result.exit_code == 0
    assert (env.root("h1") / "etc" / "out").read_text() == "{{ 7 * 6 }}"


def test_a_loop_over_something_else_than_a_list_fails_the_host(tmp_path):
    env = Env(tmp_path)
    result, out = env.apply("""
- hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/x", content: "x", mode: "0600"}
      loop: "{{ 5 }}"
""")
    assert result.exit_code == 4 and "loop needs a list" in out.lines[-1].message


def test_collection_names_of_includes_args_keyword_and_argument_aliases(tmp_path):
    tasks = tasks_of(tmp_path, {"site.yml": """\
        - hosts: all
          tasks:
            - ansible.builtin.import_tasks: more.yml
            - name: args keyword
              ansible.builtin.command: cat /etc/hostname
              args:
                chdir: /tmp
        """, "more.yml": """\
        - name: dest is lineinfile's alias of path
          ansible.builtin.lineinfile:
            dest: /etc/x
            line: "a = 1"
            backup: true
        - name: msg is assert's alias of fail_msg
          assert:
            that: true
            msg: never
        - copy: {dest: /etc/y, content: "y", backup: true}
        """})
    assert [t.args.get("path") for t in tasks[:1]] == ["/etc/x"]
    assert tasks[1].args["fail_msg"] == "never"
    assert tasks[3].args["chdir"] == "/tmp" and tasks[3].args["cmd"] == "cat /etc/hostname"


def test_a_command_known_to_rewrite_a_file_backs_it_up_and_later_tasks_see_its_output(
        tmp_path, monkeypatch):
    """As pam-auth-update and os_hardening's lineinfile on common-account: the file the tool
    rewrote is read again, so the lineinfile edits the tool's output (not the file as the
    play's facts first saw it), and the run's backup holds the file as it was before."""
    import harden.apply.modules.command as command
    env = Env(tmp_path)
    conf = env.root("h1") / "etc" / "app.conf"
    tool = tmp_path / "rewrite-conf"
    tool.write_text(f"#!/bin/sh\nprintf 'tool = 1\\n' > {conf}\n")
    tool.chmod(0o755)
    monkeypatch.setattr(command, "_known_writes", lambda: {"rewrite-conf": [str(conf)]})
    result, _ = env.apply(f"""
- hosts: h1
  tasks:
    - command: {tool}
      changed_when: false
    - lineinfile: {{path: "{{{{ root }}}}/etc/app.conf", line: "added = 1"}}
""")
    assert result.exit_code == 0
    assert conf.read_text() == "tool = 1\nadded = 1\n"
    backups = list((env.node_dir("h1", 0)).rglob("etc/app.conf"))
    assert any(b.read_text() == "a = 1\n" for b in backups)
