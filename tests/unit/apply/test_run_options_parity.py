"""ansible-playbook's run options on a local node: --start-at-task, several playbooks as one run,
-v/-vv/-vvv (execs and timings), and the CLI's ansible.cfg inventory."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from rich.console import Console

from harden.apply.output import TextOutput
from harden.apply.playbook import load_playbooks
from harden.apply.runner import ApplyOptions, Runner
from harden.cli import cli
from harden.errors import InputError
from harden.inventory.loader import load_inventory
from harden.runs.journal import Journal

from support.local_node import NODE_DIRS, Collect, Env

FIRST = """
- hosts: h1
  tasks:
    - name: one
      copy: {dest: "{{ root }}/etc/one", content: "1\\n"}
    - name: two
      copy: {dest: "{{ root }}/etc/two", content: "2\\n"}
"""
SECOND = """
- hosts: h1
  tasks:
    - name: three
      copy: {dest: "{{ root }}/etc/three", content: "3\\n"}
"""


def run(env: Env, texts: list[str], output=None, **options):
    paths = []
    for index, text in enumerate(texts):
        path = env.tmp / f"play{index}.yml"
        path.write_text(text)
        paths.append(str(path))
    out = output or Collect()
    runner = Runner(load_inventory([str(env.tmp / "inventory.ini")]), load_playbooks(paths),
                    ApplyOptions(forks=1, backup_root=str(env.tmp / NODE_DIRS[0]),
                                 journal_root=str(env.tmp / NODE_DIRS[1]), **options),
                    out, env.journal, connect=env.connect)
    return runner.run(), out


def test_several_playbooks_are_one_run(tmp_path):
    env = Env(tmp_path)
    result, out = run(env, [FIRST, SECOND])
    assert [r.task for r in out.lines] == ["one", "two", "three"]
    # one lock, one fact gather per play, one write per play, commits, one unlock
    assert result.exit_code == 0 and sorted(os.listdir(env.root("h1") / "etc")) == [
        "app.conf", "one", "three", "two"]
    assert len(os.listdir(env.node_dir("h1", 0))) == 1        # one run's backups


def test_start_at_task_leaves_out_the_tasks_before_it_across_playbooks(tmp_path):
    env = Env(tmp_path)
    result, out = run(env, [FIRST, SECOND], start_at_task="tw*")
    assert [r.task for r in out.lines] == ["two", "three"]
    assert not (env.root("h1") / "etc/one").exists()
    with pytest.raises(InputError, match="no task named 'nope'"):
        run(env, [FIRST], start_at_task="nope")


def test_verbose_output_counts_execs_and_times_tasks(tmp_path):
    env = Env(tmp_path)
    console = Console(record=True, width=200, force_terminal=False)
    result, _ = run(env, [FIRST], output=TextOutput(console=console, verbosity=3))
    text = console.export_text()
    assert [step for step, _, _ in result.execs["h1"]] == ["lock, gathering facts",
                                                           "writing and committing"]
    assert f"h1: {len(result.execs['h1'])} execs" in text
    assert "exec 1: lock, gathering facts" in text and "exec 2: writing and committing" in text
    assert "one  changed  (" in text            # -vv: the task's time


def test_apply_takes_the_inventory_from_ansible_cfg(tmp_path, monkeypatch):
    (tmp_path / "ansible.cfg").write_text("[defaults]\ninventory = nowhere.ini\n")
    (tmp_path / "site.yml").write_text("- hosts: all\n  tasks: []\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANSIBLE_CONFIG", raising=False)
    monkeypatch.delenv("ANSIBLE_INVENTORY", raising=False)
    result = CliRunner().invoke(cli, ["apply", "site.yml", "--list-hosts"])
    assert result.exit_code == 1 and "nowhere.ini" in result.output
    (tmp_path / "nowhere.ini").write_text("h1 ansible_host=127.0.0.1\n")
    result = CliRunner().invoke(cli, ["apply", "site.yml", "--list-hosts"])
    assert result.exit_code == 0 and "h1" in result.output, result.output
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    result = CliRunner().invoke(cli, ["apply", "site.yml", "--syntax-check"])
    assert result.exit_code == 1 and "no inventory: give -i" in result.output
