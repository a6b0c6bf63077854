"""The lab kubelet: one per lab node, started like systemd starts the real one.

Run as `python -m harden.lab.kubelet <kubelet flags>`; it re-executes itself so that `ps` shows
`kubelet <flags>`, validates its flags and KubeletConfiguration (exits 1 like the real kubelet
when they are bad), serves /healthz and its API ports (components/kubeletserver.py), and runs
the static pods of `staticPodPath`:

* every regular file whose name does not start with "." is a pod (no extension filter);
* changes are seen at once (inotify) and the whole directory is re-listed every
  fileCheckFrequency (20 s, times the lab time scale);
* a file that stops parsing leaves its pod running until the next re-list, which drops it;
* two files defining the same pod: the first in name order runs, the others are ignored with a
  "duplicate pod name" error (pkg/kubelet/config filterInvalidPods keeps the first it meets;
  upstream that order is not guaranteed, so a stale backup may even win there);
* a content change or a rename replaces the pod (new UID);
* restarting the kubelet keeps running containers and adopts them;
* each container's attempts are logged under /var/log/pods/<ns>_<pod>-<node>_<uid>/<container>/
  (N.log per restart, see components/container.py); a pod's directory goes when the pod does.

Everything observed is written to the per-node state file (STATE_FILE, JSON: "kubelet" {pid,
state running|failed, error, healthz, server}, "seen_files" / "seen_ignored_files" (every name
ever seen in the static pod dir), "file_errors", and "pods" {name: state
starting|running|crash-looping|pending|stopped, ready, restarts, pid, argv, last_error,
last_exit_code, duplicate_files}, "pods_created" {name: pods created for it so far, adopted
containers not counted: a content change of a manifest counts one}) so tests and `harden lab
status` can say why a pod is down and how often a component was restarted.
Periods are multiplied by the lab time scale (podenv.time_scale: env HARDEN_LAB_TIME_SCALE, else
the node file /var/lib/kubelet/harden-lab-time-scale, else 0.05).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harden.lab import procname
from harden.lab.components import kubeletconfig, kubeletserver, podenv, staticpod
from harden.lab.components.container import POD_LOG_ROOT, SPAWNS, ContainerRunner, scaled
from harden.lab.components.flags import FlagError, FlagSet, kinds_from_table, parse_duration

STATE_FILE = "/var/lib/kubelet/harden-lab-pods.json"
MIN_RELIST = 0.5

KUBELET_FLAGS = kinds_from_table("""
config kubeconfig bootstrap-kubeconfig config-dir container-runtime-endpoint image-service-endpoint
node-ip hostname-override pod-infra-container-image node-labels:m register-with-taints:l
register-node:b root-dir cert-dir v:i vmodule log-flush-frequency:d logging-format
cloud-provider cloud-config provider-id lock-file exit-on-lock-contention:b seccomp-default:b
anonymous-auth:b authorization-mode authentication-token-webhook:b
authentication-token-webhook-cache-ttl:d authorization-webhook-cache-authorized-ttl:d
authorization-webhook-cache-unauthorized-ttl:d client-ca-file tls-cert-file tls-private-key-file
tls-cipher-suites:l tls-min-version rotate-certificates:b rotate-server-certificates:b
read-only-port:i port:i address healthz-port:i healthz-bind-address protect-kernel-defaults:b
make-iptables-util-chains:b event-qps:i event-burst:i streaming-connection-idle-timeout:d
feature-gates:m pod-manifest-path file-check-frequency:d fail-swap-on:b cgroups-per-qos:b
cgroup-driver cgroup-root max-pods:i pod-max-pids:i cluster-dns:l cluster-domain
runtime-request-timeout:d eviction-hard:m eviction-soft:m kube-reserved:m system-reserved:m
serialize-image-pulls:b resolv-conf volume-plugin-dir enforce-node-allocatable:l
node-status-update-frequency:d image-gc-high-threshold:i image-gc-low-threshold:i
kube-api-qps:i kube-api-burst:i max-open-files:i oom-score-adj:i pod-cidr
""")
KUBELET_SHORTHANDS = {"v": "v", "h": "help"}
KUBELET_FLAGS["help"] = "bool"

# flags that override config file fields (flags win over --config, as upstream)
FLAG_TO_FIELD = {"pod-manifest-path": "staticPodPath", "healthz-port": "healthzPort",
                 "healthz-bind-address": "healthzBindAddress", "file-check-frequency": "fileCheckFrequency",
                 "protect-kernel-defaults": "protectKernelDefaults", "read-only-port": "readOnlyPort",
                 "port": "port", "address": "address", "anonymous-auth": "authentication.anonymous.enabled",
                 "authorization-mode": "authorization.mode",
                 "client-ca-file": "authentication.x509.clientCAFile", "tls-cert-file": "tlsCertFile",
                 "tls-private-key-file": "tlsPrivateKeyFile"}


class KubeletError(Exception):
    """The kubelet cannot run: logged like `"command failed" err=...` and exit status 1."""


def build_config(args: list[str]) -> tuple[dict, dict]:
    """(effective config, parsed flags): flags, then --config, then drop-ins, then flags again."""
    try:
        flags = FlagSet("kubelet", KUBELET_FLAGS, KUBELET_SHORTHANDS).parse(args)
    except FlagError as err:
        raise KubeletError(str(err)) from None
    config: dict = dict(kubeletconfig.DEFAULTS)
    if flags.has("config"):
        try:
            config = kubeletconfig.load_config(flags.get("config"))
            config = _apply_dropins(config, flags.get("config-dir"))
        except kubeletconfig.KubeletConfigError as err:
            raise KubeletError(str(err)) from None
    for flag, field in FLAG_TO_FIELD.items():
        if flags.has(flag):
            _set_field(config, field, flags.get(flag))
    problems = kubeletconfig.validate(config)
    if problems:
        raise KubeletError("; ".join(problems))
    if config.get("protectKernelDefaults"):
        errors = kubeletconfig.kernel_tunable_errors(kubeletconfig.node_sysctls())
        if errors:
            raise KubeletError(f"failed to run Kubelet: [{', '.join(errors)}]")
    return config, flags.values


def _set_field(config: dict, dotted: str, value) -> None:
    """Set a (nested) config field without sharing dicts with the defaults."""
    *parents, leaf = dotted.split(".")
    for parent in parents:
        config[parent] = dict(config.get(parent) or {})
        config = config[parent]
    config[leaf] = value


def _apply_dropins(config: dict, config_dir: str | None) -> dict:
    """--config-dir: *.conf files in name order, each merged over the previous result."""
    if not config_dir:
        return config
    directory = podenv.host_path(config_dir)
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if name.endswith(".conf") and not name.startswith("."):
            config.update(kubeletconfig.read_config(os.path.join(config_dir, name)))
    return config


# -- inotify ----------------------------------------------------------------------------------

# IN_MODIFY IN_ATTRIB IN_CLOSE_WRITE IN_MOVED_FROM IN_MOVED_TO IN_CREATE IN_DELETE, and the
# directory itself going away (IN_DELETE_SELF IN_MOVE_SELF)
IN_EVENTS = 0x2 | 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
IN_NONBLOCK_CLOEXEC = 0o4000 | 0o2000000
_EVENT = struct.Struct("iIII")


class DirWatch:
    """inotify on the static pod directory; names of files that changed since the last read."""

    def __init__(self, path: str):
        self.path = path
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(IN_NONBLOCK_CLOEXEC)
        self.watching = False

    def ensure(self) -> None:
        """(Re)add the watch: the directory may appear later or be replaced."""
        if not self.watching and os.path.isdir(self.path):
            self.watching = self._libc.inotify_add_watch(self.fd, self.path.encode(), IN_EVENTS) >= 0

    def read_names(self) -> list[str]:
        names = []
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return names
        offset = 0
        while offset < len(data):
            _wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size
            name = data[offset:offset + length].rstrip(b"\0").decode(errors="replace")
            offset += length
            if mask & (0x8000 | 0x400 | 0x800):  # ignored / delete_self / move_self
                self.watching = False
            if name:
                names.append(name)
        return names


# -- the kubelet ------------------------------------------------------------------------------

class Kubelet:
    """Static pod manager plus health endpoint for one lab node."""

    def __init__(self, config: dict, flags: dict):
        self.config, self.flags = config, flags
        self.node = (flags.get("hostname-override") or os.environ.get(podenv.NODE_NAME_ENV)
                     or socket.gethostname())
        self.pod_dir = str(config.get("staticPodPath") or "")
        # v1beta1 defaulting turns kubeadm's "0s" into 20s
        check_every = parse_duration(str(config.get("fileCheckFrequency") or "0s")) or 20.0
        self.relist_every = max(MIN_RELIST, scaled(check_every))
        self.lock = threading.RLock()
        self.pods: dict[str, tuple[staticpod.PodSpec, list[ContainerRunner]]] = {}
        self.last_good: dict[str, staticpod.PodSpec] = {}
        self._parsed: dict[str, tuple[bytes, staticpod.PodSpec]] = {}
        self._last_written = ""
        self.seen_files: set[str] = set()
        self.seen_ignored: set[str] = set()
        self.file_errors: dict[str, str] = {}
        self.pending: dict[str, str] = {}
        self.duplicates: dict[str, list[str]] = {}
        self.healthz = ""
        self.server: list[str] = []
        self.running = True
        self._dirty = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._previous = self._read_previous_state()
        # pod name -> how many times a pod was created for it (a content change replaces the
        # pod: that is a restart of the component); kept across kubelet restarts
        self.created: dict[str, int] = dict(self._previous.get("pods_created") or {})

    # -- state file ----------------------------------------------------------------------------
    def _read_previous_state(self) -> dict:
        try:
            with open(podenv.host_path(STATE_FILE)) as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def mark_dirty(self) -> None:
        """Called from container threads: the writer thread persists the change shortly."""
        self._dirty.set()

    def _state_writer(self) -> None:
        while True:
            self._dirty.wait()
            time.sleep(0.05)  # coalesce bursts of changes into one write
            self._dirty.clear()
            self.write_state()

    def write_state(self) -> None:
        with self.lock:
            state = {
                "kubelet": {"pid": os.getpid(), "state": "running", "node": self.node,
                            "healthz": self.healthz, "server": self.server,
                            "static_pod_path": self.pod_dir},
                "seen_files": sorted(self.seen_files),
                "seen_ignored_files": sorted(self.seen_ignored),
                "file_errors": dict(self.file_errors),
                "pods_created": dict(self.created),
                "pods": {spec.name: _pod_record(spec, runners, self.duplicates.get(spec.full_name))
                         for spec, runners in self.pods.values()},
            }
            for name, error in self.pending.items():
                state["pods"].setdefault(name, {"state": "pending", "ready": False, "restarts": 0,
                                                "last_error": error})
            text = json.dumps(state, indent=1, sort_keys=True)
            if text == self._last_written:
                return
            self._last_written = text
        write_state_file(state)

    # -- main loop -----------------------------------------------------------------------------
    def serve(self) -> None:
        try:
            self.server = kubeletserver.start(self.config, self.pod_names,
                                              self.flags.get("cert-dir") or kubeletserver.CERT_DIR)
        except (OSError, ssl.SSLError) as err:
            raise KubeletError(f"failed to listen and serve: {err}") from None
        self.healthz = start_healthz(self.config, self)
        threading.Thread(target=self._state_writer, name="state-writer", daemon=True).start()
        watch = DirWatch(podenv.host_path(self.pod_dir)) if self.pod_dir else None
        next_relist = 0.0
        while self.running:
            if watch:
                watch.ensure()
            now = time.monotonic()
            if now >= next_relist:
                self.sync(relist=True)
                if not next_relist:
                    self._kill_unwanted_leftovers()
                next_relist = now + self.relist_every
            fds = [self._wake_r] + ([watch.fd] if watch else [])
            readable, _, _ = select.select(fds, [], [], max(0.0, next_relist - time.monotonic()))
            if watch and watch.fd in readable:
                time.sleep(0.02)  # let a burst of events (write + close + rename) settle
                self._note_names(watch.read_names())
                self.sync(relist=False)
        SPAWNS.acquire()        # kept: no container starts unrecorded any more
        self.write_state()

    def pod_names(self) -> list[str]:
        with self.lock:
            return sorted(spec.name for spec, _ in self.pods.values())

    def stop(self) -> None:
        """SIGTERM: exit without touching containers (they outlive the kubelet, as with CRI)."""
        self.running = False
        os.write(self._wake_w, b"x")

    def _note_names(self, names: list[str]) -> None:
        for name in names:
            (self.seen_ignored if name.startswith(".") else self.seen_files).add(name)

    def list_manifests(self) -> list[str]:
        directory = podenv.host_path(self.pod_dir)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return []
        self._note_names(names)
        return [n for n in names
                if not n.startswith(".") and os.path.isfile(os.path.join(directory, n))]

    def sync(self, relist: bool) -> None:
        """Bring running pods in line with the directory (see module docstring for the rules)."""
        wanted = self._desired(relist)
        with self.lock:
            stale = [self.pods.pop(k) for k in list(self.pods)
                     if k not in wanted or wanted[k].uid != self.pods[k][0].uid]
        for spec, runners in stale:
            _stop_runners(runners)
            shutil.rmtree(self._pod_log_dir(spec), ignore_errors=True)
        for key, spec in wanted.items():
            if key not in self.pods:
                self._start_pod(spec)
        self.pending = {n: e for n, e in self.pending.items()
                        if any(s.name == n for s in wanted.values())}
        self.write_state()

    def _kill_unwanted_leftovers(self) -> None:
        """Containers of pods whose manifest vanished while no kubelet was running."""
        running = {spec.name for spec, _ in self.pods.values()}
        for name, record in (self._previous.get("pods") or {}).items():
            if name not in running:
                _kill_stale(record.get("pid"), record.get("argv"))

    def _desired(self, relist: bool) -> dict[str, staticpod.PodSpec]:
        specs: list[staticpod.PodSpec] = []
        self.file_errors = {}
        names = self.list_manifests()
        for name in names:
            path = os.path.join(self.pod_dir, name)
            try:
                spec = self._parse_cached(path)
            except (OSError, staticpod.ManifestError) as err:
                self.file_errors[name] = f"Could not process manifest file {path}: {err}"
                old = self.last_good.get(name)
                if old is not None and not relist:
                    specs.append(old)
                continue
            self.last_good[name] = spec
            specs.append(spec)
        self.last_good = {n: s for n, s in self.last_good.items() if n in names}
        self._parsed = {p: v for p, v in self._parsed.items() if os.path.basename(p) in names}
        wanted: dict[str, staticpod.PodSpec] = {}
        self.duplicates = {}
        for spec in specs:
            if spec.full_name in wanted:
                first = os.path.basename(wanted[spec.full_name].file)
                self.duplicates.setdefault(spec.full_name, [first]).append(os.path.basename(spec.file))
                continue
            wanted[spec.full_name] = spec
        return wanted

    def _parse_cached(self, path: str) -> staticpod.PodSpec:
        """Re-parse a manifest only when its bytes changed (YAML parsing is the costly part)."""
        with open(podenv.host_path(path), "rb") as handle:
            content = handle.read()
        cached = self._parsed.get(path)
        if cached and cached[0] == content:
            return cached[1]
        spec = staticpod.parse_manifest(path, content, self.node)
        self._parsed[path] = (content, spec)
        return spec

    def _pod_log_dir(self, spec: staticpod.PodSpec) -> str:
        """Host path of the pod's log directory, named as the kubelet names it (a static
        pod's name carries the node name)."""
        return podenv.host_path(f"{POD_LOG_ROOT}/{spec.namespace}_{spec.name}-{self.node}_{spec.uid}")

    def _start_pod(self, spec: staticpod.PodSpec) -> None:
        try:
            staticpod.prepare_host_volumes(spec)
        except (staticpod.MountError, OSError) as err:
            self.pending[spec.name] = str(err)
            return
        self.pending.pop(spec.name, None)
        # the previous kubelet's container is a candidate once, at this kubelet's first start
        previous = (self._previous.get("pods") or {}).pop(spec.name, None) or {}
        adopt = previous.get("pid") if previous.get("uid") == spec.uid else None
        if previous.get("pid") and adopt is None:
            _kill_stale(previous.get("pid"), previous.get("argv"))
        if adopt is None:
            self.created[spec.name] = self.created.get(spec.name, 0) + 1
        runners = []
        for container in spec.containers:
            log_name = spec.name if len(spec.containers) == 1 else f"{spec.name}_{container.name}"
            runners.append(ContainerRunner(spec, container, self.mark_dirty, log_name,
                                           adopt_pid=adopt,
                                           pod_log_dir=os.path.join(self._pod_log_dir(spec),
                                                                    container.name),
                                           restarts=previous.get("restarts", 0) if adopt else 0))
        with self.lock:
            self.pods[spec.full_name] = (spec, runners)
        for runner in runners:
            runner.start()


def _stop_runners(runners: list[ContainerRunner]) -> None:
    for runner in runners:
        runner.stop(wait=False)
    for runner in runners:
        runner.stop(wait=True)


def _pod_record(spec: staticpod.PodSpec, runners: list[ContainerRunner], duplicates) -> dict:
    """One pod in the state file; the first container stands for the pod (kubeadm pods have one)."""
    status = runners[0].status
    record = {"namespace": spec.namespace, "file": os.path.basename(spec.file), "uid": spec.uid,
              "state": status.state, "ready": all(r.status.ready for r in runners),
              "restarts": sum(r.status.restarts for r in runners), "pid": status.pid,
              "argv": runners[0].spec.argv, "last_exit_code": status.last_exit_code,
              "last_error": next((r.status.last_error for r in runners if r.status.last_error), ""),
              "started_at": status.started_at}
    if duplicates:
        record["duplicate_files"] = duplicates
        record["error"] = (f'duplicate pod name "{spec.name}" in files {", ".join(duplicates)}: '
                           f"only {duplicates[0]} is used, the others are ignored")
    return record


def _kill_stale(pid: int | None, argv) -> None:
    """A container of an older pod version survived a kubelet restart: it must go."""
    try:
        if pid and procname.read_cmdline(pid) == argv:
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def write_state_file(state: dict) -> None:
    """Atomically replace the state file (readers never see half a file)."""
    path = podenv.host_path(STATE_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        json.dump(state, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)


def record_failure(message: str) -> None:
    """A kubelet that cannot start still says why, and keeps the (orphaned) pods listed."""
    try:
        with open(podenv.host_path(STATE_FILE)) as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        state = {}
    state["kubelet"] = {"pid": os.getpid(), "state": "failed", "error": message, "updated": time.time()}
    write_state_file(state)


# -- /healthz ---------------------------------------------------------------------------------

class _HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        ok = self.path.split("?")[0] in ("/healthz", "/healthz/")
        body = b"ok" if ok else b"404 page not found\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args) -> None:
        return


def start_healthz(config: dict, kubelet: Kubelet) -> str:
    """Serve /healthz on healthzBindAddress:healthzPort (port 0 disables it, as upstream)."""
    port = int(config.get("healthzPort") or 0)
    if not port:
        return ""
    host = podenv.node_host(str(config.get("healthzBindAddress") or "127.0.0.1"))
    try:
        server = ThreadingHTTPServer((host, port), _HealthHandler)
    except OSError as err:
        print(f'E kubelet.go] "Failed to start healthz server" err="{err}"', file=sys.stderr, flush=True)
        return f"failed: {err}"
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600}, daemon=True).start()
    return f"{host}:{port}"


# -- entry point ------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    titled = procname.apply_from_env()
    if titled is None:
        procname.exec_as(["kubelet", *(sys.argv[1:] if argv is None else argv)], module="harden.lab.kubelet")
    args = titled[1:]
    try:
        config, flags = build_config(args)
    except KubeletError as err:
        print(f'E run.go:72] "command failed" err="{err}"', file=sys.stderr, flush=True)
        record_failure(str(err))
        return 1
    if flags.get("help"):
        print("Usage: kubelet [flags] (harden lab emulation)")
        return 0
    os.environ[podenv.TIME_SCALE_ENV] = str(podenv.time_scale())  # containers use the same scale
    if flags.get("node-ip") and not podenv.node_ip():
        os.environ[podenv.NODE_IP_ENV] = flags["node-ip"].split(",")[0]
    kubelet = Kubelet(config, flags)
    signal.signal(signal.SIGTERM, lambda *_: kubelet.stop())
    signal.signal(signal.SIGINT, lambda *_: kubelet.stop())
    try:
        kubelet.serve()
    except KubeletError as err:
        print(f'E server.go] "Failed to listen and serve" err="{err}"', file=sys.stderr, flush=True)
        record_failure(str(err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
