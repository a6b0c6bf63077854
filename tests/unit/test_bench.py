"""The benchmark's pure helpers (bench/): argument parsing, sshd log counting, summaries, tables.

No timing is asserted anywhere: speed is what `make bench` measures, not what tests check.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

from support.paths import REPO

sys.path.insert(0, str(REPO))

from bench.measure import (Sample, deltas, snapshot, sshd_listeners, summarize,  # noqa: E402
                           timed_run, tree_cpu_seconds, tree_pids)
from bench.report import table  # noqa: E402
from bench.run import (lab_shape, node_counts, parse_args, planned_runs, selected_tools,  # noqa: E402
                       slug)
from bench.tools import TOOLS, Lab, openssh_floor  # noqa: E402

EXEC = "debug1: session_input_channel_req: session 0 req exec\n"
LOGIN = ("Accepted publickey for root from 127.0.0.1 port 43272 ssh2: ED25519 "
         "SHA256:Jc0sRXTvVIkgjsYZUTlBIITXvjJKCkq8NmHX6j8tNe0\n")
NOISE = ("Connection from 127.0.0.1 port 43106 on 127.67.0.12 port 22 rdomain \"\"\n"
         "debug1: session_input_channel_req: session 0 req env\n"
         "Accepted key ED25519 SHA256:Jc0s found at /tmp/lab/authorized_keys/root:1\n")


def sample(seconds: float, execs: dict[str, int], code: int = 0) -> Sample:
    return Sample(seconds=seconds, cpu_seconds=seconds / 2, max_rss_mib=10, tree_pss_mib=20,
                  returncode=code, per_host_execs=execs, per_host_logins={h: 1 for h in execs})


def test_node_counts_parse_and_reject():
    assert node_counts("5,20,50") == [5, 20, 50]
    for bad in ("", "5,x", "0", "241"):
        with pytest.raises(argparse.ArgumentTypeError):
            node_counts(bad)


def test_tools_can_be_chosen_and_the_floor_always_runs():
    names = [t.name for t in selected_tools(parse_args(["--tools", "probe,harden-openssh"]))]
    assert names == ["OpenSSH floor (ssh + true)", "OpenSSH + harden probe script",
                     "harden check, openssh transport"]
    assert not any(t.is_ansible for t in selected_tools(parse_args(["--skip-ansible"])))
    assert len(selected_tools(parse_args([]))) == len(TOOLS)
    with pytest.raises(SystemExit):
        parse_args(["--tools", "harden,nope"])


def test_lab_shape_has_one_control_plane_per_five_nodes_and_at_least_one():
    assert lab_shape(1) == (1, 0)
    assert lab_shape(5) == (1, 4)
    assert lab_shape(50) == (10, 40)


def test_slow_ansible_variant_runs_only_on_small_labs():
    args = parse_args(["--repeat", "3", "--ansible-repeat", "2", "--ansible-defaults-up-to", "5"])
    by_name = {tool.name: tool for tool in TOOLS}
    harden = by_name["harden check"]
    fast, slow = by_name["ansible-playbook, pipelining"], by_name["ansible-playbook, defaults"]
    assert [planned_runs(t, 5, args) for t in (harden, fast, slow)] == [3, 2, 2]
    assert [planned_runs(t, 20, args) for t in (harden, fast, slow)] == [3, 2, 0]


def test_sshd_log_deltas_count_only_exec_requests_and_logins(tmp_path):
    log = tmp_path / "sshd.log"
    log.write_text(NOISE + LOGIN + EXEC)
    before = snapshot({"cp1": log, "w1": tmp_path / "missing.log"})
    log.write_text(log.read_text() + NOISE + LOGIN + EXEC + EXEC.replace("0", "1") + EXEC)
    execs, logins = deltas(before, snapshot({"cp1": log, "w1": tmp_path / "missing.log"}))
    assert execs == {"cp1": 3, "w1": 0}
    assert logins == {"cp1": 1, "w1": 0}


def test_summary_takes_median_span_and_counts_unexpected_exit_codes():
    runs = [sample(3.0, {"a": 1, "b": 1}), sample(1.0, {"a": 1, "b": 1}, code=2),
            sample(2.0, {"a": 25, "b": 36}, code=4)]
    summary = summarize("harden check", runs, ok_codes=(0, 2))
    assert (summary.median, summary.low, summary.high) == (2.0, 1.0, 3.0)
    assert summary.execs == (1, 36)
    assert summary.failures == 1


def test_table_gives_ratios_to_floor_and_harden_and_names_skipped_tools():
    floor = summarize("floor", [sample(0.5, {"a": 1})])
    harden = summarize("harden check", [sample(1.0, {"a": 1})])
    ansible = summarize("ansible", [sample(20.0, {"a": 30})])
    text = table(5, 1, {"floor": 3, "harden check": 3, "ansible": 1, "slow": 0},
                 [floor, harden, ansible], "floor", "harden check", 0.25)
    row = next(line for line in text.splitlines() if line.startswith("| ansible |"))
    assert "| 40.0× | 20.0× |" in row and row.endswith("| 1 | 30 |")
    assert "1 control plane, 4 workers" in text
    assert "Not run at this size: slow." in text


def test_openssh_floor_is_strict_and_uses_the_forks_given(tmp_path):
    lab = Lab(tmp_path, {"cp1": "127.67.0.11", "w1": "127.67.0.12"})
    invocation = openssh_floor(lab, 7)
    assert invocation.argv[:3] == ["xargs", "-P", "7"]
    assert "StrictHostKeyChecking=yes" in invocation.argv
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'}" in invocation.argv
    assert invocation.stdin == b"127.67.0.11\n127.67.0.12\n"


def test_timed_run_reports_exit_code_and_output(tmp_path):
    result = timed_run(["sh", "-c", "echo hi; exit 3"], log_path=tmp_path / "out.log")
    assert result.returncode == 3
    assert (tmp_path / "out.log").read_text() == "hi\n"


def test_tree_pids_finds_grandchildren():
    parent = subprocess.Popen(["sh", "-c", "sleep 30 & wait"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while len(tree_pids(parent.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(tree_pids(parent.pid)) == 2
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_tree_cpu_counts_exited_children_and_finds_sshd_listeners():
    """A busy child that has exited and been reaped still counts, through its parent's cutime;
    the listener is found by the title sshd gives itself."""
    burn = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"
    parent = subprocess.Popen(["bash", "-c", f"sh -c '{burn}'; exec -a 'sshd: /usr/sbin/sshd "
                               "-D [listener] 0 of 10-100 startups' sleep 30"],
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not sshd_listeners([parent.pid]) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sshd_listeners([parent.pid]) == [parent.pid]
        assert tree_cpu_seconds([parent.pid]) > 0
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_slug_is_file_name_safe():
    assert slug("ansible-playbook, defaults") == "ansible-playbook--defaults"


def test_apply_state_is_restored_and_compared_by_digest(tmp_path):
    from bench import apply_state

    root = tmp_path / "nodes" / "w1" / "root"
    conf = root / "var/lib/kubelet/config.yaml"
    conf.parent.mkdir(parents=True)
    conf.write_text("kind: KubeletConfiguration\n")
    conf.chmod(0o644)
    lab = Lab(tmp_path, {"w1": "127.0.0.1"})
    start = apply_state.read_state(lab)
    conf.chmod(0o600)
    made = root / "etc/sysctl.d/90-kubelet.conf"
    made.parent.mkdir(parents=True)
    made.write_text("kernel.panic = 10\n")
    after = apply_state.read_state(lab)
    assert apply_state.changed_paths(start, after) == sorted([str(conf), str(made)])
    assert apply_state.digest(after) != apply_state.digest(start)
    apply_state.restore_state(start)
    assert apply_state.digest(apply_state.read_state(lab)) == apply_state.digest(start)
    assert not made.exists() and (conf.stat().st_mode & 0o777) == 0o644


def test_the_apply_scenario_is_chosen_on_the_command_line():
    assert parse_args(["--scenario", "apply", "--nodes", "5"]).scenario == "apply"
    assert parse_args([]).scenario == "check"
