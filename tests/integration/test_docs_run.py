"""The documentation runs as written (issue 13): every shell statement of the README's tour and
every playbook of docs/playbooks.md, on a lab.

The tour runs as one bash script, statement by statement, with the exit code each statement's
comment announces (`# exit N`, else 0); the only substitutions are the lab's place (/tmp/ ->
this test's directory, a free loopback /24, a 1+1 lab instead of 3+2 to save time). The
playbooks run in check mode on a fresh kubeadm lab and again after site.yml was applied for
real, and must finish with 0 or 2 (1 would be bad input, 4 a failed host)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support.lab_cli import harden
from support.paths import REPO

pytestmark = pytest.mark.lab

ROOT = REPO
EXIT_NOTE = re.compile(r"#\s*exit (\d+)\b")
STEP = "@@doc-step"


def fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(first line, info string, body) of every ``` block."""
    blocks, current, start, info = [], None, 0, ""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            if current is None:
                current, start, info = [], number + 1, line.strip()[3:].strip()
            else:
                indent = len(line) - len(line.lstrip())
                blocks.append((start, info, "\n".join(l[indent:] for l in current) + "\n"))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else len(text)]


def complete(text: str) -> bool:
    """Whether bash reads `text` as whole commands (no open quote, loop or continuation)."""
    if text.rstrip().endswith("\\"):
        return False
    return subprocess.run(["bash", "-n"], input=text, text=True,
                          capture_output=True).returncode == 0


def statements(block: str) -> list[str]:
    """The block's commands, each with its own comments; comment-only lines between
    commands are explanation and are dropped."""
    out, pending = [], ""
    for line in block.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        if complete(pending):
            out.append(pending)
            pending = ""
    assert not pending, f"unfinished command at the end of a block: {pending!r}"
    return out


def expected_exit(statement: str) -> int:
    notes = EXIT_NOTE.findall(statement)
    return int(notes[-1]) if notes else 0


def tour_script(tmp: Path, net: str) -> tuple[str, list[str]]:
    text = section((ROOT / "README.md").read_text(), "## A five-minute tour")
    steps = [s for _, info, body in fenced_blocks(text) if info in ("sh", "bash", "shell")
             for s in statements(body)]
    assert steps, "the README tour has no shell block"
    lines = ["set -e"]
    for index, step in enumerate(steps):
        step = step.replace("/tmp/", f"{tmp}/")
        step = step.replace("--control-planes 3 --workers 2",
                            f"--control-planes 1 --workers 1 --net {net}")
        assert "lab up" not in step or "--net" in step, \
            f"the tour's `lab up` changed; teach this test its substitution: {step}"
        code = expected_exit(step)
        lines.append(f"echo '{STEP} {index} start' >&2")
        if code == 0:
            lines.append(step)
        else:
            lines += ["set +e", step.rstrip("\n"), "rc=$?", "set -e",
                      f"[ \"$rc\" = {code} ] || {{ echo '{STEP} {index} exit' \"$rc\" "
                      f"'expected {code}' >&2; exit 99; }}"]
    return "\n".join(lines) + "\n", steps


# pytest's default 300 s cut the tour off on a loaded 2-core machine (it took 180-300 s there)
@pytest.mark.timeout(900)
def test_the_readme_tour_runs_as_written(lab_factory, tmp_path):
    from harden.lab import cluster

    assert (ROOT / ".venv" / "bin" / "activate").exists(), "the tour starts in a checkout's .venv"
    script, steps = tour_script(tmp_path, lab_factory.free_net())
    try:
        result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True,
                                text=True, timeout=1500,
                                env={**os.environ, "COLUMNS": "200"})
    finally:
        if (tmp_path / "lab" / "lab.json").exists():
            cluster.down(tmp_path / "lab")
    started = [int(m) for m in re.findall(rf"{STEP} (\d+) start", result.stderr)]
    last = started[-1] if started else 0
    assert result.returncode == 0, (
        f"tour step {last + 1} of {len(steps)} failed (exit {result.returncode}):\n"
        f"{steps[last]}\n--- stdout (tail)\n{result.stdout[-3000:]}\n"
        f"--- stderr (tail)\n{result.stderr[-3000:]}")
    assert started == list(range(len(steps)))
    assert "nothing rolled back" not in result.stderr
    assert "rolled_back" in result.stdout           # the rollback step restored something


def doc_playbooks() -> list[tuple[int, str]]:
    """(line, text) of every fenced YAML block of playbooks.md that is a playbook."""
    found = []
    for line, info, body in fenced_blocks((ROOT / "docs" / "playbooks.md").read_text()):
        if info not in ("yaml", "yml"):
            continue
        data = yaml.safe_load(body)
        if isinstance(data, list) and data and all(
                isinstance(p, dict) and ("hosts" in p or "import_playbook" in p) for p in data):
            found.append((line, body))
    return found


def test_playbooks_md_holds_playbook_examples():
    assert len(doc_playbooks()) >= 12


@pytest.fixture(scope="module")
def doc_lab(lab_factory):
    with lab_factory.running(control_planes=1, workers=1, wait_ready=True) as lab:
        yield lab


def run_examples(lab, work: Path, state: Path) -> list[str]:
    """Every example in check mode; the failures, with their output."""
    shutil.copytree(ROOT / "playbooks", work, dirs_exist_ok=True)   # import_playbook targets
    variables = work / "example-vars.yml"
    variables.write_text(f"bootstrap_token: {os.urandom(8).hex()}\n"
                         f"encryption_key: {base64.b64encode(os.urandom(32)).decode()}\n")
    failures = []
    for line, body in doc_playbooks():
        path = work / f"playbooks-md-line-{line}.yml"
        path.write_text(body)
        result = harden(state, "apply", "-i", str(lab.inventory), str(path), "--check",
                        "-e", f"@{variables}")
        if result.returncode not in (0, 2):
            failures.append(f"docs/playbooks.md:{line} exit {result.returncode}\n"
                            f"{result.stdout[-1500:]}{result.stderr[-1500:]}")
    return failures


def test_every_playbook_of_playbooks_md_runs_in_check_mode_before_and_after_site(doc_lab,
                                                                                tmp_path):
    fresh = run_examples(doc_lab, tmp_path / "fresh", tmp_path)
    site = harden(tmp_path, "apply", "-i", str(doc_lab.inventory),
                  str(ROOT / "playbooks" / "site.yml"), "-e", "harden_wait_interval=0.5")
    assert site.returncode == 0, site.stdout[-3000:] + site.stderr[-3000:]
    hardened = run_examples(doc_lab, tmp_path / "hardened", tmp_path)
    assert not fresh, "on a fresh kubeadm lab:\n" + "\n".join(fresh)
    assert not hardened, "after site.yml:\n" + "\n".join(hardened)
