"""`--format prometheus`: parsed back with prometheus_client's own text-format parser."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime, timezone

import pytest

from harden.cis.reports import render
from harden.cis.results import Changes
from support.reports import load_samples

samples = load_samples()
parser = pytest.importorskip("prometheus_client.parser", reason="test extra: prometheus_client")


def families(text: str) -> dict:
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def test_metrics_parse_and_match_the_results():
    run = dataclasses.replace(samples.lab_run(), seconds=12.5,
                              started_at=datetime(2026, 12, 1, tzinfo=timezone.utc))
    parsed = families(render(run, "prometheus"))
    results = parsed["harden_check_result"].samples
    assert len(results) == len(run.results)
    assert Counter(s.labels["status"] for s in results) == Counter(r.status for r in run.results)
    assert all(s.value == 1 for s in results)
    up = {s.labels["host"]: s.value for s in parsed["harden_check_host_up"].samples}
    assert up["worker-3"] == 0 and up["cp-1"] == 1
    counts = {(s.labels["host"], s.labels["status"]): s.value
              for s in parsed["harden_check_host_results"].samples}
    assert counts[("cp-1", "FAIL")] == sum(r.host == "cp-1" and r.status == "FAIL"
                                           for r in run.results)
    assert parsed["harden_check_run_duration_seconds"].samples[0].value == 12.5
    assert parsed["harden_check_run_timestamp_seconds"].samples[0].value == 1796083200   # 2026-12-01T00:00Z
    assert parsed["harden_check_run_info"].samples[0].labels["run_id"] == run.run_id
    assert "harden_check_new_failures" not in parsed


def test_label_values_with_quotes_and_backslashes_survive():
    run = samples.tricky_run()                        # run id: run-<7>&'"
    run = dataclasses.replace(run, run_id='a"b\\c\nd')
    parsed = families(render(run, "prometheus"))
    assert parsed["harden_check_run_info"].samples[0].labels["run_id"] == 'a"b\\c\nd'


def test_compared_runs_export_new_and_fixed_counts():
    run = dataclasses.replace(samples.tricky_run(), changes=Changes("base", None))
    parsed = families(render(run, "prometheus"))
    assert parsed["harden_check_new_failures"].samples[0].value == 0
    assert parsed["harden_check_fixed_failures"].samples[0].value == 0
