"""The fleet (grouped) text view and its helpers: host ranges, roles, identical host groups.

`samples.fleet_run()` is a 50-node fleet of alike nodes (as real fleets are): control planes share one
result set, workers another, and two workers drift on one check.
"""

from __future__ import annotations

import importlib.util
import re

from harden.cis.reports import render
from harden.cis.reports.fleet import compress_hosts, host_roles, identical_host_groups
from harden.cis.results import CheckRun
from support.paths import FIXTURES as FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "reports"
_spec = importlib.util.spec_from_file_location("report_samples", FIXTURES / "sample_runs.py")
samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(samples)


def test_host_ranges_are_compressed_by_prefix_and_padding():
    assert compress_hosts(["cp1", "cp2", "cp3", "w1", "w2", "w7"]) == "cp[1-3] w[1-2,7]"
    assert compress_hosts(["node-01", "node-02", "node-03", "node-10"]) == "node-[01-03,10]"
    assert compress_hosts(["bastion", "w2", "w10", "w11"]) == "bastion w[2,10-11]"
    assert compress_hosts(["a1.dc1", "a2.dc1"]) == "a[1-2].dc1"
    assert compress_hosts(["cp1"]) == "cp1"


def test_roles_come_from_the_checks_decided_on_each_host():
    roles = host_roles(samples.lab_run())      # workers get control-plane checks as SKIP there
    assert roles["cp-1"] == "control-plane" and roles["worker-1"] == "worker"


def test_grouped_text_is_short_for_a_fleet_of_alike_hosts():
    run = samples.fleet_run()
    out = render(run, "text", color=False)
    lines = out.splitlines()
    assert len(lines) < 150, len(lines)
    full = render(run, "text", color=False, by_host=True)
    assert len(full.splitlines()) > 10 * len(lines)       # what it replaces
    assert "50 hosts: 3 control planes, 46 workers" in out


def test_grouped_text_lists_failures_first_with_the_hosts_sharing_them():
    out = render(samples.fleet_run(), "text", color=False)
    fail_lines = [line for line in out.splitlines() if line.startswith("FAIL")]
    warn_lines = [line for line in out.splitlines() if line.startswith("WARN")]
    assert fail_lines and warn_lines
    assert out.index(fail_lines[-1]) < out.index(warn_lines[0])
    line_412 = next(line for line in fail_lines if " 4.1.2 " in line)
    assert line_412.endswith("— w[7,12] (2/49 workers)")
    line_111 = next(line for line in fail_lines if " 1.1.1 " in line)
    assert line_111.endswith("— cp2 (1/3 control planes)")
    # a PASS is counted, never listed per check
    assert not any(line.startswith("PASS   1.") for line in out.splitlines())
    assert re.search(r"^PASS +\d+ checks on every host they apply to, \d+ on some hosts", out,
                     re.M)
    assert re.search(r"^UNREACHABLE +w47: connection timed out after 10s$", out, re.M)


def test_grouped_text_folds_findings_that_differ_only_in_process_ids():
    out = render(samples.fleet_run(), "text", color=False)
    block = out[out.index(" 1.1.1 "):]
    assert "actual:   found on cp2 (running process …)" in block.splitlines()[2]


def test_hosts_with_identical_results_are_one_row():
    groups = identical_host_groups(samples.fleet_run())
    shapes = [(g.role, len(g.hosts), bool(g.failing)) for g in groups]
    assert shapes == [("control-plane", 2, True), ("control-plane", 1, True),
                      ("worker", 44, True), ("worker", 2, True)]
    assert groups[0].hosts == ["cp1", "cp3"] and groups[3].hosts == ["w7", "w12"]
    assert "4.1.2" in groups[3].failing and "4.1.2" not in groups[2].failing
    assert sum(len(g.hosts) for g in groups) == 49      # the unreachable one is not grouped
    out = render(samples.fleet_run(), "text", color=False)
    assert re.search(r"^w\[1-6,8-11,13-46\] +44 workers identical", out, re.M)


def test_one_host_or_by_host_gives_the_full_per_host_view():
    run = samples.fleet_run()
    single = CheckRun(run.benchmark, run.run_id, [r for r in run.results if r.host == "w7"])
    out = render(single, "text", color=False)
    assert "\nw7 ─" in out and "PASS   4.1." in out and "Summary" in out
    by_host = render(run, "text", color=False, by_host=True)
    assert "\ncp1 ─" in by_host and "\nw46 ─" in by_host
