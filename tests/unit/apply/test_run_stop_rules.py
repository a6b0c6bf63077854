"""When a run stops, as ansible-playbook stops it (PlaybookExecutor.run): a batch whose every host
failed or was unreachable ends the run, later plays are not started; a host that failed in a
playbook file keeps the next file from running; a batch where some hosts go on does not stop
anything. Real writes and rollbacks on the local node of support.local_node."""

from __future__ import annotations

import pytest

from harden.ssh.common import Unreachable

from support.local_node import Env, write_play


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def then(name: str, hosts: str = "group") -> str:
    """A play that leaves a marker file named after it on every host it runs on."""
    return f"""
- name: {name}
  hosts: {hosts}
  gather_facts: false
  tasks:
    - name: mark {name}
      copy: {{dest: "{{{{ root }}}}/etc/{name}", content: "ran\\n"}}
"""


def ran(env, name: str) -> set[str]:
    return {h for h in ("h1", "h2", "h3") if (env.root(h) / "etc" / name).exists()}


def test_a_one_batch_play_failing_on_every_host_stops_the_later_plays(env):
    result, out = env.apply(write_play() + then("later"), extra={"fail_on": ["h1", "h2", "h3"]})
    assert result.exit_code == 4
    assert out.stops == ["play 'write': stopped, every host of the batch failed (h1, h2, h3)"]
    assert result.stopped == out.stops[0]
    assert [name for name, _, _ in out.plays] == ["write"]     # 'later' is not even announced
    assert ran(env, "later") == set()
    assert all(result.hosts[h].rolled_back == 1 for h in ("h1", "h2", "h3"))


def test_a_play_failing_on_some_hosts_goes_on_with_the_others(env):
    result, out = env.apply(write_play() + then("later"), extra={"fail_on": ["h1"]})
    assert result.exit_code == 4 and out.stops == [] and result.stopped == ""
    assert ran(env, "later") == {"h2", "h3"}


def test_the_last_batch_of_a_serial_play_failing_entirely_stops_the_run(env):
    result, out = env.apply(write_play(serial=2) + then("later"), extra={"fail_on": ["h3"]})
    assert out.stops == ["play 'write': stopped, every host of the batch failed (h3)"]
    assert ran(env, "later") == set()


def test_max_fail_percentage_100_still_stops_when_the_whole_batch_failed(env):
    play = write_play(max_fail_percentage=100) + then("later")
    result, out = env.apply(play, extra={"fail_on": ["h1", "h2"]})
    assert out.stops == [] and ran(env, "later") == {"h3"}
    result, out = env.apply(play, extra={"fail_on": ["h1", "h2", "h3"]})
    assert out.stops == ["play 'write': stopped, every host of the batch failed (h1, h2, h3)"]


def test_a_batch_whose_hosts_are_all_unreachable_stops_the_run(env):
    connect = env.connect

    def down(spec):
        if spec.host in ("h1", "h2"):
            raise Unreachable(spec.host, "connection refused")
        return connect(spec)

    env.connect = down
    result, out = env.apply(then("first", "h1:h2") + then("later"), check=True)
    assert result.exit_code == 4
    assert [result.hosts[h].unreachable for h in ("h1", "h2")] == [1, 1]
    assert out.stops == ["play 'first': stopped, every host of the batch failed (h1, h2)"]
    assert [name for name, _, _ in out.plays] == ["first"]


def test_a_host_failed_in_an_earlier_play_fills_its_place_in_the_batch(env):
    """As in ansible-playbook: h1 failed before, so h2 and h3 failing is 2 of a batch of 3."""
    fails = then("second").replace("  tasks:\n", "  tasks:\n    - fail: {}\n"
                                   "      when: inventory_hostname != 'h1'\n")
    result, out = env.apply(write_play() + fails + then("third"), extra={"fail_on": ["h1"]})
    assert out.stops == []
    assert out.plays[-1] == ("third", [], True)                # NO MORE HOSTS LEFT


def test_a_later_playbook_file_runs_only_when_no_host_has_failed(env):
    result, out = env.apply([write_play(), then("second file")], extra={"fail_on": []})
    assert result.exit_code == 0 and ran(env, "second file") == {"h1", "h2", "h3"}
    result, out = env.apply([write_play() + then("same file"), then("next file")],
                            extra={"fail_on": ["h2"]})
    assert ran(env, "same file") == {"h1", "h3"} and ran(env, "next file") == set()
    assert out.stops == [f"playbook {env.tmp / 'play.yml'}: h2 failed, the playbooks after "
                         f"it are not run"]
    assert result.exit_code == 4


def test_an_imported_playbook_s_failed_batch_stops_the_plays_of_the_importing_file(env):
    (env.tmp / "imported.yml").write_text(write_play())
    result, out = env.apply(["- import_playbook: imported.yml\n" + then("after import")],
                            extra={"fail_on": ["h1", "h2", "h3"]})
    assert out.stops == ["play 'write': stopped, every host of the batch failed (h1, h2, h3)"]
    assert ran(env, "after import") == set()
