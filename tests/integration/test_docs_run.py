"""The documentation runs as written (issue 13): every shell statement of the README's tour and
every playbook of docs/playbooks.md, on a lab.

The tour runs as one bash script, statement by statement, with the exit code each statement's
comment announces (`# exit N`, else 0); the only substitutions are the lab's place (/tmp/ ->
this test's directory, a free loopback /24, a 1+1 lab instead of 3+2 to save time). The
playbooks run in check mode on the tour's own lab, twice: fresh (the script pauses after its
`lab up`) and after site.yml was applied for real (it pauses after that apply); each must finish
with 0 or 2 (1 would be bad input, 4 a failed host). Check mode writes nothing on the nodes and
the examples keep a journal of their own, so the tour goes on as if they had not run.

The tour's lab and its site.yml apply also judge site.yml on the kubeadm profile (the weak one
is in test_apply_site.py): a check at the fresh pause, and at the hardened pause the API
servers' restarts, a second real apply (it must change nothing, so the tour again goes on as if
it had not run; its journal is its own too) and a check. One lab and one site.yml apply serve
all three claims."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from support.lab_cli import harden
from support.paths import REPO
from support.site import (SiteRun, apply_site, assert_site_hardened, check_json,
                          recap_changed)

pytestmark = pytest.mark.lab

ROOT = REPO
EXIT_NOTE = re.compile(r"#\s*exit (\d+)\b")
STEP = "@@doc-step"
PAUSE = "@@doc-pause"
# Where the tour stops for the playbook examples: after the step each predicate picks.
PAUSES = {"fresh": lambda step: "harden lab up" in step,
          "hardened": lambda step: "playbooks/site.yml" in step and "--check" not in step}


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


def tour_script(tmp: Path, net: str, resume: Path) -> tuple[str, list[str]]:
    """The tour as one bash script; at each pause it names the pause on stderr and waits for
    a line on the `resume` FIFO."""
    text = section((ROOT / "README.md").read_text(), "## A five-minute tour")
    steps = [s for _, info, body in fenced_blocks(text) if info in ("sh", "bash", "shell")
             for s in statements(body)]
    assert steps, "the README tour has no shell block"
    for name, picks in PAUSES.items():
        assert sum(map(picks, steps)) == 1, \
            f"the tour no longer has one step to pause after for the {name!r} examples; " \
            f"teach this test where: {steps}"
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
        for name, picks in PAUSES.items():
            if picks(steps[index]):
                lines += [f"echo '{PAUSE} {name}' >&2", f"read -r _ < '{resume}'"]
    return "\n".join(lines) + "\n", steps


@dataclass
class TourRun:
    """How the tour ended, and the examples' failures at each pause (None: never reached)."""

    returncode: int
    stdout: str
    stderr: str
    steps: list[str]
    examples: dict[str, list[str] | None]
    site: SiteRun
    site_first_changed: dict[str, int] | None    # the tour's own apply, from its RECAP


def run_tour(tmp: Path, net: str) -> TourRun:
    """The tour, with the playbook examples run at its pauses; its lab is always stopped."""
    from harden.lab import cluster

    resume = tmp / "resume"
    os.mkfifo(resume)
    script, steps = tour_script(tmp, net, resume)
    examples: dict[str, list[str] | None] = {name: None for name in PAUSES}
    site = SiteRun("kubeadm", {})
    first_changed = None
    stderr: list[str] = []
    try:
        with open(tmp / "tour-stdout", "w") as out:
            proc = subprocess.Popen(["bash", "-c", script], cwd=ROOT, stdout=out,
                                    stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "COLUMNS": "200"})
            try:
                for line in proc.stderr:
                    stderr.append(line)
                    if line.startswith(PAUSE):
                        name = line.split()[1]
                        if name == "hardened":      # before anything else reaches the lab
                            first_changed = recap_changed((tmp / "tour-stdout").read_text())
                            site.note_api_server_restarts(node_root(tmp))
                        examples[name] = examples_at_pause(tmp, name)
                        (site_before if name == "fresh" else site_after)(tmp, site)
                        with open(resume, "w") as go:
                            go.write("go\n")
                proc.wait(timeout=120)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        if (tmp / "lab" / "lab.json").exists():
            cluster.down(tmp / "lab")
    return TourRun(proc.returncode, (tmp / "tour-stdout").read_text(), "".join(stderr), steps,
                   examples, site, first_changed)


def node_root(tmp: Path):
    """node -> where that tour node's files (its /var/lib/kubelet, ...) live on this machine."""
    return lambda node: tmp / "lab" / "nodes" / node / "root"


def site_before(tmp: Path, site: SiteRun) -> None:
    """At the fresh pause: the lab's hosts, a check, and each API server's pods so far."""
    from harden.lab import cluster

    site.roles = {n["name"]: n["role"] for n in cluster.read_state(tmp / "lab")["nodes"]}
    site.before = check_json(tmp / "lab" / "inventory.ini", tmp / "site-state")
    site.note_pods_before(node_root(tmp))


def site_after(tmp: Path, site: SiteRun) -> None:
    """At the hardened pause, after the examples: a second apply, then a check once every pod
    is ready again."""
    from harden.lab import cluster

    site.second = apply_site(tmp / "lab" / "inventory.ini", tmp / "site-state")
    cluster.wait_ready(tmp / "lab", 30)
    site.after = check_json(tmp / "lab" / "inventory.ini", tmp / "site-state")


def examples_at_pause(tmp: Path, name: str) -> list[str]:
    from harden.lab import cluster

    if name == "fresh":
        cluster.wait_ready(tmp / "lab", 30)
    return run_examples(tmp / "lab" / "inventory.ini", tmp / f"examples-{name}",
                        tmp / "examples-state")


@pytest.fixture(scope="module")
def tour(lab_factory, tmp_path_factory) -> TourRun:
    assert (ROOT / ".venv" / "bin" / "activate").exists(), "the tour starts in a checkout's .venv"
    return run_tour(tmp_path_factory.mktemp("tour"), lab_factory.free_net())


# pytest's default 300 s cut the tour off on a loaded 2-core machine (it took 180-300 s there);
# the first test also runs the tour (with the playbook examples at its pauses)
@pytest.mark.timeout(1500)
def test_the_readme_tour_runs_as_written(tour):
    started = [int(m) for m in re.findall(rf"{STEP} (\d+) start", tour.stderr)]
    last = started[-1] if started else 0
    assert tour.returncode == 0, (
        f"tour step {last + 1} of {len(tour.steps)} failed (exit {tour.returncode}):\n"
        f"{tour.steps[last]}\n--- stdout (tail)\n{tour.stdout[-3000:]}\n"
        f"--- stderr (tail)\n{tour.stderr[-3000:]}")
    assert started == list(range(len(tour.steps)))
    assert "nothing rolled back" not in tour.stderr
    assert "rolled_back" in tour.stdout           # the rollback step restored something


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


def run_examples(inventory: Path, work: Path, state: Path) -> list[str]:
    """Every example in check mode; the failures, with their output."""
    shutil.copytree(ROOT / "playbooks", work, dirs_exist_ok=True)   # import_playbook targets
    variables = work / "example-vars.yml"
    variables.write_text(f"bootstrap_token: {os.urandom(8).hex()}\n"
                         f"encryption_key: {base64.b64encode(os.urandom(32)).decode()}\n")
    failures = []
    for line, body in doc_playbooks():
        path = work / f"playbooks-md-line-{line}.yml"
        path.write_text(body)
        result = harden(state, "apply", "-i", str(inventory), str(path), "--check",
                        "-e", f"@{variables}")
        if result.returncode not in (0, 2):
            failures.append(f"docs/playbooks.md:{line} exit {result.returncode}\n"
                            f"{result.stdout[-1500:]}{result.stderr[-1500:]}")
    return failures


@pytest.mark.timeout(1500)
def test_every_playbook_of_playbooks_md_runs_in_check_mode_before_and_after_site(tour):
    for name, when in (("fresh", "on a fresh kubeadm lab"), ("hardened", "after site.yml")):
        failures = tour.examples[name]
        assert failures is not None, \
            f"the tour ended (exit {tour.returncode}) before its {name!r} pause: see " \
            f"test_the_readme_tour_runs_as_written"
        assert not failures, f"{when}:\n" + "\n".join(failures)


@pytest.mark.timeout(1500)
def test_site_yml_hardens_the_tours_kubeadm_lab_and_is_idempotent(tour):
    assert tour.site.after is not None, \
        f"the tour ended (exit {tour.returncode}) before its 'hardened' pause: see " \
        f"test_the_readme_tour_runs_as_written"
    assert_site_hardened(tour.site, tour.site_first_changed)
