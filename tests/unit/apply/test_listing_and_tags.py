"""--list-hosts/--list-tasks/--list-tags/--syntax-check contact no host and print what a run
would do; --skip-tags and the 'always'/'never' tags follow Ansible's rules."""

import subprocess
import sys
import textwrap

import pytest

from harden.apply.playbook import Play, Task, task_selected

from support.paths import REPO

PLAYBOOK = """\
- name: one
  hosts: control_plane
  tags: [cp]
  tasks:
    - {name: a, debug: {msg: x}, tags: [audit]}
    - {name: b, debug: {msg: y}, tags: [never, debugonly]}
    - {name: c, debug: {msg: z}, tags: [always]}
"""


def selected(only=None, skip=None) -> list[str]:
    play = Play("p", "all", "p.yml", 1)
    tasks = [Task("a", "debug", {}, "p.yml", 1, tags=["audit"]),
             Task("b", "debug", {}, "p.yml", 2, tags=["never", "debugonly"]),
             Task("c", "debug", {}, "p.yml", 3, tags=["always"]),
             Task("d", "debug", {}, "p.yml", 4)]
    return [t.name for t in tasks if task_selected(t, play, only, skip)]


@pytest.mark.parametrize("only,skip,expected", [
    (None, None, ["a", "c", "d"]),
    (["audit"], None, ["a", "c"]),
    (["debugonly"], None, ["b", "c"]),
    (None, ["audit"], ["c", "d"]),
    (None, ["always"], ["a", "d"]),
    (["all"], None, ["a", "c", "d"]),
])
def test_tag_selection(only, skip, expected):
    assert selected(only, skip) == expected


def harden(tmp_path, *args):
    (tmp_path / "p.yml").write_text(textwrap.dedent(PLAYBOOK))
    return subprocess.run([sys.executable, "-m", "harden.cli", "apply", "-i",
                           str(REPO / "inventories" / "kubeadm" / "hosts.ini"),
                           str(tmp_path / "p.yml"), *args], capture_output=True, text=True,
                          timeout=60)


def test_list_hosts_and_tasks_without_contacting_anyone(tmp_path):
    hosts = harden(tmp_path, "--list-hosts", "-l", "cp1:cp3")
    assert hosts.returncode == 0 and "hosts (2):\n      cp1\n      cp3" in hosts.stdout
    tasks = harden(tmp_path, "--list-tasks", "--skip-tags", "audit")
    assert tasks.returncode == 0
    assert "      c\tTAGS: [always]" in tasks.stdout and "      a\t" not in tasks.stdout
    tags = harden(tmp_path, "--list-tags")
    assert "TASK TAGS: [always, audit, cp, debugonly, never]" in tags.stdout


def test_syntax_check_fails_on_a_bad_playbook_naming_the_line(tmp_path):
    (tmp_path / "p.yml").write_text("- hosts: all\n  tasks:\n    - nosuchmodule: {}\n")
    done = subprocess.run([sys.executable, "-m", "harden.cli", "apply", "-i",
                           str(REPO / "inventories" / "kubeadm" / "hosts.ini"),
                           str(tmp_path / "p.yml"), "--syntax-check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "p.yml:3:" in done.stderr
