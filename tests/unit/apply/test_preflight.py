"""Preflight of `apply`: every host connected and locked before the first change, through the
local node of support.local_node (the lock and apply scripts really run with the local `sh`)."""

from __future__ import annotations

import os

import pytest

from harden.errors import HostError, InputError
from harden.runs.lock import Holder, holder_for, take

from support.local_node import Env, tree, write_play


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def lock_file(env, host: str = "h1") -> str:
    return str(env.tmp / f"{host}-node" / "lock")     # each local node has its own lock


def no_lock_left(env) -> bool:
    return not any(os.path.lexists(lock_file(env, h)) for h in ("h1", "h2", "h3"))


def test_an_apply_finding_the_node_locked_changes_no_host_and_names_the_holder(env):
    other = holder_for("20260101T000000Z-abcdef", "apply")
    take(env.connect(type("Spec", (), {"host": "h1"})), "h1", other, lock_file(env))
    before = {h: tree(env.root(h)) for h in ("h1", "h2", "h3")}
    result, out = env.apply(write_play(), extra={"fail_on": []})
    assert result.exit_code == 4
    assert {h: tree(env.root(h)) for h in ("h1", "h2", "h3")} == before
    assert not env.node_dir("h1", 0).exists()
    refusals = [(h, m) for h, m in out.warnings if m.startswith("locked by run " + other.run_id)]
    assert [h for h, _ in refusals] == ["h1"] and "nothing written" in refusals[0][1]
    assert out.stops == ["preflight failed on h1: nothing was changed on any host"]
    assert Holder.parse(os.readlink(lock_file(env))) == other      # never broken silently
    assert not os.path.lexists(lock_file(env, "h2"))                # taken, then given back


def test_an_unreachable_host_of_a_later_batch_stops_the_run_before_the_first_change(env):
    connect = env.connect

    def h3_down(spec):
        if spec.host == "h3":
            raise HostError("h3", "connection refused")
        return connect(spec)

    env.connect = h3_down
    before = {h: tree(env.root(h)) for h in ("h1", "h2")}
    result, out = env.apply(write_play(serial=1), extra={"fail_on": []})
    assert result.exit_code == 4 and result.hosts["h3"].failed == 1
    assert {h: tree(env.root(h)) for h in ("h1", "h2")} == before
    assert ("h3", "connection refused") in out.warnings
    assert no_lock_left(env)                                        # h1, h2 given back


def test_a_finished_run_leaves_no_lock_and_the_next_run_proceeds(env):
    first, _ = env.apply(write_play(), extra={"fail_on": ["h2"]})
    assert first.exit_code == 4 and first.hosts["h2"].rolled_back == 1
    assert no_lock_left(env)                                        # failure: released too
    again, _ = env.apply(write_play(), extra={"fail_on": []})
    assert again.exit_code == 0 and again.hosts["h2"].changed == 2
    assert no_lock_left(env)


def test_only_the_first_batch_gathers_its_facts_in_the_lock_s_exec(env):
    result, _ = env.apply(write_play(serial=1), extra={"fail_on": []})
    assert result.exit_code == 0
    steps = {h: [step for step, _, _ in execs] for h, execs in result.execs.items()}
    assert steps["h1"] == ["lock, gathering facts", "writing and committing"]
    # a later batch reads its node when its turn comes: the facts must be fresh
    assert steps["h2"] == steps["h3"] == ["lock", "gathering facts", "writing and committing"]


@pytest.mark.parametrize("extra, message", [
    ({"harden_wait_interval": "abc"}, "-e harden_wait_interval: 'abc' is not a number"),
    ({"harden_wait_interval": 0}, "-e harden_wait_interval: 0 is not a number"),
    ({"harden_wait_successes": 1.5}, "-e harden_wait_successes: 1.5 is not a whole number"),
    ({"harden_wait_successes": True}, "-e harden_wait_successes: True is not a whole number"),
    ({"harden_kubeadm_persist": "maybe"},
     "-e harden_kubeadm_persist: 'maybe' is not one of auto, true, false"),
    ({"harden_etcd_snapshot": "snap.db"},
     "-e harden_etcd_snapshot: 'snap.db' is neither true/false nor an absolute file path"),
    ({"harden_etcd_snapshot": "/var/snaps/"},
     "-e harden_etcd_snapshot: '/var/snaps/' is neither true/false"),
])
def test_a_bad_run_variable_is_an_input_error_before_any_host_is_contacted(env, extra,
                                                                          message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        env.apply(write_play(), extra={"fail_on": [], **extra})
    assert env.sessions == {} and not os.path.lexists(lock_file(env))


def test_a_bad_run_variable_in_play_vars_or_the_inventory_names_where(env):
    with pytest.raises(InputError, match=r"play.yml:\d+: play 'write' vars: "
                                         "harden_wait_interval"):
        env.apply(write_play(vars="{harden_wait_interval: soon}"), extra={"fail_on": []})
    (env.tmp / "inventory.ini").write_text(
        (env.tmp / "inventory.ini").read_text().replace("h2 root", "h2 harden_wait_successes=x root"))
    with pytest.raises(HostError, match=r"host h2 \(harden_wait_successes\): 'x' is not"):
        env.apply(write_play(), extra={"fail_on": []})
    assert env.sessions == {}


def test_good_and_templated_run_variables_pass_the_load_check(env):
    result, _ = env.apply(write_play(), extra={"fail_on": [], "harden_wait_interval": "0.5",
                                               "harden_wait_successes": "{{ 2 }}",
                                               "harden_etcd_snapshot": "/root/etcd.db"})
    assert result.exit_code == 0
