"""The supervisor of one lab node: PID 1 of the node's PID namespace, inside its mount namespace.

It plays the node's init and systemd: mounts the node's own /etc, /usr and /var (overlays over
the machine's), bind-mounts the node's private directories over the kubeadm paths, runs sshd and the kubelet service (restarting them like `Restart=always` does),
reaps every orphan (PID 1's duty), answers the `systemctl` shim over a unix socket and keeps
`services.json` current for `harden lab status`. Started by harden.lab.cluster as
`unshare -m -p -f --mount-proc python -m harden.lab.node NODE_JSON`.
"""

from __future__ import annotations

import ctypes
import json
import os
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harden.lab.systemctl_verbs import Systemctl
from harden.lab.units import Units

MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 1 << 18
RESTART_DELAY = 1.0          # systemd's RestartSec=10, scaled down for tests
STOP_TIMEOUT = 5.0
SHUTDOWN_GRACE = 1.5         # a node going away owes its processes no more than this
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DROPIN_DIRS = ("/usr/lib/systemd/system/kubelet.service.d", "/etc/systemd/system/kubelet.service.d")
KUBELET_EXEC = "/usr/bin/kubelet"
UNIT_ALIASES = {"kubelet": "kubelet", "kubelet.service": "kubelet",
                "sshd": "sshd", "ssh": "sshd", "sshd.service": "sshd", "ssh.service": "sshd"}


def _mount(source: str, target: str, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source.encode(), target.encode(), None, flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _mount_overlay(lower: str, upper: str, work: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"lowerdir={lower},upperdir={upper},workdir={work}".encode()
    if libc.mount(b"overlay", lower.encode(), b"overlay", 0, options) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"overlay on {lower} (upper {upper}): {os.strerror(err)}")


def bind_mounts(mounts: list[list[str]], overlays: list[list[str]] = ()) -> None:
    """Make this namespace's mounts private (nothing leaks to the host), give the node its own
    /etc, /usr, /var (overlays over the machine's), then bind each pair on top of those."""
    _mount("none", "/", MS_REC | MS_PRIVATE)
    for lower, upper, work in overlays:
        _mount_overlay(lower, upper, work)
    for source, target in mounts:
        _mount(source, target, MS_BIND)


def set_comm(name: str) -> None:
    """PID 1's name as /proc/1/comm shows it: tools tell the service manager from it (Ansible's
    service_mgr fact reads `systemd` there on a real node)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(15, name.encode(), 0, 0, 0)       # PR_SET_NAME


# --- systemd unit parsing (only what kubelet.service drop-ins use) -----------------------------

def _unit_lines(text: str) -> list[tuple[str, str]]:
    """(key, value) pairs of the [Service] section, with continuation lines joined."""
    pairs, section, pending = [], "", ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line:
            key, value = line.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    return pairs


def read_env_file(path: Path) -> dict[str, str]:
    """systemd EnvironmentFile: KEY=VALUE lines, one pair of surrounding quotes removed."""
    env = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def _dropin_files() -> list[Path]:
    """Drop-ins sorted by file name; a name in /etc masks the same name in /usr/lib (systemd)."""
    by_name: dict[str, Path] = {}
    for directory in DROPIN_DIRS:
        for path in sorted(Path(directory).glob("*.conf")):
            by_name[path.name] = path
    return [by_name[name] for name in sorted(by_name)]


def _expand(word: str, env: dict[str, str]) -> list[str]:
    """`$VAR` splits into words, `${VAR}` stays one word, as in systemd's ExecStart."""
    if word.startswith("${") and word.endswith("}"):
        return [env.get(word[2:-1], "")]
    if word.startswith("$"):
        return env.get(word[1:], "").split()
    return [word]


def kubelet_argv() -> list[str]:
    """The kubelet command line the drop-ins describe, with our emulator in place of the binary."""
    env: dict[str, str] = {}
    file_env: dict[str, str] = {}
    exec_start = KUBELET_EXEC
    for path in _dropin_files():
        for key, value in _unit_lines(path.read_text()):
            if key == "Environment":
                env.update(item.split("=", 1) for item in shlex.split(value) if "=" in item)
            elif key == "EnvironmentFile":
                optional = value.startswith("-")
                env_path = Path(value.lstrip("-"))
                if env_path.is_file():
                    file_env.update(read_env_file(env_path))
                elif not optional:
                    raise FileNotFoundError(f"EnvironmentFile {env_path} missing ({path})")
            elif key == "ExecStart" and value:
                exec_start = value
    env.update(file_env)  # EnvironmentFile= wins over Environment= in systemd
    words = [w for word in shlex.split(exec_start)[1:] for w in _expand(word, env) if w]
    return [sys.executable, "-m", "harden.lab.kubelet", *words]


# --- services ---------------------------------------------------------------------------------

@dataclass
class Service:
    """One supervised process with systemd-like states: active, activating, inactive, failed."""

    name: str
    log: Path
    argv_fn: Callable[[], list[str]]     # evaluated at every start
    state: str = "inactive"
    pid: int | None = None
    exit_code: int | None = None
    restarts: int = 0
    restart_at: float | None = None
    error: str = ""
    started_at: float = 0.0
    wanted: bool = True
    env: dict = field(default_factory=dict)   # on top of the supervisor's own
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def summary(self) -> dict:
        return {"state": self.state, "pid": self.pid, "exit_code": self.exit_code,
                "restarts": self.restarts, "error": self.error, "since": self.started_at}


class Supervisor:
    def __init__(self, spec: dict):
        self.spec = spec
        node_dir = Path(spec["node_dir"])
        self.status_file = node_dir / "services.json"
        self.env = {"PATH": SERVICE_PATH, "LANG": "C.UTF-8", "HOME": "/root",
                    "PYTHONPATH": spec["pythonpath"],
                    # the lab shares the machine's hostname; the kubelet names its node from this
                    "HARDEN_LAB_NODE_NAME": spec["name"],
                    # the objects the lab's API servers create at start (harden.lab.seed)
                    "HARDEN_LAB_SEED": spec.get("seed", "")}
        self.services = {
            "sshd": Service("sshd", node_dir / "sshd.log", lambda: spec["sshd_argv"],
                            env=spec.get("sshd_env") or {}),
            "kubelet": Service("kubelet", node_dir / "kubelet.log", kubelet_argv),
        }
        self.stopping = False
        by_unit = {unit: self.services[name] for unit, name in UNIT_ALIASES.items()
                   if unit.endswith(".service")}
        self.systemctl = Systemctl(Units(), by_unit, self.start, self.stop)

    # process lifecycle

    def start(self, svc: Service) -> None:
        svc.wanted, svc.restart_at, svc.error = True, None, ""
        try:
            argv = svc.argv_fn()
            with open(svc.log, "ab") as log:
                log.write(f"--- {time.strftime('%H:%M:%S')} start {shlex.join(argv)}\n".encode())
                log.flush()
                svc.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, env={**self.env, **svc.env},
                                            cwd="/")
        except (OSError, ValueError) as exc:
            svc.error, svc.state, svc.pid = str(exc), "failed", None
            svc.restart_at = time.monotonic() + RESTART_DELAY
        else:
            svc.state, svc.pid, svc.exit_code = "active", svc.proc.pid, None
            svc.started_at = time.time()
        self.write_status()

    def exited(self, svc: Service, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if svc.proc is not None:
            svc.proc.returncode = code  # reaped here, not by Popen
        svc.pid, svc.proc, svc.exit_code = None, None, code
        if svc.wanted and not self.stopping:
            svc.state, svc.restarts = "activating", svc.restarts + 1
            svc.restart_at = time.monotonic() + RESTART_DELAY
        else:
            svc.state = "inactive"
        self.write_status()

    def stop(self, svc: Service) -> None:
        svc.wanted, svc.restart_at = False, None
        if svc.pid is None:
            svc.state = "inactive"
            self.write_status()
            return
        pid = svc.pid
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while svc.pid == pid:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            self.reap()
            time.sleep(0.02)

    def reap(self) -> None:
        """Collect every dead child: our services, and orphans re-parented to us as PID 1."""
        by_pid = {s.pid: s for s in self.services.values() if s.pid}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in by_pid:
                self.exited(by_pid[pid], status)

    def restart_due(self) -> None:
        now = time.monotonic()
        for svc in self.services.values():
            if svc.restart_at is not None and now >= svc.restart_at and not self.stopping:
                self.start(svc)

    def write_status(self) -> None:
        data = {"supervisor": {"pid": os.getpid(), "stopping": self.stopping},
                "services": {n: s.summary() for n, s in self.services.items()}}
        tmp = self.status_file.with_name(".services.json.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.status_file)

    # systemctl shim protocol: one JSON request line, one JSON answer line

    def handle(self, argv: list[str]) -> tuple[int, str, str]:
        """A systemctl command line: any unit, answered from the node's unit files and the
        processes this supervisor runs (harden.lab.systemctl_verbs)."""
        return self.systemctl.handle(argv)

    def serve_client(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            try:
                rc, out, err = self.handle(json.loads(data or b"[]"))
            except (ValueError, TypeError, OSError) as exc:
                rc, out, err = 1, "", f"bad request: {exc}\n"
            conn.sendall(json.dumps({"rc": rc, "out": out, "err": err}).encode() + b"\n")

    # main loop

    def run(self) -> int:
        sock_path = Path(self.spec["socket"])
        sock_path.unlink(missing_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(sock_path))
        os.chmod(sock_path, 0o600)
        server.listen(16)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        selector = selectors.DefaultSelector()
        selector.register(server, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        for svc in self.services.values():
            self.start(svc)
        while not self.stopping:
            for key, _ in selector.select(timeout=0.5):
                if key.fileobj is server:
                    self.serve_client(server.accept()[0])
                else:
                    os.read(wake_r, 4096)
            self.reap()
            self.restart_due()
        self.shutdown()
        return 0

    def _on_stop(self, *_: object) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        """Stop services, then every other process of the node, before PID 1 goes away."""
        self.write_status()
        for svc in self.services.values():
            if svc.pid:
                os.kill(svc.pid, signal.SIGTERM)
        try:
            os.kill(-1, signal.SIGTERM)  # as PID 1 of the namespace: everyone else in it
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while time.monotonic() < deadline:
            self.reap()
            try:
                os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            time.sleep(0.05)
        self.write_status()


def _exit_before_start(*_: object) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    # PID 1 ignores signals it has no handler for: catch them from the first moment.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _exit_before_start)
    spec = json.loads(Path(argv[0]).read_text())
    set_comm("systemd")
    bind_mounts(spec["mounts"], spec.get("overlays", []))
    return Supervisor(spec).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
