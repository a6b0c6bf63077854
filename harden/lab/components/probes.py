"""One probe attempt, judged as the kubelet's prober does.

httpGet: success is a status in [200, 400); HTTPS certificates are not verified (the kubelet
doesn't either); the host defaults to the pod IP, which for hostNetwork static pods is the node.
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import subprocess

from harden.lab.components import podenv
from harden.lab.components.staticpod import Probe


def _port(value, ports: dict[str, int]) -> int:
    if isinstance(value, int):
        return value
    if str(value).isdigit():
        return int(value)
    if value in ports:
        return ports[value]
    raise ValueError(f"unknown named port {value!r}")


def run_probe(probe: Probe, ports: dict[str, int], timeout: float) -> tuple[bool, str]:
    """(succeeded, why) for one attempt of `probe`."""
    try:
        if probe.kind == "httpGet":
            return _http(probe.action, ports, timeout)
        if probe.kind == "tcpSocket":
            host = podenv.node_host(str(probe.action.get("host") or ""))
            with socket.create_connection((host, _port(probe.action.get("port"), ports)), timeout):
                return True, "connected"
        if probe.kind == "exec":
            done = subprocess.run(probe.action.get("command") or [], capture_output=True,
                                  timeout=timeout, check=False)
            return done.returncode == 0, f"exit code {done.returncode}"
        return False, f"{probe.kind} probes are not supported by the lab"
    except (OSError, ValueError, subprocess.TimeoutExpired, http.client.HTTPException) as err:
        return False, f"{type(err).__name__}: {err}"


@functools.lru_cache(maxsize=1)
def _insecure_context() -> ssl.SSLContext:
    """One shared client context: building one per probe (CA store loading) costs real CPU."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _http(action: dict, ports: dict[str, int], timeout: float) -> tuple[bool, str]:
    host = podenv.node_host(str(action.get("host") or ""))
    port = _port(action.get("port"), ports)
    path = str(action.get("path") or "/")
    if str(action.get("scheme") or "HTTP").upper() == "HTTPS":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                                       context=_insecure_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
    headers.setdefault("User-Agent", "kube-probe/1.31")
    try:
        conn.request("GET", path, headers=headers)
        status = conn.getresponse().status
    finally:
        conn.close()
    return 200 <= status < 400, f"HTTP probe failed with statuscode: {status}" if status >= 400 \
        else f"HTTP {status}"
