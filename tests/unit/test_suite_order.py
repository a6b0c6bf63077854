"""The suite's own scheduling (tests/conftest.py): files collected longest first by the recorded
durations, each file's tests in their own order, and the per-file seconds written back."""

import json
import subprocess
import sys
import textwrap

from support.paths import REPO


def make_suite(tmp_path, durations: dict | None) -> None:
    (tmp_path / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    if durations is not None:
        (tmp_path / "file_durations.json").write_text(json.dumps({"seconds": durations}))
    for name in ("test_a.py", "test_b.py", "test_c.py"):
        (tmp_path / name).write_text(textwrap.dedent("""
            def test_one():
                pass

            def test_two():
                pass
        """))


def pytest_in(tmp_path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "-o", "addopts=", *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **(env or {})}, cwd=tmp_path)


def collected(tmp_path) -> list[str]:
    done = pytest_in(tmp_path, "--collect-only", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_files_are_collected_longest_first_and_keep_their_own_order(tmp_path):
    make_suite(tmp_path, {"test_c.py": 300, "test_b.py": 20})
    assert collected(tmp_path) == ["test_c.py::test_one", "test_c.py::test_two",
                                   "test_b.py::test_one", "test_b.py::test_two",
                                   "test_a.py::test_one", "test_a.py::test_two"]


def test_without_recorded_durations_the_order_is_pytests(tmp_path):
    make_suite(tmp_path, None)
    assert [n.split("::")[0] for n in collected(tmp_path)][::2] == \
        ["test_a.py", "test_b.py", "test_c.py"]


def test_a_run_writes_every_files_seconds_in_the_durations_format(tmp_path):
    make_suite(tmp_path, {"test_b.py": 5})
    out = tmp_path / "out.json"
    done = pytest_in(tmp_path, "-q", env={"HARDEN_FILE_DURATIONS": str(out)})
    assert done.returncode == 0, done.stdout
    assert "slowest 15 test files" in done.stdout
    assert set(json.loads(out.read_text())["seconds"]) == {"test_a.py", "test_b.py", "test_c.py"}
