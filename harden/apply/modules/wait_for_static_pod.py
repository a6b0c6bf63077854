"""`wait_for_static_pod`: what "the component runs the new manifest and is healthy" means.

The runner polls (with tenacity, up to `timeout`) until `successes` consecutive checks pass.
One check is one exec of `WaitSpec.check_command()` on the node: it finds the process whose
argv is exactly the manifest's command + args (so the new container, not the old one) and
fetches each of the manifest's own httpGet probes from the node (curl or wget when present).
When the node has neither, the runner fetches `WaitSpec.probes` through an SSH direct-tcpip
channel instead. `interpret()` turns the output into a verdict.
"""

from __future__ import annotations

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


@dataclass
class CheckResult:
    """One poll: the matching process (pid, age in s) and each probe's HTTP status."""

    pids: list[int] = field(default_factory=list)
    age: int | None = None
    probe_status: dict[str, str] = field(default_factory=dict)

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
                        successes, args["timeout"], interval)


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
