"""Shared fixtures. Lab fixtures start real sshd nodes (see harden.lab) and always stop them.

`lab_factory` (session) starts labs on their own loopback /24s: one random 127.A.* per test
session (so parallel sessions and xdist workers don't meet), a fresh B per lab, each checked
to have no listener. `lab3` (module) is a ready 2-control-plane + 1-worker kubeadm lab.

Scheduling: `make test` runs files on 2 xdist workers (--dist loadfile), and a long file started
last leaves the other worker idle until it ends. Test files are therefore collected longest
first, by the per-file seconds recorded in tests/file_durations.json (a file not listed there
counts as 0 and keeps its place); the summary lists the slowest files of the run, and
HARDEN_FILE_DURATIONS=PATH writes every file's seconds in that file's format, to refresh it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LAB_TOOLS = ("/usr/sbin/sshd", "unshare", "ssh", "sudo", "openssl")


def lab_skip_reason() -> str | None:
    """Why lab tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "lab tests need root (namespaces, bind mounts, sshd on port 22)"
    missing = [tool for tool in LAB_TOOLS if not shutil.which(tool)]
    if missing:
        return f"lab tests need {', '.join(missing)} (make syspkgs installs them)"
    return None


@dataclass
class Lab:
    """A running lab as tests see it: paths, addresses, and an ssh runner (the plain client)."""

    dir: Path
    net: str
    profile: str
    nodes: dict[str, str]                       # name -> address
    roles: dict[str, str] = field(default_factory=dict)
    running: bool = True

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.ini"

    @property
    def sudo_inventory(self) -> Path:
        return self.dir / "inventory-sudo.ini"

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def become_password(self) -> str:
        return (self.dir / "become-password").read_text().strip()

    def node_root(self, node: str) -> Path:
        """Where the node's private files (its /etc/kubernetes, ...) live on this machine."""
        return self.dir / "nodes" / node / "root"

    def names(self, role: str | None = None) -> list[str]:
        return [n for n in self.nodes if role is None or self.roles[n] == role]

    def ssh_argv(self, node: str, user: str = "root") -> list[str]:
        return ["ssh", "-F", "/dev/null", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", f"{user}@{self.nodes[node]}"]

    def ssh(self, node: str, command: str, *, user: str = "root", stdin: str | None = None,
            check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        result = subprocess.run([*self.ssh_argv(node, user), command], input=stdin, text=True,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"ssh {user}@{node} {command!r} -> rc {result.returncode}\n"
                                 f"stdout: {result.stdout}\nstderr: {result.stderr}")
        return result

    def wait_ready(self, timeout: float = 30.0) -> dict:
        """Until every sshd, kubelet and static pod of the lab is up and ready."""
        from harden.lab import cluster

        return cluster.wait_ready(self.dir, timeout)

    def down(self) -> None:
        from harden.lab import cluster

        if self.running:
            cluster.down(self.dir)
            self.running = False


class LabFactory:
    """Starts labs for tests and guarantees they are all stopped at the end of the session."""

    def __init__(self, base_dir: Path):
        self.base_dir = base_dir
        self.labs: list[Lab] = []
        self.rng = random.Random()
        self.first_octet = self.rng.randint(100, 250)
        self.next_b = self.rng.randint(0, 200)

    def free_net(self) -> str:
        from harden.lab import cluster

        for _ in range(256):
            net = f"127.{self.first_octet}.{self.next_b % 256}"
            self.next_b += 1
            if cluster.net_is_free(net):
                return net
        raise RuntimeError(f"no free 127.{self.first_octet}.x/24 for a lab")

    def start(self, *, control_planes: int = 1, workers: int = 1,
              profile: str = "kubeadm", **options) -> Lab:
        """A lab; `options` go to cluster.up (ssh_algorithms="modern", user_ca=True,
        seed_secrets=N)."""
        from harden.lab import cluster

        lab_dir = self.base_dir / f"lab{len(self.labs)}-{profile}"
        net = self.free_net()
        lab = Lab(lab_dir, net, profile, {})
        self.labs.append(lab)  # registered before up: a half-started lab is stopped too
        state = cluster.up(lab_dir, control_planes=control_planes, workers=workers,
                           profile=profile, net=net, **options)
        lab.nodes = {n["name"]: n["address"] for n in state["nodes"]}
        lab.roles = {n["name"]: n["role"] for n in state["nodes"]}
        return lab

    @contextlib.contextmanager
    def running(self, *, wait_ready: bool = False, **kwargs):
        """A lab for a `with` block (or a fixture's yield), stopped however the block ends."""
        lab = self.start(**kwargs)
        try:
            if wait_ready:
                lab.wait_ready()
            yield lab
        finally:
            lab.down()

    def stop_all(self) -> None:
        for lab in self.labs:
            if lab.running and (lab.dir / "lab.json").exists():
                lab.down()


@pytest.fixture(scope="session")
def lab_factory(tmp_path_factory):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("labs")
    factory = LabFactory(base)
    atexit.register(factory.stop_all)  # also after an interrupted session
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def lab3(lab_factory):
    """Two control planes and one worker, kubeadm profile; stopped after the module."""
    with lab_factory.running(control_planes=2, workers=1) as lab:
        yield lab


def pytest_sessionstart(session):
    """Byte-compile harden once, before any test starts a process.

    CI runs with PYTHONDONTWRITEBYTECODE=1, so without this every `python -m harden.cli` a test
    runs, and every lab supervisor, kubelet and component, compiles the modules it imports
    from source again (about 0.1 s of CPU per harden command, on a CPU-bound suite).
    compileall writes the .pyc files whatever that variable says; imports then read them."""
    import compileall

    package = Path(__file__).resolve().parents[1] / "harden"
    compileall.compile_dir(str(package), quiet=2, workers=1)


def must_run(item) -> bool:
    """Under CI (CI=true) a lab test that cannot run fails: a missing tool or privilege would
    otherwise turn the integration suite green by skipping it."""
    if os.environ.get("CI", "").lower() != "true":
        return False
    return item.get_closest_marker("lab") is not None or "integration" in item.path.parts


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and must_run(item) and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which must run every lab test: {reason}"


# -- scheduling: longest files first ------------------------------------------------------------

DURATIONS_FILE = Path(__file__).with_name("file_durations.json")
_FILE_SECONDS: defaultdict[str, float] = defaultdict(float)


def recorded_durations(path: Path = DURATIONS_FILE) -> dict[str, float]:
    """Seconds per test file (repository-relative path) from an earlier run; {} without one."""
    try:
        return {name: float(sec) for name, sec in json.loads(path.read_text())["seconds"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def file_key(item) -> str:
    """The test file of an item as the durations file names it (relative to the rootdir)."""
    return item.nodeid.split("::", 1)[0]


def longest_files_first(items: list, seconds: dict[str, float]) -> list:
    """The items, files in order of falling recorded seconds; a file's own tests keep their
    order (module-scoped labs and parametrized fixtures rely on it), unknown files stay put."""
    return sorted(items, key=lambda item: -seconds.get(file_key(item), 0.0))


def pytest_collection_modifyitems(config, items):
    """Collected longest files first, so that xdist (run with --no-loadscope-reorder, which
    keeps this order) starts the long lab files early instead of leaving one to run alone."""
    seconds = recorded_durations()
    if seconds:
        items[:] = longest_files_first(items, seconds)


def pytest_runtest_logreport(report):
    """Adds up each file's setup, call and teardown time (on the xdist controller too)."""
    _FILE_SECONDS[report.nodeid.split("::", 1)[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _FILE_SECONDS or len(_FILE_SECONDS) < 2:
        return
    slowest = sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1])[:15]
    terminalreporter.write_sep("=", "slowest 15 test files (setup + call + teardown)")
    for name, seconds in slowest:
        terminalreporter.write_line(f"{seconds:8.1f}s {name}")


def pytest_sessionfinish(session):
    """HARDEN_FILE_DURATIONS=PATH: every file's seconds, as tests/file_durations.json holds them."""
    out = os.environ.get("HARDEN_FILE_DURATIONS")
    if out and _FILE_SECONDS and not hasattr(session.config, "workerinput"):
        seconds = {name: round(sec, 1) for name, sec in sorted(_FILE_SECONDS.items())}
        Path(out).write_text(json.dumps({"seconds": seconds}, indent=1) + "\n")
