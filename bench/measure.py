"""Measuring one controller run: wall time, CPU, peak memory, and what the nodes' sshd saw.

Memory is taken two ways because the tools are shaped differently. harden and the paramiko floor
are one process; ansible-playbook forks a worker per host and OpenSSH runs one `ssh` per host. So
a run reports the largest single process (its VmHWM, the kernel's peak-RSS mark) and the peak
total of its live process tree as PSS (/proc/<pid>/smaps_rollup), so pages shared between forks
count once. Both are sampled every SAMPLE_SECONDS. wait4's ru_maxrss is not used: Linux carries
the RSS of the forked parent (this 45 MiB benchmark process) into the child's figure at exec.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

SAMPLE_SECONDS = 0.1
EXEC_RE = re.compile(r"session_input_channel_req: session \d+ req exec")   # sshd LogLevel DEBUG1
LOGIN_RE = re.compile(r"^Accepted publickey for ", re.MULTILINE)


@dataclass
class Sample:
    """One timed run of one tool."""

    seconds: float
    cpu_seconds: float
    max_rss_mib: float          # largest single process (peak VmHWM seen)
    tree_pss_mib: float         # peak PSS of the whole live process tree
    returncode: int
    node_cpu_seconds: float = 0.0   # every node's sshd and what it ran, together
    per_host_execs: dict[str, int] = field(default_factory=dict)
    per_host_logins: dict[str, int] = field(default_factory=dict)


def tree_pids(root: int) -> list[int]:
    """root and its live descendants, found through every thread's children list (a Python
    controller spawns from worker threads, whose children the main thread's list does not show)."""
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{pid}/task/{task}/children").read_text()
            except OSError:
                continue
            stack += [int(child) for child in children.split()]
    return found


def proc_kib(pid: int, path: str, key: str) -> int:
    """A `Key:   N kB` value of /proc/<pid>/<path>, 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/{path}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeMemorySampler(threading.Thread):
    """Polls the tree until stopped: peak total PSS, and the largest VmHWM of any one process."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peak_pss_kib, self.peak_hwm_kib = root, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        pids = tree_pids(self.root)
        self.peak_pss_kib = max(self.peak_pss_kib,
                                sum(proc_kib(pid, "smaps_rollup", "Pss:") for pid in pids))
        self.peak_hwm_kib = max([self.peak_hwm_kib]
                                + [proc_kib(pid, "status", "VmHWM:") for pid in pids])

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def timed_run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              stdin: bytes | None = None, log_path: Path | None = None) -> Sample:
    """Run argv to completion (stdout and stderr to log_path or /dev/null) and measure it.

    os.wait4 rather than Popen.wait: it gives the CPU time of this one child and its waited-for
    descendants, independent of other children this process has (the lab's). The child starts a
    session of its own so that an interrupt can kill all of it (Ansible's forks included).
    """
    out = open(log_path, "wb") if log_path else open(os.devnull, "wb")
    try:
        started = time.monotonic()
        proc = subprocess.Popen(list(argv), env=dict(env) if env is not None else None,
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        sampler = TreeMemorySampler(proc.pid)
        sampler.start()
        try:
            if stdin is not None:
                proc.stdin.write(stdin)
                proc.stdin.close()
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            sampler.stop()
            raise
        seconds = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    finally:
        out.close()
    return Sample(seconds=seconds, cpu_seconds=usage.ru_utime + usage.ru_stime,
                  max_rss_mib=sampler.peak_hwm_kib / 1024, tree_pss_mib=sampler.peak_pss_kib / 1024,
                  returncode=proc.returncode)


def tree_cpu_seconds(roots: Sequence[int]) -> float:
    """CPU time (user + system) used so far by the trees under roots, exited descendants included.

    Each live process adds its own time and that of the children it has reaped (cutime, cstime),
    so a finished SSH session's shell and commands still count, once, in their reaper's figure.
    """
    ticks = 0
    for pid in (p for root in roots for p in tree_pids(root)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        ticks += sum(int(value) for value in fields[11:15])   # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def sshd_listeners(roots: Sequence[int]) -> list[int]:
    """The listening sshd of each lab node, found by the title it gives itself ("sshd: ...
    [listener] ..."): every session's processes are its descendants, so their CPU ends up there."""
    found = []
    for pid in (p for root in roots for p in tree_pids(root)):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("sshd:") and "[listener]" in title:
            found.append(pid)
    return found


def idle_cores(roots: Sequence[int], seconds: float = 3.0) -> float:
    """How many cores the processes under roots keep busy while nobody talks to them: the lab's
    own background load, which every tool in the table competes with."""
    before = tree_cpu_seconds(roots)
    time.sleep(seconds)
    return (tree_cpu_seconds(roots) - before) / seconds


# --- what the nodes saw --------------------------------------------------------------------------

def sshd_counts(log: Path) -> tuple[int, int]:
    """(exec requests, accepted logins) so far in one node's sshd log."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0, 0
    return len(EXEC_RE.findall(text)), len(LOGIN_RE.findall(text))


def snapshot(logs: Mapping[str, Path]) -> dict[str, tuple[int, int]]:
    return {host: sshd_counts(path) for host, path in logs.items()}


def deltas(before: Mapping[str, tuple[int, int]],
           after: Mapping[str, tuple[int, int]]) -> tuple[dict[str, int], dict[str, int]]:
    """Per-host (execs, logins) that happened between two snapshots."""
    execs = {h: after[h][0] - before[h][0] for h in after}
    logins = {h: after[h][1] - before[h][1] for h in after}
    return execs, logins


# --- summaries -----------------------------------------------------------------------------------

@dataclass
class Summary:
    """A tool's repeats reduced to what the table shows."""

    tool: str
    median: float
    low: float
    high: float
    cpu: float                  # median controller CPU seconds
    node_cpu: float             # median CPU seconds of all nodes' sshd sessions together
    max_rss_mib: float          # worst over repeats
    tree_pss_mib: float         # worst over repeats
    execs: tuple[int, int]      # min and max execs per host in one run
    logins: tuple[int, int]
    failures: int               # runs that did not exit as expected


def summarize(tool: str, samples: Sequence[Sample], ok_codes: Sequence[int] = (0,)) -> Summary:
    walls = [s.seconds for s in samples]
    execs = [n for s in samples for n in s.per_host_execs.values()] or [0]
    logins = [n for s in samples for n in s.per_host_logins.values()] or [0]
    return Summary(tool=tool, median=statistics.median(walls), low=min(walls), high=max(walls),
                   cpu=statistics.median(s.cpu_seconds for s in samples),
                   node_cpu=statistics.median(s.node_cpu_seconds for s in samples),
                   max_rss_mib=max(s.max_rss_mib for s in samples),
                   tree_pss_mib=max(s.tree_pss_mib for s in samples),
                   execs=(min(execs), max(execs)), logins=(min(logins), max(logins)),
                   failures=sum(s.returncode not in ok_codes for s in samples))
