"""One static pod container: start it, probe it, restart it with crash-loop back-off.

Semantics follow the kubelet: the startup probe gates liveness and readiness; failureThreshold
consecutive liveness/startup failures kill the container; restarts back off 10s, 20s, ... up to
5 min (all multiplied by the lab time scale), and the back-off resets after a container ran
for twice the cap. One thread per container; waits use pidfd + select, never busy loops.

Output goes to the lab log (LOG_DIR/<pod>.log, every attempt after a `--- ... start` line) and,
as a real kubelet keeps it, to `/var/log/pods/<ns>_<pod>-<node>_<uid>/<container>/<N>.log`
in the CRI format (`<RFC3339Nano time> stderr F <line>`), N being the restart count of the
attempt; only the current and the previous attempt's files are kept. The lab fills an
attempt's file when the attempt ends (the process writes straight to the lab log, so it
survives a kubelet restart), which is what the health gate reads: how often the new pod's
container restarted and why its last attempt ended.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from harden.lab import procname
from harden.lab.components import podenv
from harden.lab.components.probes import run_probe
from harden.lab.components.staticpod import Container, PodSpec, Probe

BACKOFF_INITIAL = 10.0
BACKOFF_CAP = 300.0
MIN_PERIOD = 0.2
STEADY_MIN_PERIOD = 1.0  # liveness/readiness: faster than 1 Hz buys tests nothing, costs CPU
LOG_DIR = "/var/log/kubernetes/lab"
POD_LOG_ROOT = "/var/log/pods"
POD_LOG_TAIL = 64 * 1024        # bytes of an attempt's output copied into its N.log
# Held from a container's Popen until its pid is in its status: a kubelet that stops takes it
# (and keeps it) before its last state write, so a container started just then is recorded for
# the next kubelet to adopt or kill, never left running unknown beside a second one.
SPAWNS = threading.Lock()


def scaled(seconds: float, floor: float = 0.0) -> float:
    return max(floor, seconds * podenv.time_scale())


@dataclass
class ContainerStatus:
    """What `lab status` and the state file report for one container."""

    state: str = "waiting"          # waiting | starting | running | crash-looping | stopped
    ready: bool = False
    started: bool = False
    restarts: int = 0
    pid: int | None = None
    last_exit_code: int | None = None
    last_error: str = ""
    started_at: float | None = None


class ContainerRunner:
    """Owns the process of one container of one pod, in a thread of its own."""

    def __init__(self, pod: PodSpec, spec: Container, on_change, log_name: str,
                 adopt_pid: int | None = None, restarts: int = 0, pod_log_dir: str | None = None):
        self.pod, self.spec = pod, spec
        self._pod_log_dir = pod_log_dir           # host path of <pod dir>/<container>, or None
        self._attempt_offset = 0                  # where this attempt's output starts in the lab log
        self.status = ContainerStatus(restarts=restarts)
        self._on_change = on_change
        self._log_path = podenv.host_path(f"{LOG_DIR}/{log_name}.log")
        self._adopt_pid = adopt_pid
        self._proc: subprocess.Popen | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._backoff = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"ctr-{pod.name}", daemon=True)

    # -- public ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Kill the container (grace period, then SIGKILL) and end the thread."""
        if self._wake_w < 0:
            return
        self._stopping = True
        os.write(self._wake_w, b"x")
        if wait:
            self._thread.join(timeout=scaled(self.pod.grace_period, 1.0) + 5)
            if not self._thread.is_alive():
                os.close(self._wake_r)
                os.close(self._wake_w)
                self._wake_r = self._wake_w = -1

    # -- loop -----------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stopping:
                pid = self._adopt() or self._spawn()
                outcome = self._supervise(pid)
                self._kill(pid)
                if self._stopping:
                    break
                self._after_exit(outcome)
                if not self._should_restart():
                    break
                self.status.restarts += 1
                self._set(state="crash-looping", pid=None, ready=False)
                self._sleep(self._next_backoff())
        finally:
            self._set(state="stopped", ready=False, pid=None)

    def _adopt(self) -> int | None:
        """Take over a container left running by a previous kubelet (kubelet restarts keep pods)."""
        pid, self._adopt_pid = self._adopt_pid, None
        if pid is None:
            return None
        try:
            if procname.read_cmdline(pid) != self.spec.argv:
                return None
        except OSError:
            return None
        self._attempt_offset = _size(self._log_path)
        self._set(state="starting", pid=pid, started_at=time.time())
        return pid

    def _spawn(self) -> int:
        env = dict(os.environ)
        env[podenv.MOUNTS_ENV] = json.dumps(self.spec.mounts)
        env[procname.ARGV_ENV] = json.dumps(self.spec.argv)
        os.makedirs(os.path.dirname(self._log_path), exist_ok=True)
        with SPAWNS:
            return self._spawn_recorded(env)

    def _spawn_recorded(self, env: dict) -> int:
        with open(self._log_path, "ab") as log:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            log.write(f"--- {stamp} start {self.pod.name}/{self.spec.name} "
                      f"(restarts={self.status.restarts})\n".encode())
            log.flush()
            self._attempt_offset = log.tell()
            self._open_pod_log()
            self._proc = subprocess.Popen(procname.runner_argv(self.spec.argv), executable=sys.executable,
                                          env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          cwd="/", start_new_session=True)
        self._await_title(self._proc)
        self._set(state="starting", pid=self._proc.pid, started_at=time.time(), ready=False,
                  started=False)
        return self._proc.pid

    def _await_title(self, proc: subprocess.Popen) -> None:
        """The container counts as created once `ps` shows the manifest argv (a few ms of
        interpreter start-up), so nobody ever observes the runner's own command line."""
        deadline = time.monotonic() + 5.0
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if procname.read_cmdline(proc.pid) == self.spec.argv:
                    return
            except OSError:
                return
            time.sleep(0.01)

    def _supervise(self, pid: int) -> str:
        """Wait for exit, a failed probe or a stop request; returns which one happened."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return "exited"
        try:
            return _ProbeSchedule(self, pidfd).run()
        finally:
            os.close(pidfd)

    def _after_exit(self, outcome: str) -> None:
        code = self._reap()
        self.status.last_exit_code = code
        self._fill_pod_log()
        if outcome == "exited":
            reason = _last_error_line(self._log_path)
            self.status.last_error = (f"container exited with code {code}"
                                      + (f": {reason}" if reason else ""))
        ran_for = time.time() - (self.status.started_at or time.time())
        if ran_for > scaled(2 * BACKOFF_CAP):
            self._backoff = 0.0

    def _open_pod_log(self) -> None:
        """Create this attempt's N.log (empty until it ends) and drop the one before the
        previous attempt, as the kubelet's container GC does."""
        if not self._pod_log_dir:
            return
        try:
            os.makedirs(self._pod_log_dir, exist_ok=True)
            restarts = self.status.restarts
            open(os.path.join(self._pod_log_dir, f"{restarts}.log"), "ab").close()
            if restarts >= 2:
                os.unlink(os.path.join(self._pod_log_dir, f"{restarts - 2}.log"))
        except OSError:
            pass

    def _fill_pod_log(self) -> None:
        """Copy the ended attempt's output into its N.log, framed as the CRI writes it."""
        if not self._pod_log_dir:
            return
        try:
            with open(self._log_path, "rb") as log:
                start = max(self._attempt_offset, _size(self._log_path) - POD_LOG_TAIL)
                log.seek(start)
                output = log.read(POD_LOG_TAIL)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d}Z"
            framed = b"".join(stamp.encode() + b" stderr F " + line + b"\n"
                              for line in output.splitlines())
            with open(os.path.join(self._pod_log_dir, f"{self.status.restarts}.log"), "ab") as out:
                out.write(framed)
        except OSError:
            pass

    def _should_restart(self) -> bool:
        policy = self.pod.restart_policy
        return policy == "Always" or (policy == "OnFailure" and self.status.last_exit_code != 0)

    def _next_backoff(self) -> float:
        self._backoff = min(BACKOFF_CAP, self._backoff * 2 if self._backoff else BACKOFF_INITIAL)
        return scaled(self._backoff, MIN_PERIOD)

    def _sleep(self, seconds: float) -> None:
        readable, _, _ = select.select([self._wake_r], [], [], seconds)
        if readable:
            os.read(self._wake_r, 64)

    def _kill(self, pid: int) -> None:
        """SIGTERM, then SIGKILL after the (scaled) grace period, like the runtime's StopContainer."""
        if not _alive(pid):
            return
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + scaled(self.pod.grace_period, 1.0)
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            while _alive(pid) and time.monotonic() < deadline:
                select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
                self._reap()
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
                select.select([pidfd], [], [], 2.0)
        finally:
            os.close(pidfd)
        self._reap()

    def _reap(self) -> int | None:
        if self._proc is None:
            return None
        code = self._proc.poll()
        return code

    def _set(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self.status, key, value)
        status = self.status
        if status.state in ("starting", "running") and status.restarts and not status.ready:
            status.state = "crash-looping"
        elif status.state in ("starting", "crash-looping") and status.pid and status.ready:
            status.state = "running"
        self._on_change()


class _ProbeSchedule:
    """Runs the container's probes on their (scaled) schedule until something ends the run."""

    def __init__(self, runner: ContainerRunner, pidfd: int):
        self.runner, self.pidfd = runner, pidfd
        spec = runner.spec
        now = time.monotonic()
        self.failures = {"startup": 0, "liveness": 0, "readiness": 0}
        self.successes = {"startup": 0, "liveness": 0, "readiness": 0}
        self.probes: dict[str, Probe] = {k: p for k, p in (("startup", spec.startup),
                                         ("liveness", spec.liveness), ("readiness", spec.readiness)) if p}
        self.due = {k: now + scaled(p.initial_delay) for k, p in self.probes.items()}
        if "startup" not in self.probes:
            runner._set(started=True, state="running", ready="readiness" not in self.probes)

    def run(self) -> str:
        while True:
            active = [k for k in self.due if self._active(k)]
            wait = min((self.due[k] for k in active), default=time.monotonic() + 3600) - time.monotonic()
            readable, _, _ = select.select([self.pidfd, self.runner._wake_r], [], [], max(0.0, wait))
            if self.runner._wake_r in readable:
                os.read(self.runner._wake_r, 64)
                if self.runner._stopping:
                    return "stopped"
            if self.pidfd in readable or not _alive(self.runner.status.pid):
                return "exited"
            for kind in active:
                if time.monotonic() >= self.due[kind] and self._attempt(kind) == "kill":
                    return "probe-failed"

    def _active(self, kind: str) -> bool:
        return kind == "startup" if not self.runner.status.started else kind != "startup"

    def _attempt(self, kind: str) -> str | None:
        probe = self.probes[kind]
        timeout = min(probe.timeout, max(1.0, scaled(probe.timeout)))
        ok, why = run_probe(probe, self.runner.spec.ports, timeout)
        floor = MIN_PERIOD if kind == "startup" else STEADY_MIN_PERIOD
        self.due[kind] = time.monotonic() + scaled(probe.period, floor)
        runner = self.runner
        if ok:
            self.failures[kind] = 0
            self.successes[kind] += 1
            if self.successes[kind] >= probe.success_threshold:
                self._succeeded(kind)
            return None
        self.successes[kind] = 0
        self.failures[kind] += 1
        if self.failures[kind] < probe.failure_threshold:
            return None
        if kind == "readiness":
            runner._set(ready=False, last_error=f"Readiness probe failed: {why}")
            return None
        runner._set(ready=False, last_error=f"{kind.capitalize()} probe failed: {why}; "
                                           f"container will be restarted")
        return "kill"

    def _succeeded(self, kind: str) -> None:
        runner = self.runner
        if kind == "startup" and not runner.status.started:
            now = time.monotonic()
            for other in ("liveness", "readiness"):
                if other in self.probes:
                    self.due[other] = now + scaled(self.probes[other].initial_delay)
            runner._set(started=True, ready="readiness" not in self.probes, state="running")
        elif kind == "readiness" and not runner.status.ready:
            runner._set(ready=True, state="running")


def _alive(pid: int | None) -> bool:
    """True while `pid` exists and is not a zombie."""
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read()
    except OSError:
        return False
    return text[text.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _last_error_line(log_path: str) -> str:
    """The container's final error message (klog E-line or cobra `Error:`), for the status."""
    try:
        with open(log_path, "rb") as log:
            log.seek(max(0, os.path.getsize(log_path) - 8192))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if line.startswith("---"):
            break
        if line.startswith(("E", "Error:", "F")):
            return line.split("] ", 1)[-1].strip()
    return ""
