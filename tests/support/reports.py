"""Report fixtures shared by report tests: the sample CheckRuns and the SARIF schema check."""

from __future__ import annotations

import importlib.util
import json

import pytest

from support.paths import FIXTURES

REPORT_FIXTURES = FIXTURES / "reports"


def load_samples():
    """tests/fixtures/reports/sample_runs.py as a module (fixture data, not a test module)."""
    spec = importlib.util.spec_from_file_location("report_samples",
                                                  REPORT_FIXTURES / "sample_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def validate_sarif(doc: dict) -> None:
    """Against the official SARIF 2.1.0 schema (a copy in the fixtures)."""
    jsonschema = pytest.importorskip("jsonschema", reason="test extra: jsonschema")
    schema = json.loads((REPORT_FIXTURES / "sarif-schema-2.1.0.json").read_text())
    validator = jsonschema.Draft4Validator(schema,
                                           format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
    assert errors == []
