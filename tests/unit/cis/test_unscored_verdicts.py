"""Section 5 (and every unscored automated check): the status is kube-bench's (a failed test of
an unscored check is WARN), and `computed` keeps the test's own FAIL so that reports can tell
such a WARN from a manual item nobody checked. Recorded probes of kubeadm-shaped nodes."""

from __future__ import annotations

import dataclasses
import json

from harden.cis.catalogue import load_catalogue
from harden.cis.evaluate import evaluate_host
from harden.cis.probe import parse_probe_output
from harden.cis.reports import render
from harden.cis.results import CheckRun
from support.paths import FIXTURES

SECTION_5_AUTOMATED = ("5.1.1", "5.1.2", "5.1.3", "5.1.4", "5.1.5", "5.2.1", "5.3.2")


def results(node: str) -> dict:
    facts = parse_probe_output((FIXTURES / "facts" / f"{node}.probe").read_text())
    return {r.id: r for r in evaluate_host(node, facts, load_catalogue())}


def test_a_failed_unscored_test_is_warn_with_computed_fail():
    weak = results("weak-cp")
    for cid in SECTION_5_AUTOMATED:
        assert weak[cid].status == "WARN" and not weak[cid].scored
        assert weak[cid].computed == "FAIL", cid
        assert "kubectl failed" not in weak[cid].actual
    assert weak["5.1.6"].status == "WARN" and weak["5.1.6"].computed is None     # manual
    assert weak["1.1.1"].status == "FAIL" and weak["1.1.1"].computed is None     # scored


def test_a_passed_unscored_test_is_pass_without_computed():
    kubeadm = results("kubeadm-cp")
    assert kubeadm["5.1.2"].status == "PASS" and kubeadm["5.1.2"].computed is None


def test_reports_show_the_computed_verdict():
    weak = list(results("weak-cp").values())
    run = CheckRun("cis-1.12", "r1", weak)
    doc = json.loads(render(run, "json"))
    by_id = {r["id"]: r for r in doc["results"]}
    assert by_id["5.1.1"]["status"] == "WARN" and by_id["5.1.1"]["computed"] == "FAIL"
    assert by_id["5.1.6"]["computed"] is None
    by_host = render(run, "text", color=False, by_host=True)
    line = next(l for l in by_host.splitlines() if " 5.1.1 " in l)
    assert line.split()[0] == "WARN" and "(manual in CIS; its test FAILs)" in line
    assert next(l for l in by_host.splitlines() if " 5.1.6 " in l).endswith("(manual)")
    assert "test:     FAIL (not scored: reported as WARN, as kube-bench does)" in by_host
    twice = CheckRun("cis-1.12", "r2", weak + [dataclasses.replace(r, host="weak-cp2")
                                               for r in weak])
    grouped = " ".join(render(twice, "text", color=False).split())     # lines may wrap
    assert "WARN 5.1.1 cluster-admin is bound only where required" in grouped
    failing = [r.id for r in weak if r.computed]
    assert grouped.count("(its test FAILs; not scored)") == len(failing) >= 7
