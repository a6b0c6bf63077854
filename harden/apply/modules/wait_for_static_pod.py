"""`wait_for_static_pod`: what "the component runs the new manifest and is healthy" means.

The runner polls (with tenacity, up to `timeout`) until `successes` consecutive checks pass.
One check is one exec of `WaitSpec.check_command()` on the node: it finds the process whose
argv is exactly the manifest's command + args (so the new container, not the old one) and
fetches each of the manifest's own httpGet probes from the node (curl or wget when present).
When the node has neither, the runner fetches `WaitSpec.probes` through an SSH direct-tcpip
channel instead. `interpret()` turns the output into a verdict.

The same exec reads what the kubelet logs about the new pod (`PodLogs`): every kubelet writes
a container's attempts to `/var/log/pods/<ns>_<pod>-<node>_<uid>/<container>/<N>.log`, N being
the restart count. The newest such directory created after the manifest was written belongs to
the pod that write made; its highest N says how often the new container restarted and its last
lines why it ended. So a component that cannot start (an unknown flag) fails the wait within a
few polls, with its own error, instead of at the timeout.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.manifest import Manifest
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.apply.run_vars import wait_interval, wait_successes
from harden.node.paths import MANIFEST_DIR



@dataclass(frozen=True)
class HttpProbe:
    """One HTTP(S) GET as the kubelet would do it (200-399 = success, no certificate check)."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme.lower()}://{host}:{self.port}{self.path}"

    def shell(self, tag: str) -> str:
        """Prints `H <tag> <status>`; status 000 = no answer, 'none' = no HTTP client."""
        url = shlex.quote(self.url)
        return (f"if command -v curl >/dev/null 2>&1; then "
                f"printf 'H {tag} %s\\n' \"$(curl -sk -o /dev/null -m 5 -w '%{{http_code}}' "
                f"{url} || true)\"; "
                f"elif command -v wget >/dev/null 2>&1; then "
                f"if wget -q -T 5 --no-check-certificate -O /dev/null {url}; "
                f"then echo 'H {tag} 200'; else echo 'H {tag} 000'; fi; "
                f"else echo 'H {tag} none'; fi")


POD_LOG_ROOT = "/var/log/pods"
LOG_LINES, LOG_LINE_CHARS = 5, 300        # how much of a crashed attempt's log one poll reads
CRI_PREFIX = re.compile(r"^\S+ (?:stdout|stderr) [FP] ")


@dataclass(frozen=True)
class PodLogs:
    """Where the kubelet logs the pod a manifest defines, and the manifest it must be newer
    than (a pod directory older than the write belongs to an earlier version of the pod)."""

    namespace: str
    pod: str
    container: str
    manifest: str

    def shell(self) -> str:
        """Prints `R <restarts>` and, from the newest non-empty attempt log, `T <line>`s."""
        # the pod directory's mtime is its creation (it only ever gets the container
        # directories then): a pod that crash-loops on after the write is still older
        pattern = shlex.quote(f"{POD_LOG_ROOT}/{self.namespace}_{self.pod}-") + "*_*"
        manifest = shlex.quote(self.manifest)
        return "\n".join([
            f"p=$(ls -1dt {pattern} 2>/dev/null | head -n 1); d=\"$p\"/{shlex.quote(self.container)}",
            f'if [ -n "$p" ] && [ -n "$(find -L "$p" -prune -newer {manifest} 2>/dev/null)" ]; then',
            '  n=-1; for f in "$d"/*.log; do b=${f##*/}; b=${b%.log}',
            '    case $b in ""|*[!0-9]*) continue;; esac; [ "$b" -gt "$n" ] && n=$b; done',
            '  if [ "$n" -ge 0 ]; then echo "R $n"',
            '    f="$d/$n.log"; [ -s "$f" ] || f="$d/$((n - 1)).log"',
            f'    [ -f "$f" ] && tail -n {LOG_LINES} "$f" | cut -c1-{LOG_LINE_CHARS} '
            "| sed 's/^/T /'",
            "  fi",
            "fi"])


@dataclass
class CheckResult:
    """One poll: the matching process (pid, age in s), each probe's HTTP status, and the new
    pod's restart count and last log lines as the kubelet logged them (None: no log found)."""

    pids: list[int] = field(default_factory=list)
    age: int | None = None
    probe_status: dict[str, str] = field(default_factory=dict)
    restarts: int | None = None
    log_tail: list[str] = field(default_factory=list)

    def healthy(self, previous_pids: set[int] = frozenset()) -> bool:
        new = [p for p in self.pids if p not in previous_pids]
        return bool(new) and all(_ok(s) for s in self.probe_status.values())

    def needs_tunnel(self) -> bool:
        return any(s == "none" for s in self.probe_status.values())


def _ok(status: str) -> bool:
    return status.isdigit() and 200 <= int(status) < 400


@dataclass
class WaitSpec:
    """Everything the runner needs to wait for a component (or the kubelet) to be healthy."""

    what: str
    argv: list[str] | None
    probes: list[HttpProbe]
    successes: int
    timeout: float
    interval: float
    service: str | None = None
    pod_logs: PodLogs | None = None
    max_restarts: int = 2     # exits of the new container that fail the wait at once (0: never)

    def check_command(self) -> str:
        lines = ["LC_ALL=C; export LC_ALL"]
        if self.argv is not None:
            wanted = shlex.quote(" ".join(self.argv))
            # -ww: full argv even when the login environment sets COLUMNS
            lines.append(f"ps -ww -eo pid=,etimes=,args= | awk -v want={wanted} "
                         "'{line=$0; sub(/^ *[0-9]+ +[0-9]+ /, \"\", line); "
                         "if (line == want) print \"P\", $1, $2}'")
        if self.service:
            lines.append(f"printf 'S %s\\n' \"$(systemctl is-active "
                         f"{shlex.quote(self.service)} 2>/dev/null || true)\"")
        lines += [probe.shell(str(i)) for i, probe in enumerate(self.probes)]
        if self.pod_logs is not None:
            lines.append(self.pod_logs.shell())
        return "\n".join(lines) + "\n"

    def interpret(self, output: str) -> CheckResult:
        result = CheckResult()
        for line in output.splitlines():
            parts = line.split()
            if parts[:1] == ["P"] and len(parts) == 3:
                result.pids.append(int(parts[1]))
                result.age = int(parts[2]) if result.age is None else min(result.age,
                                                                          int(parts[2]))
            elif parts[:1] == ["S"]:
                result.probe_status["service"] = "200" if parts[1:] == ["active"] else "000"
            elif parts[:1] == ["H"] and len(parts) == 3:
                result.probe_status[parts[1]] = parts[2]
            elif parts[:1] == ["R"] and len(parts) == 2 and parts[1].isdigit():
                result.restarts = int(parts[1])
            elif line.startswith("T "):
                result.log_tail.append(CRI_PREFIX.sub("", line[2:]).rstrip())
        if self.argv is None:
            result.pids = result.pids or [0]     # nothing to match: probes decide
        return result


DEFAULT_SUCCESSES, DEFAULT_INTERVAL = 3, 2.0


class WaitForStaticPodModule(Module):
    name = "wait_for_static_pod"
    args = (
        Arg("name", required=True),
        Arg("manifest"),
        Arg("container"),
        Arg("successes", "int"),
        Arg("timeout", "int", default=300),
        Arg("interval", "number"),
        Arg("max_restarts", "int", default=2),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, _manifest_path(args), content=True)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        self.wait_spec(args, facts)           # fails early when the manifest is unusable
        return []

    def wait_spec(self, args: dict, facts: Facts, variables: dict | None = None) -> WaitSpec:
        path = _manifest_path(args)
        state = facts.file(path, content=True)
        if state is None:
            raise TaskFailed(f"wait_for_static_pod: {path} does not exist on this host")
        manifest = Manifest(state.content.decode(), path)
        probes = []
        for probe in manifest.probes(args["container"]).values():
            http = probe.get("httpGet")
            if not isinstance(http, dict):
                continue
            port = http.get("port")
            if not isinstance(port, int):
                raise TaskFailed(f"wait_for_static_pod: {path}: named probe port {port!r} "
                                 "is not supported")
            candidate = HttpProbe(str(http.get("scheme", "HTTP")), str(http.get("host")
                                  or "127.0.0.1"), port, str(http.get("path", "/")))
            if candidate not in probes:
                probes.append(candidate)
        successes, interval = pace(args, variables)
        return WaitSpec(f"static pod {args['name']}", manifest.argv(args["container"]), probes,
                        successes, args["timeout"], interval,
                        pod_logs=_pod_logs(manifest, args["container"], path),
                        max_restarts=args["max_restarts"])


def _pod_logs(manifest: Manifest, container: str | None, path: str) -> PodLogs | None:
    """Where the kubelet logs this manifest's pod; None when the manifest lacks the names (the
    kubelet would not run it either, so the wait simply times out)."""
    name, namespace = manifest.value(["metadata", "name"]), manifest.value(["metadata", "namespace"])
    containers = manifest.value(["spec", "containers"]) or []
    if container is None and containers and isinstance(containers[0], dict):
        container = containers[0].get("name")
    if not all(isinstance(v, str) and v for v in (name, container)):
        return None
    return PodLogs(str(namespace or "default"), name, container, path)


def pace(args: dict, variables: dict | None) -> tuple[int, float]:
    """(successes in a row, seconds between polls): the task's own arguments, else the
    inventory/-e variables harden_wait_successes and harden_wait_interval, else 3 and 2 s.

    Production wants patient polling; a lab whose components restart in a second does not,
    and one `-e harden_wait_interval=0.5` should tune every wait of a run, implicit ones too.
    """
    variables = variables or {}
    successes, interval = args["successes"], args["interval"]
    try:
        if successes is None:
            successes = wait_successes(variables.get("harden_wait_successes",
                                                     DEFAULT_SUCCESSES))
        if interval is None:
            interval = wait_interval(variables.get("harden_wait_interval", DEFAULT_INTERVAL))
    except ValueError as exc:          # a template rendered to something odd for this host
        raise TaskFailed(f"harden_wait_successes / harden_wait_interval: {exc}") from None
    return successes, interval


def _manifest_path(args: dict) -> str:
    return args["manifest"] or f"{MANIFEST_DIR}/{args['name']}.yaml"


MODULE = WaitForStaticPodModule()
