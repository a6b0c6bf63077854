"""Report formats rendered from fixture CheckRuns: text, json, junit, sarif (html has its own file).

`tricky_run` has hand-counted statuses, so the expected numbers below are written out rather
than recomputed; `lab_run` is large and shuffled, and is checked against independent counts.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import random
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import datetime, timezone

import pytest

from harden.errors import InputError
from harden.cis.reports import FORMATS, render
from harden.cis.results import STATUSES
from support.paths import FIXTURES as FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "reports"
_spec = importlib.util.spec_from_file_location("report_samples", FIXTURES / "sample_runs.py")
samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(samples)

PINNED = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
ANSI = "\x1b["


def reshuffled(run, seed):
    results = list(run.results)
    random.Random(seed).shuffle(results)
    return dataclasses.replace(run, results=results)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_and_is_independent_of_arrival_order(fmt):
    run = samples.lab_run()
    first = render(run, fmt, color=False, generated_at=PINNED)
    again = render(reshuffled(run, 99), fmt, color=False, generated_at=PINNED)
    assert first and first == again


def test_unknown_format_is_an_input_error():
    with pytest.raises(InputError, match="unknown report format 'xml'.*text, json"):
        render(samples.tricky_run(), "xml")


# ---- text ---------------------------------------------------------------------------------

def test_text_without_terminal_has_no_colour_codes_and_keeps_brackets_literal():
    out = render(samples.tricky_run(), "text", color=False, by_host=True)
    assert ANSI not in out
    assert "[bold]EventRateLimit[/bold] <script>" in out   # not eaten as rich markup


def test_text_colour_can_be_forced():
    assert ANSI in render(samples.tricky_run(), "text", color=True)


def test_text_colour_follows_no_color_and_force_color(monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    assert ANSI not in render(samples.tricky_run(), "text")
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert ANSI in render(samples.tricky_run(), "text")


def _host_block(out: str, host: str) -> str:
    start = out.index(f"\n{host} ─")
    end = out.index("\nSummary")
    nxt = [out.index(f"\n{h} ─") for h in ("cp-2", "cp-10", "worker-1") if f"\n{h} ─" in out
           and out.index(f"\n{h} ─") > start]
    return out[start:min(nxt, default=end)]


def test_text_groups_by_host_then_section_with_remediation_under_fail_only():
    out = render(samples.tricky_run(), "text", color=False, by_host=True)
    assert out.index("\ncp-2 ─") < out.index("\ncp-10 ─") < out.index("\nworker-1 ─")
    cp10 = _host_block(out, "cp-10")
    assert cp10.index("1.1 Control Plane") < cp10.index("1.2 API Server")
    assert cp10.index("1.2.9") < cp10.index("1.2.15")
    fail_part = cp10[cp10.index("FAIL   1.2.15"):]
    assert "fix:" in fail_part and "Set --profiling=false." in fail_part
    assert "drift:" in fail_part and "process runs with true" in fail_part
    warn_part = cp10[cp10.index("WARN"):cp10.index("FAIL   1.2.15")]
    assert "(manual)" in warn_part and "fix:" not in warn_part
    cp2 = _host_block(out, "cp-2")
    assert "then wait for the kubelet" in cp2          # multi-line remediation kept whole
    assert cp2.count("fix:") == 1                       # one FAIL on cp-2



def test_text_says_once_when_a_whole_section_is_skipped_for_one_reason():
    out = render(samples.lab_run(), "text", color=False, by_host=True)
    worker = out[out.index("\nworker-1 ─"):out.index("\nworker-2 ─")]
    assert "SKIP   all 25 checks: not a control-plane node" in worker
    assert "1.2.15" not in worker and "PASS   4.1.1" in worker
    single = render(samples.tricky_run(), "text", color=False, by_host=True)
    assert "SKIP   4.2.1" in single                     # a lone SKIP keeps its own line

def test_text_summary_counts_and_flags_unreachable():
    out = render(samples.tricky_run(), "text", color=False, by_host=True)
    summary = out[out.index("\nSummary"):]
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:7]]
            for line in summary.splitlines() if line.startswith("│") and line.split("│")[1].strip()}
    assert rows["cp-2"] == ["1", "1", "0", "1", "1"]
    assert rows["cp-10"] == ["1", "1", "1", "0", "0"]
    assert rows["total"] == ["2", "2", "1", "1", "1"]
    assert "UNREACHABLE: authentication failed" in summary
    assert "UNREACHABLE" in _host_block(out, "worker-1")


# ---- json ---------------------------------------------------------------------------------

def test_json_follows_the_design_contract():
    doc = json.loads(render(samples.tricky_run(), "json"))
    assert list(doc)[:4] == ["benchmark", "run_id", "results", "summary"]
    assert doc["benchmark"] == "cis-1.12" and doc["run_id"] == "run-<7>&'\""
    contract = ["host", "id", "title", "status", "scored", "expected", "actual", "remediation"]
    for item in doc["results"]:
        assert list(item)[:8] == contract
        assert item["status"] in STATUSES and isinstance(item["scored"], bool)
    order = [(r["host"], r["id"]) for r in doc["results"]]
    assert order == [("cp-2", "1.1.1"), ("cp-2", "1.2.9"), ("cp-2", "1.2.15"), ("cp-2", "4.2.1"),
                     ("cp-10", "1.1.1"), ("cp-10", "1.2.9"), ("cp-10", "1.2.15")]
    assert doc["results"][6]["drift"] == "manifest says false, process runs with true"
    assert doc["summary"] == {
        "cp-2": {"PASS": 1, "FAIL": 1, "WARN": 0, "SKIP": 1, "ERROR": 1, "UNREACHABLE": 0},
        "cp-10": {"PASS": 1, "FAIL": 1, "WARN": 1, "SKIP": 0, "ERROR": 0, "UNREACHABLE": 0},
        "worker-1": {"PASS": 0, "FAIL": 0, "WARN": 0, "SKIP": 0, "ERROR": 0, "UNREACHABLE": 1},
    }
    assert doc["unreachable"] == {"worker-1": "authentication failed (publickey) <labops>"}


def test_json_summary_matches_results_on_a_large_run():
    run = samples.lab_run()
    doc = json.loads(render(run, "json"))
    assert len(doc["results"]) == len(run.results)
    counted = Counter((r.host, r.status) for r in run.results)
    for host, counts in doc["summary"].items():
        for status in STATUSES:
            assert counts[status] == counted[(host, status)], (host, status)


# ---- junit --------------------------------------------------------------------------------

def _suites(xml_text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml_text)
    assert root.tag == "testsuites"
    return {suite.get("name"): suite for suite in root.findall("testsuite")}


def test_junit_counts_and_outcomes_per_host():
    suites = _suites(render(samples.tricky_run(), "junit"))
    assert list(suites) == ["cp-2", "cp-10", "worker-1"]
    attrs = {name: {k: s.get(k) for k in ("tests", "failures", "errors", "skipped")}
             for name, s in suites.items()}
    assert attrs["cp-2"] == {"tests": "4", "failures": "1", "errors": "1", "skipped": "1"}
    assert attrs["cp-10"] == {"tests": "3", "failures": "1", "errors": "0", "skipped": "1"}
    assert attrs["worker-1"] == {"tests": "1", "failures": "0", "errors": "1", "skipped": "0"}

    cases = {c.get("name"): c for c in suites["cp-10"].findall("testcase")}
    fail = cases["1.2.15 title of 1.2.15"]
    assert fail.get("classname") == "cp-10.API Server"
    failure = fail.find("failure")
    assert failure.get("message") == "--profiling is not set"
    assert "expected: --profiling is 'false'" in failure.text
    assert "remediation: Set --profiling=false." in failure.text
    assert "drift: manifest says false" in failure.text
    warn = cases["1.2.9 title of 1.2.9"].find("skipped")
    assert warn.get("message").startswith("WARN: needs review: [bold]EventRateLimit")
    assert cases["1.1.1 title of 1.1.1"].find("failure") is None      # PASS
    cp2 = {c.get("name"): c for c in suites["cp-2"].findall("testcase")}
    assert cp2["4.2.1 title of 4.2.1"].find("skipped") is not None
    assert cp2["1.2.9 title of 1.2.9"].find("error") is not None
    unreachable = suites["worker-1"].find("testcase/error")
    assert "authentication failed (publickey) <labops>" in unreachable.get("message")


def test_junit_totals_on_a_large_run():
    run = samples.lab_run()
    root = ET.fromstring(render(run, "junit"))
    statuses = Counter(r.status for r in run.results)
    assert int(root.get("tests")) == len(run.results) + len(run.unreachable)
    assert int(root.get("failures")) == statuses["FAIL"]
    assert int(root.get("errors")) == statuses["ERROR"] + len(run.unreachable)
    assert len(root.findall("testsuite/testcase")) == int(root.get("tests"))
    assert len(root.findall(".//skipped")) == statuses["SKIP"] + statuses["WARN"]


def test_junit_survives_control_characters_from_a_node():
    run = samples.tricky_run()
    run.results[0].actual = "bad\x00byte\x1b[31m"
    ET.fromstring(render(run, "junit"))


@pytest.mark.parametrize("make_run", [samples.tricky_run, samples.lab_run])
def test_junit_validates_against_the_surefire_schema(make_run):
    xmlschema = pytest.importorskip("xmlschema", reason="test extra: xmlschema")
    schema = xmlschema.XMLSchema(str(FIXTURES / "junit-10.xsd"))
    schema.validate(render(make_run(), "junit"))


# ---- sarif --------------------------------------------------------------------------------

def _validate_sarif(doc: dict) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="test extra: jsonschema")
    schema = json.loads((FIXTURES / "sarif-schema-2.1.0.json").read_text())
    validator = jsonschema.Draft4Validator(schema,
                                           format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []


@pytest.mark.parametrize("make_run", [samples.tricky_run, samples.lab_run])
def test_sarif_validates_against_the_official_schema(make_run):
    _validate_sarif(json.loads(render(make_run(), "sarif", generated_at=PINNED)))


def test_sarif_rules_results_and_locations():
    doc = json.loads(render(samples.tricky_run(), "sarif", generated_at=PINNED))
    assert doc["version"] == "2.1.0" and len(doc["runs"]) == 1
    run = doc["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "harden" and driver["version"]
    rules = driver["rules"]
    assert [r["id"] for r in rules] == ["1.1.1", "1.2.9", "1.2.15", "4.2.1"]
    assert rules[1]["properties"]["scored"] is False
    assert rules[1]["defaultConfiguration"]["level"] == "warning"
    assert rules[0]["help"]["text"].startswith("chmod 600")    # cp-2's wording (first host)
    assert rules[2]["shortDescription"]["text"] == "title of 1.2.15"

    by_key = {(r["locations"][0]["logicalLocations"][0]["name"], r["ruleId"]): r
              for r in run["results"]}
    assert len(by_key) == 7
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    kinds = {key: (r["kind"], r["level"]) for key, r in by_key.items()}
    assert kinds[("cp-10", "1.2.15")] == ("fail", "error")
    assert kinds[("cp-10", "1.2.9")] == ("fail", "warning")
    assert kinds[("cp-10", "1.1.1")] == ("pass", "none")
    assert kinds[("cp-2", "4.2.1")] == ("notApplicable", "none")
    assert kinds[("cp-2", "1.2.9")] == ("open", "none")
    assert "drift: manifest says false" in by_key[("cp-10", "1.2.15")]["message"]["text"]
    artifact = by_key[("cp-2", "1.1.1")]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact["uri"] == "file://cp-2/etc/kubernetes/manifests/kube-apiserver.yaml"
    artifact = by_key[("cp-10", "1.2.15")]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact["uri"] == "file://cp-10/etc/kubernetes/manifests/kube-apiserver.yaml"
    assert "physicalLocation" not in by_key[("cp-2", "1.2.15")]["locations"][0]   # process only

    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["endTimeUtc"] == "2026-11-26T12:00:00Z"
    [note] = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and "worker-1: unreachable" in note["message"]["text"]


def test_sarif_run_without_unreachable_hosts_is_successful():
    run = dataclasses.replace(samples.tricky_run(), unreachable={})
    invocation = json.loads(render(run, "sarif"))["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is True
    assert invocation["toolExecutionNotifications"] == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_run_where_every_host_was_unreachable_still_renders(fmt):
    run = dataclasses.replace(samples.tricky_run(), results=[])
    out = render(run, fmt, color=False)
    assert "worker-1" in out and "authentication failed" in out
