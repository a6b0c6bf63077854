"""Benchmark `harden check` against the SSH floor and ansible-core running the same audit.

For each lab size: start a lab (one control plane per five nodes), wait until it is ready, then
run every tool `--repeat` times, interleaved (tool order inside each round) so that load from
other work on the machine spreads over all tools instead of landing on one. Results go to
bench/results/<timestamp>/results.md (+ results.json, + one log per run). See bench/README.md.
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script: bench/run.py

from bench.measure import (Sample, Summary, deltas, idle_cores, snapshot,  # noqa: E402
                           sshd_listeners, summarize, timed_run, tree_cpu_seconds)
from bench.report import load_line, machine_facts, table  # noqa: E402
from bench.tools import (APPLY_HARDEN, APPLY_TOOLS, FLOOR, HARDEN, TOOLS, Lab,  # noqa: E402
                         Tool, ensure_ansible, openssh_floor)
from bench import apply_state  # noqa: E402
from harden.errors import HardenError  # noqa: E402
from harden.lab import cluster  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REAP_SECONDS = 0.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=node_counts, default=[5, 20, 50],
                        help="lab sizes, comma-separated (default 5,20,50)")
    parser.add_argument("--repeat", type=positive, default=3,
                        help="timed runs per tool and size; the table shows the median (default 3)")
    parser.add_argument("--ansible-repeat", type=positive, default=1,
                        help="timed runs of each Ansible variant per size (default 1: one run "
                             "takes minutes at 50 nodes on 2 cores, and its gap to harden dwarfs "
                             "its run-to-run spread)")
    parser.add_argument("--ansible-defaults-up-to", type=int, default=5, metavar="N",
                        help="run Ansible with default settings (no pipelining, about 3x slower "
                             "than with it) only on labs of at most N nodes (default 5)")
    parser.add_argument("--forks", type=positive, default=20,
                        help="hosts worked on at once, the same for every tool (default 20)")
    parser.add_argument("--skip-ansible", action="store_true", help="only the floors and harden")
    parser.add_argument("--scenario", choices=("check", "apply"), default="check",
                        help="check: the CIS audit (default); apply: bench/ansible/site.yml "
                             "applied by harden and by ansible-playbook (pipelining), each run "
                             "from the same unhardened nodes, both ending in the same state")
    parser.add_argument("--tools", type=tool_keys, default=None, metavar="KEY,...",
                        help="run only these (the OpenSSH floor always runs: every ratio is to "
                             f"it): {', '.join(t.key for t in TOOLS)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="results directory (default bench/results/<UTC timestamp>)")
    parser.add_argument("--net", default=None, metavar="127.A.B",
                        help="loopback /24 for the labs (default: a free one, picked per lab)")
    return parser.parse_args(argv)


def node_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated node counts, got {text!r}")
    if not counts or any(not 1 <= n <= 240 for n in counts):
        raise argparse.ArgumentTypeError("node counts must be between 1 and 240")
    return counts


def tool_keys(text: str) -> set[str]:
    keys = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(keys - {t.key for t in TOOLS})
    if not keys or unknown:
        raise argparse.ArgumentTypeError(f"unknown tool {', '.join(unknown) or text!r}; choose "
                                         f"from {', '.join(t.key for t in TOOLS)}")
    return keys


def selected_tools(args: argparse.Namespace) -> list[Tool]:
    """The tools of this run, in the table's order; the floor always (ratios are to it). The
    apply scenario has its own two (harden apply and ansible-playbook)."""
    if getattr(args, "scenario", "check") == "apply":
        return [t for t in APPLY_TOOLS if not (args.skip_ansible and t.is_ansible)]
    return [t for t in TOOLS if not (args.skip_ansible and t.is_ansible)
            and (args.tools is None or t.key in args.tools or t.name == FLOOR)]


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def lab_shape(nodes: int) -> tuple[int, int]:
    """(control planes, workers): one control plane per five nodes, at least one."""
    control_planes = max(1, nodes // 5)
    return control_planes, nodes - control_planes


def planned_runs(tool: Tool, nodes: int, args: argparse.Namespace) -> int:
    """How often a tool runs on a lab of this size (0: not at this size)."""
    if not tool.is_ansible:
        return args.repeat
    if tool.costly and nodes > args.ansible_defaults_up_to:
        return 0
    return args.ansible_repeat


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _raise_interrupt(signum, frame):   # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt


# --- one lab size ----------------------------------------------------------------------------

def start_lab(lab_dir: Path, nodes: int, net: str | None) -> tuple[Lab, list[int]]:
    """A ready lab and its supervisors' pids (for its CPU figures)."""
    control_planes, workers = lab_shape(nodes)
    state = cluster.up(lab_dir, control_planes=control_planes, workers=workers, net=net)
    lab = Lab(lab_dir, {node["name"]: node["address"] for node in state["nodes"]})
    cluster.wait_ready(lab_dir, timeout=30 + nodes)
    return lab, [node["supervisor_pid"] for node in state["nodes"]]


def stop_lab(lab_dir: Path) -> None:
    """Stop the lab's nodes (only those it recorded) and remove its files."""
    try:
        cluster.down(lab_dir)
    except HardenError as exc:         # no lab.json: `up` failed and already stopped its nodes
        log(f"lab down: {exc}")
    shutil.rmtree(lab_dir, ignore_errors=True)


def measure_once(tool: Tool, lab: Lab, forks: int, log_path: Path, listeners: list[int],
                 start_state: dict | None = None) -> Sample:
    """One timed run, with the SSH logins, execs and CPU the nodes' sshd saw during it.

    The node figures are read after the tool's clean-up (Ansible's persistent SSH masters hold
    sessions open until then) and a moment for sshd to reap the sessions that just ended.
    """
    if start_state is not None:
        apply_state.restore_state(start_state)     # every apply starts from the same nodes
    invocation = tool.invocation(lab, forks)
    before, cpu_before = snapshot(lab.sshd_logs()), tree_cpu_seconds(listeners)
    try:
        sample = timed_run(invocation.argv, env=invocation.env, stdin=invocation.stdin,
                           log_path=log_path)
    finally:
        invocation.cleanup()
    time.sleep(REAP_SECONDS)
    sample.node_cpu_seconds = tree_cpu_seconds(listeners) - cpu_before
    sample.per_host_execs, sample.per_host_logins = deltas(before, snapshot(lab.sshd_logs()))
    return sample


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


@dataclass
class SizeResult:
    nodes: int
    summaries: list[Summary]
    runs: dict[str, int]
    background_cores: float
    end_states: dict[str, str] | None = None   # apply: tool -> digest of the state it left
    changed_paths: int = 0                     # apply: paths one run changes


def bench_size(nodes: int, args: argparse.Namespace, tools: list[Tool], logs: Path) -> SizeResult:
    """Start a lab of this size, run every tool on it, and always tear it down again."""
    log(f"{nodes} nodes: starting the lab")
    lab_dir = Path(tempfile.mkdtemp(prefix="hb-lab-"))
    try:
        lab, supervisors = start_lab(lab_dir, nodes, args.net)
        background = idle_cores(supervisors)
        listeners = sshd_listeners(supervisors)
        if len(listeners) != nodes:
            raise HardenError(f"found {len(listeners)} sshd listeners for {nodes} lab nodes")
        log(f"{nodes} nodes: lab ready in {lab.dir}; the idle lab keeps {background:.2f} cores "
            f"busy; load average {load_line()}")
        warm_up = openssh_floor(lab, args.forks)       # first logins pay for cold caches
        timed_run(warm_up.argv, stdin=warm_up.stdin)
        runs = {t.name: planned_runs(t, nodes, args) for t in tools}
        start = apply_state.read_state(lab) if args.scenario == "apply" else None
        ends: dict[str, str] = {}
        samples = run_rounds(lab, listeners, tools, runs, args.forks, logs, start, ends)
        changed = 0
        if start is not None:
            changed = len(apply_state.changed_paths(start, apply_state.read_state(lab)))
            apply_state.restore_state(start)
        return SizeResult(nodes, [summarize(t.name, samples[t.name], t.ok_codes)
                                  for t in tools if samples[t.name]], runs, background,
                          ends or None, changed)
    finally:
        log(f"{nodes} nodes: tearing the lab down")
        stop_lab(lab_dir)


def run_rounds(lab: Lab, listeners: list[int], tools: list[Tool], runs: dict[str, int],
               forks: int, logs: Path, start: dict | None = None,
               ends: dict[str, str] | None = None) -> dict[str, list[Sample]]:
    """Round after round, each tool once, until every tool has had its runs. With a start
    state (apply), each run begins from it and the state it leaves is recorded per tool."""
    samples: dict[str, list[Sample]] = {t.name: [] for t in tools}
    nodes = len(lab.addresses)
    for round_number in range(1, max(runs.values()) + 1):
        for tool in (t for t in tools if round_number <= runs[t.name]):
            sample = measure_once(tool, lab, forks,
                                  logs / f"n{nodes}-{slug(tool.name)}-r{round_number}.log",
                                  listeners, start)
            samples[tool.name].append(sample)
            if start is not None and ends is not None:
                left = apply_state.digest(apply_state.read_state(lab))
                if ends.setdefault(tool.name, left) != left:
                    ends[tool.name] = "differs between runs"
            log(f"{nodes} nodes, round {round_number}: {tool.name}: {sample.seconds:.2f}s"
                + ("" if sample.returncode in tool.ok_codes else
                   f" FAILED (exit {sample.returncode}, see the log)"))
    return samples


# --- results ---------------------------------------------------------------------------------

def write_results(out: Path, header: list[str], sections: list[str], raw: dict) -> None:
    (out / "results.md").write_text("\n".join(header) + "\n" + "\n".join(sections))
    (out / "results.json").write_text(json.dumps(raw, indent=1))


def results_header(args: argparse.Namespace, stamp: str, ansible_version: str | None) -> list[str]:
    plan = (f"Run {stamp}: nodes {','.join(map(str, args.nodes))}, forks {args.forks}, "
            f"{args.repeat} runs per tool and size")
    if ansible_version:
        plan += (f"; Ansible variants {args.ansible_repeat} run(s) per size, the one with default "
                 f"settings only up to {args.ansible_defaults_up_to} nodes")
    return (["# harden benchmark results", "", plan + ".", "", "Machine:", ""]
            + [f"- {fact}" for fact in machine_facts(ansible_version)]
            + [f"- load average at start: {load_line()}", ""])


def compile_harden() -> None:
    """Write harden's bytecode before any timed run, as `pip install` does (and Ansible's pip
    install did): a checkout's editable install has none, and with PYTHONDONTWRITEBYTECODE
    set every run would compile harden's modules again (about 0.1 s of CPU per run), which
    no installed harden pays."""
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "harden"), quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or RESULTS_DIR / stamp
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    tools = selected_tools(args)
    compile_harden()
    ansible_version = ensure_ansible(log) if any(t.is_ansible for t in tools) else None
    header = results_header(args, stamp, ansible_version)
    sections: list[str] = []
    raw: dict = {"stamp": stamp, "args": {k: str(v) for k, v in vars(args).items()}, "sizes": {}}
    started = time.monotonic()
    differed = []           # apply: sizes where the tools left different node states
    try:
        for nodes in args.nodes:
            result = bench_size(nodes, args, tools, logs)
            sections.append(table(nodes, lab_shape(nodes)[0], result.runs, result.summaries,
                                  FLOOR, APPLY_HARDEN if args.scenario == "apply" else HARDEN,
                                  result.background_cores))
            if result.end_states:
                same = len(set(result.end_states.values())) == 1 and \
                    "differs between runs" not in result.end_states.values()
                if not same:
                    differed.append(nodes)
                sections.append(f"Apply: each run changed {result.changed_paths} paths; every "
                                f"tool left the same node state: {'yes' if same else 'NO'} "
                                f"({', '.join(f'{k}: {v[:12]}' for k, v in result.end_states.items())}).\n")
            raw["sizes"][str(nodes)] = asdict(result)
            write_results(out, header, sections, raw)
    except KeyboardInterrupt:
        log("interrupted; labs are down, partial results kept")
        return 130
    except HardenError as exc:
        log(f"error: {exc}; labs are down, partial results kept")
        return 1
    sections.append(f"Load average at end: {load_line()}; whole run "
                    f"{time.monotonic() - started:.0f} s.\n")
    write_results(out, header, sections, raw)
    print((out / "results.md").read_text())
    log(f"results in {out}")
    if differed:    # not the same work: the figures compare nothing
        log(f"error: the tools left different node states at {differed} nodes")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
