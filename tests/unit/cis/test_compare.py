"""`check --compare`: check runs kept in the journal (statuses only), the changes between two
runs, and how every format and the exit code show them."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import xml.etree.ElementTree as ET

import pytest

from harden.cis.compare import compute_changes, load_baseline, new_scored_failures
from harden.cis.reports import render
from harden.cis.results import CheckRun
from harden.cis.run import exit_code
from harden.errors import InputError
from harden.runs.journal import Journal, latest_check, load_check, record_check
from support.reports import load_samples, validate_sarif

fleet = load_samples()


def broken(run: CheckRun, hosts=("w3", "w5"), check_id="4.1.2", status="FAIL") -> CheckRun:
    """The same run with one check's status changed on some hosts (a new run id)."""
    results = [dataclasses.replace(r, status=status, actual="changed on the node")
               if r.host in hosts and r.id == check_id else r for r in run.results]
    return dataclasses.replace(run, run_id="20261202T000000Z-000002", results=results,
                               changes=None)


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.sqlite")
    yield j
    j.close()


def test_a_check_run_is_journaled_with_statuses_only(journal):
    run = fleet.fleet_run(control_planes=1, workers=3)
    record_check(journal, run, 2)
    stored = load_check(journal, run.run_id)
    assert stored["benchmark"] == "cis-1.12" and stored["unreachable"] == run.unreachable
    assert sorted((r["host"], r["id"], r["status"]) for r in stored["results"]) == \
        sorted((r.host, r.id, r.status) for r in run.results)
    dump = "\n".join(sqlite3.connect(journal.path).iterdump())
    assert "found on w1" not in dump and "running process" not in dump    # no node content
    row = journal.runs(5)[0]
    assert row["id"] == run.run_id and row["command"] == "check cis-1.12"
    assert row["hosts"] == 5 and row["exit_code"] == 2


def test_a_check_run_is_journaled_in_one_commit(journal):
    run = fleet.fleet_run(control_planes=1, workers=3)
    statements: list[str] = []
    journal._db.set_trace_callback(statements.append)
    record_check(journal, run, 2)
    journal._db.set_trace_callback(None)
    assert [s for s in statements if s in ("BEGIN", "COMMIT")] == ["BEGIN", "COMMIT"]
    assert len(load_check(journal, run.run_id)["results"]) == len(run.results)


def test_a_check_run_that_cannot_be_journaled_leaves_nothing(journal):
    run = fleet.fleet_run(control_planes=1, workers=1)
    run.results[-1] = dataclasses.replace(run.results[-1], id=object())   # cannot be bound
    with pytest.raises(sqlite3.Error):
        record_check(journal, run, 2)
    assert load_check(journal, run.run_id) is None and journal.runs(5) == []


def test_compare_last_picks_the_newest_earlier_run_of_the_same_benchmark(journal):
    first = fleet.fleet_run(control_planes=1, workers=3)
    record_check(journal, first, 2)
    other = dataclasses.replace(first, benchmark="cis-1.11", run_id="other")
    record_check(journal, other, 2)
    assert latest_check(journal, "cis-1.12") == first.run_id
    assert load_baseline("last", "cis-1.12", journal)["run_id"] == first.run_id
    with pytest.raises(InputError, match="checked cis-1.11, this one checks cis-1.12"):
        load_baseline("other", "cis-1.12", journal)
    with pytest.raises(InputError, match="no check run 'nope' in the journal"):
        load_baseline("nope", "cis-1.12", journal)


def test_changes_name_exactly_the_new_and_fixed_failures_and_hosts(journal):
    before = fleet.fleet_run(control_planes=1, workers=6, drifted=())
    record_check(journal, before, 2)
    after = broken(before)
    after.changes = compute_changes(load_baseline(before.run_id, "cis-1.12", journal), after)
    assert [(c.host, c.id, c.before, c.after) for c in after.changes.new_failures] == \
        [("w3", "4.1.2", "PASS", "FAIL"), ("w5", "4.1.2", "PASS", "FAIL")]
    assert after.changes.fixed == [] and after.changes.hosts_added == []
    assert new_scored_failures(after.changes, after)
    assert exit_code(after, "new") == 4          # the unreachable host still counts
    reachable = dataclasses.replace(after, unreachable={})
    assert exit_code(reachable, "new") == 2
    # fixing it again: fixed, nothing new, --fail-on new passes while old FAILs remain
    record_check(journal, after, 2)
    again = broken(after, status="PASS")
    again.changes = compute_changes(load_baseline(after.run_id, "cis-1.12", journal), again)
    assert [(c.host, c.id) for c in again.changes.fixed] == [("w3", "4.1.2"), ("w5", "4.1.2")]
    assert again.changes.new_failures == []
    quiet = dataclasses.replace(again, unreachable={})
    assert exit_code(quiet, "new") == 0 and exit_code(quiet, "any") == 2


def test_hosts_added_and_removed_and_their_failures_are_not_new():
    before = fleet.fleet_run(control_planes=1, workers=3, drifted=())
    baseline = json.loads(render(before, "json"))
    after = dataclasses.replace(fleet.fleet_run(control_planes=1, workers=4, drifted=("w4",)),
                                unreachable={})
    after.results = [r for r in after.results if r.host != "w1"]
    changes = compute_changes(_baseline_from_json(baseline, tmp=None), after)
    assert changes.hosts_added == ["w4"] and changes.hosts_removed == ["w1", "w47"]
    assert all(c.host != "w4" for c in changes.new_failures)


def _baseline_from_json(doc, tmp):
    return {"run_id": doc["run_id"], "started": None, "unreachable": doc["unreachable"],
            "results": [{"host": r["host"], "id": r["id"], "status": r["status"],
                         "scored": r["scored"], "title": r["title"]} for r in doc["results"]]}


def test_a_json_report_file_is_a_baseline(tmp_path):
    before = fleet.fleet_run(control_planes=1, workers=4, drifted=())
    path = tmp_path / "yesterday.json"
    path.write_text(render(before, "json"))
    after = broken(before)
    after.changes = compute_changes(load_baseline(str(path), "cis-1.12", None), after)
    assert {(c.host, c.id) for c in after.changes.new_failures} == {("w3", "4.1.2")}
    bad = tmp_path / "bad.json"
    bad.write_text('{"run_id": "x",\n "results": [1, }')
    with pytest.raises(InputError) as exc:
        load_baseline(str(bad), "cis-1.12", None)
    assert "bad.json" in str(exc.value) and ":2" in str(exc.value)


def _compared_run():
    before = fleet.fleet_run(control_planes=1, workers=6, drifted=("w6",))
    after = broken(before)
    after.results = [r for r in after.results if r.host != "w6" or r.id != "4.1.2"] + \
        [dataclasses.replace(r, status="PASS") for r in after.results
         if r.host == "w6" and r.id == "4.1.2"]
    baseline = _baseline_from_json(json.loads(render(before, "json")), None)
    after.changes = compute_changes(baseline, after)
    return after


def test_every_format_shows_the_changes():
    run = _compared_run()
    text = render(run, "text", color=False)
    block = text[text.index("Changes since"):text.index("\n\n", text.index("Changes since"))]
    assert "NEW   4.1.2" in block and "— w[3,5]" in block
    assert "FIXED 4.1.2" in block and "— w6" in block
    doc = json.loads(render(run, "json"))
    assert [(c["host"], c["id"]) for c in doc["changes"]["new_failures"]] == \
        [("w3", "4.1.2"), ("w5", "4.1.2")]
    assert [(c["host"], c["before"], c["after"]) for c in doc["changes"]["fixed"]] == \
        [("w6", "FAIL", "PASS")]
    sarif = json.loads(render(run, "sarif"))
    states = {(r["properties"]["host"], r["ruleId"]): r["baselineState"]
              for r in sarif["runs"][0]["results"]}
    assert states[("w3", "4.1.2")] == "new" and states[("w6", "4.1.2")] == "updated"
    assert states[("w1", "4.1.2")] == "unchanged"
    validate_sarif(sarif)
    plain = dataclasses.replace(run, changes=None)
    assert render(run, "junit") == render(plain, "junit")       # JUnit has no notion of it
    ET.fromstring(render(run, "junit"))


def test_a_scored_error_is_a_finding_and_new_when_it_appears():
    """ERROR: the component would refuse its command line, so none of its flags hold."""
    base = fleet.fleet_run(control_planes=1, workers=3)
    clean = dataclasses.replace(base, unreachable={}, results=[
        r for r in base.results if r.status not in ("FAIL", "ERROR")])
    refused = broken(clean, hosts=("w1",), check_id="4.2.1", status="ERROR")
    assert exit_code(clean) == 0 and exit_code(refused) == 2
    changes = compute_changes(json.loads(render(clean, "json")), refused)
    assert [(c.host, c.id, c.after) for c in changes.new_failures] == [("w1", "4.2.1", "ERROR")]
    assert exit_code(dataclasses.replace(refused, changes=changes), "new") == 2
