"""Waiting until a component is healthy, judged from the node as the kubelet judges it.

The wait modules say *what* healthy means (`WaitSpec`: the exact argv of the new container and
the manifest's own HTTP probes, or the kubelet's service state and /healthz); this module does
the waiting: one exec per poll, `successes` healthy polls in a row within `timeout`. A process
seen before the change (`previous_pids`) does not count: kubeadm learnt that checking too early
finds the OLD pod healthy and proceeds. When the node has neither curl nor wget, the probes are
fetched through an SSH direct-tcpip channel, so the request still comes from the node.

A component that cannot start fails the wait early: when the new pod's container has restarted
`max_restarts` times (the kubelet's pod log, see wait_for_static_pod.PodLogs), or that many new
processes were seen and died between polls, and no new process runs at that poll, the wait stops
with the component's last log lines.
The timeout is left for a component that runs but never turns healthy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from harden.apply.modules.wait_for_static_pod import CheckResult, HttpProbe, WaitSpec
from harden.ssh.session import Session

PROBE_TIMEOUT = 5.0


@dataclass
class HealthResult:
    healthy: bool
    polls: int
    detail: str          # the last observation in words (for the failure message)
    crashed: bool = False   # stopped early: the component exits instead of running

    def failure(self, timeout: float) -> str:
        """Why the wait failed, in words for the task line."""
        if self.crashed:
            return f"failed to start: {self.detail}"
        return f"not healthy after {timeout:g}s: {self.detail}"


class _Crashed(Exception):
    """The component keeps exiting: waiting longer cannot make it healthy."""


def wait_healthy(session: Session, spec: WaitSpec, previous_pids: set[int] | frozenset = frozenset(),
                 *, become: bool | None = None, sleep: Callable[[float], None] = time.sleep,
                 timeout: float | None = None) -> HealthResult:
    """Poll until `spec.successes` consecutive healthy checks, or give up after the timeout.

    `become` as for the play: asking a service manager about a service may need root."""
    state = {"streak": 0, "polls": 0, "detail": "not checked yet"}
    churn = _PidChurn(set(previous_pids))

    def poll() -> bool:
        result = check_once(session, spec, become)
        state["polls"] += 1
        state["detail"] = describe(spec, result, previous_pids)
        healthy = result.healthy(set(previous_pids))
        state["streak"] = state["streak"] + 1 if healthy else 0
        exits = max(result.restarts or 0, churn.exits(result.pids))
        running = [p for p in result.pids if p not in previous_pids]
        # a container that keeps exiting is down between its attempts; one the kubelet keeps
        # restarting because it starts slowly (probe kills) is running most of the time
        if not healthy and spec.argv is not None and not running \
                and 0 < spec.max_restarts <= exits:
            state["detail"] = describe_crash(spec, result, exits)
            raise _Crashed()
        return state["streak"] >= spec.successes

    # tenacity and (in _tls_exchange) ssl are imported here, at the first health gate: an
    # apply imports this module before its first connection, and most runs never wait
    from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

    retrying = Retrying(stop=stop_after_delay(timeout if timeout is not None else spec.timeout),
                        wait=wait_fixed(spec.interval), retry=retry_if_result(lambda ok: not ok),
                        sleep=sleep)
    try:
        retrying(poll)
        return HealthResult(True, state["polls"], state["detail"])
    except RetryError:
        return HealthResult(False, state["polls"], state["detail"])
    except _Crashed:
        return HealthResult(False, state["polls"], state["detail"], crashed=True)


class _PidChurn:
    """New processes with the manifest's argv seen by one poll and gone by a later one: each is
    an exit the kubelet's log may not show yet (or at all, on a node without pod logs)."""

    def __init__(self, previous: set[int]):
        self.previous, self.seen, self.gone = previous, set(), set()

    def exits(self, pids: list[int]) -> int:
        current = set(pids) - self.previous
        self.gone |= self.seen - current
        self.seen |= current
        return len(self.gone)


def describe_crash(spec: WaitSpec, result: CheckResult, exits: int) -> str:
    """The component, how often it exited, and its own last words (the log's error line)."""
    what = f"{spec.what}: the new container exited {exits} time(s) and is restarted by the " \
           f"kubelet (crash loop)"
    lines = [line for line in result.log_tail if line.strip()]
    if not lines:
        return what + "; no container log found under /var/log/pods"
    return what + "; last log lines: " + " | ".join(lines[-3:])


def check_once(session: Session, spec: WaitSpec, become: bool | None = None) -> CheckResult:
    """One exec on the node; probes the node cannot fetch itself go through a tunnel."""
    out = session.run("sh -s", become=become, stdin=spec.check_command().encode(),
                      timeout=PROBE_TIMEOUT * (len(spec.probes) + 2))
    result = spec.interpret(out.stdout.decode(errors="replace"))
    if result.needs_tunnel():
        for index, probe in enumerate(spec.probes):
            if result.probe_status.get(str(index)) == "none":
                result.probe_status[str(index)] = tunnel_status(session, probe)
    return result


def describe(spec: WaitSpec, result: CheckResult, previous_pids) -> str:
    if spec.argv is not None and not result.pids:
        return f"{spec.what}: no process runs with the expected arguments"
    if spec.argv is not None and not [p for p in result.pids if p not in previous_pids]:
        return f"{spec.what}: only the process from before the change runs"
    failing = {k: v for k, v in result.probe_status.items() if not _ok(v)}
    if failing:
        names = {str(i): p.url for i, p in enumerate(spec.probes)}
        return f"{spec.what}: " + ", ".join(f"{names.get(k, k)} -> {v}"
                                            for k, v in sorted(failing.items()))
    return f"{spec.what}: healthy"


def _ok(status: str) -> bool:
    return status.isdigit() and 200 <= int(status) < 400


def tunnel_status(session: Session, probe: HttpProbe) -> str:
    """HTTP status of a GET made through the node (direct-tcpip); '000' when no answer."""
    try:
        channel = session.open_tcp(probe.host, probe.port, timeout=PROBE_TIMEOUT)
    except Exception:    # noqa: BLE001 - a refused connection is an unhealthy probe
        return "000"
    try:
        channel.settimeout(PROBE_TIMEOUT)
        request = (f"GET {probe.path} HTTP/1.1\r\nHost: {probe.host}:{probe.port}\r\n"
                   "Connection: close\r\n\r\n").encode()
        if probe.scheme.upper() == "HTTPS":
            head = _tls_exchange(channel, request)
        else:
            channel.sendall(request)
            head = _read_some(channel.recv)
        return _status_of(head)
    except Exception:    # noqa: BLE001 - any failure talking to it is an unhealthy probe
        return "000"
    finally:
        channel.close()


def _status_of(head: bytes) -> str:
    parts = head.split(b"\r\n", 1)[0].split()
    return parts[1].decode() if len(parts) >= 2 and parts[1].isdigit() else "000"


def _read_some(recv, limit: int = 4096) -> bytes:
    data = b""
    while b"\r\n" not in data and len(data) < limit:
        chunk = recv(1024)
        if not chunk:
            break
        data += chunk
    return data


def _tls_exchange(channel, request: bytes) -> bytes:
    """TLS over a paramiko channel (no file descriptor, so through memory BIOs). Like the
    kubelet's probes, the certificate is not verified."""
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)

    def pump(call):
        while True:
            try:
                result = call()
            except ssl.SSLWantReadError:
                if outgoing.pending:
                    channel.sendall(outgoing.read())
                data = channel.recv(16384)
                if not data:
                    raise ConnectionError("closed during TLS")
                incoming.write(data)
                continue
            if outgoing.pending:
                channel.sendall(outgoing.read())
            return result

    pump(tls.do_handshake)
    pump(lambda: tls.write(request))
    return _read_some(lambda n: pump(lambda: tls.read(n)))
