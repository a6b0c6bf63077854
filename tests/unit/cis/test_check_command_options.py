"""`harden check` options that are refused before any host is contacted (exit 1)."""

from __future__ import annotations

from click.testing import CliRunner

from harden.cli import cli


def _run(tmp_path, monkeypatch, *args):
    monkeypatch.setenv("HARDEN_STATE_DIR", str(tmp_path / "state"))
    inventory = tmp_path / "hosts.ini"
    # an address nothing listens on: reaching it would fail loudly with exit 4, not 1
    inventory.write_text("w1 ansible_host=127.0.0.1 ansible_port=9\n")
    return CliRunner().invoke(cli, ["check", "-i", str(inventory), *args])


def test_fail_on_new_needs_a_baseline(tmp_path, monkeypatch):
    done = _run(tmp_path, monkeypatch, "--fail-on", "new")
    assert done.exit_code == 1
    assert "--fail-on new needs --compare" in done.output


def test_an_unknown_baseline_is_refused_before_contacting_hosts(tmp_path, monkeypatch):
    done = _run(tmp_path, monkeypatch, "--compare", "20260101T000000Z-abcdef")
    assert done.exit_code == 1
    assert "no check run '20260101T000000Z-abcdef' in the journal" in done.output
    done = _run(tmp_path, monkeypatch, "--compare", "last")
    assert done.exit_code == 1 and "no earlier check run of cis-1.12" in done.output


def test_a_baseline_file_that_is_not_a_report_names_the_file(tmp_path, monkeypatch):
    report = tmp_path / "old.json"
    report.write_text('{"results": []}')
    done = _run(tmp_path, monkeypatch, "--compare", str(report))
    assert done.exit_code == 1
    assert "old.json" in done.output and "needs run_id and results" in done.output


def test_an_unknown_benchmark_is_refused_before_contacting_hosts(tmp_path, monkeypatch):
    from harden.cis import run

    contacted = []
    monkeypatch.setattr(run, "connect", lambda spec, *a, **k: contacted.append(spec.host))
    done = _run(tmp_path, monkeypatch, "--benchmark", "cis-0.1")
    assert done.exit_code == 1
    assert "unknown benchmark 'cis-0.1' (known: cis-1.12)" in done.output
    assert contacted == []
