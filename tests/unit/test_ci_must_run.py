"""Under CI=true a lab test that skips is reported as failed (tests/conftest.py)."""

import subprocess
import sys
import textwrap

from support.paths import REPO


def run_pytest(tmp_path, env_ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        import pytest

        @pytest.mark.lab
        def test_needs_a_tool():
            pytest.skip("no such tool")

        def test_plain_skip():
            pytest.skip("fine to skip")
    """))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=", str(tmp_path)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "CI": env_ci}, cwd=tmp_path)


def test_a_skipped_lab_test_fails_under_ci(tmp_path):
    done = run_pytest(tmp_path, "true")
    assert done.returncode == 1, done.stdout
    assert "1 failed, 1 skipped" in done.stdout and "no such tool" in done.stdout


def test_outside_ci_it_stays_a_skip(tmp_path):
    done = run_pytest(tmp_path, "")
    assert done.returncode == 0 and "2 skipped" in done.stdout, done.stdout
