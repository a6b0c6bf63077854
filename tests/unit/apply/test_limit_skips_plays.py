"""`--limit` as ansible-playbook applies it: a play it leaves without hosts is skipped
("skipping: no hosts matched") and the run goes on; a limit that matches no host of the
inventory at all is an input error (exit 1) before any host is contacted."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from harden.apply.listing import list_hosts
from harden.apply.output import TextOutput
from harden.apply.playbook import load_playbook
from harden.errors import InputError
from harden.inventory.loader import load_inventory
from support.local_node import Env

TWO_PLAYS = """
- name: only h2
  hosts: h2
  gather_facts: false
  tasks:
    - name: on h2
      copy: {dest: "{{ root }}/etc/h2-only", content: "x\\n"}
- name: everyone
  hosts: group
  gather_facts: false
  tasks:
    - name: on all
      copy: {dest: "{{ root }}/etc/all", content: "y\\n"}
"""

H2_FAILS_THEN_ONLY_H2 = """
- name: everyone
  hosts: group
  gather_facts: false
  tasks:
    - fail: {}
      when: inventory_hostname == "h2"
- name: only h2
  hosts: h2
  gather_facts: false
  tasks:
    - name: on h2
      copy: {dest: "{{ root }}/etc/h2-only", content: "x\\n"}
"""


def test_a_play_the_limit_leaves_empty_is_skipped_and_the_next_one_runs(tmp_path):
    env = Env(tmp_path)
    result, out = env.apply(TWO_PLAYS, limit="h1")
    assert result.exit_code == 0
    assert [(r.host, r.task, r.status) for r in out.lines] == [("h1", "on all", "changed")]
    assert (env.root("h1") / "etc/all").exists()
    assert not any((env.root(h) / "etc/h2-only").exists() for h in ("h1", "h2", "h3"))
    assert not (env.root("h2") / "etc/all").exists()


def test_a_play_left_without_hosts_by_earlier_failures_says_no_more_hosts_left(tmp_path):
    env = Env(tmp_path)
    result, out = env.apply(H2_FAILS_THEN_ONLY_H2, limit="h1,h2")
    assert result.exit_code == 4 and not out.stops     # h1 went on: not a whole batch
    assert out.plays == [("everyone", ["h1", "h2"], True), ("only h2", [], True)]
    _, out = env.apply(TWO_PLAYS, limit="h1")
    assert out.plays[0] == ("only h2", [], False)
    for matched, said in ((True, "NO MORE HOSTS LEFT"), (False, "skipping: no hosts matched")):
        buffer = io.StringIO()
        TextOutput(console=Console(file=buffer)).play_start(load_playbook(
            str(tmp_path / "play.yml")).plays[0], [], matched)
        assert buffer.getvalue().splitlines()[-1] == said


def test_a_limit_matching_no_host_at_all_is_an_input_error_and_touches_nothing(tmp_path):
    env = Env(tmp_path)
    with pytest.raises(InputError, match="--limit"):
        env.apply(TWO_PLAYS, limit="nosuch")
    assert not env.sessions


def test_list_hosts_shows_the_skipped_play_with_no_hosts(tmp_path):
    env = Env(tmp_path)
    (tmp_path / "play.yml").write_text(TWO_PLAYS)
    text = list_hosts(load_playbook(str(tmp_path / "play.yml")),
                      load_inventory([str(tmp_path / "inventory.ini")]), "h1")
    assert "    hosts (0):\n" in text and "    hosts (1):\n      h1" in text
