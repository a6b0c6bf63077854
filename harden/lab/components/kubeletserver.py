"""The lab kubelet's API ports: HTTPS on address:port (10250) and the read-only HTTP port.

What hardening checks look at is reproduced: with anonymous authentication off an anonymous
request gets 401; with it on, `authorization.mode: Webhook` forbids system:anonymous (403) while
AlwaysAllow lets it read /pods and /configz; `readOnlyPort: 0` means nothing listens there.
A client certificate signed by authentication.x509.clientCAFile authenticates.
"""

from __future__ import annotations

import json
import os

from harden.lab.components import podenv, serving

CERT_DIR = "/var/lib/kubelet/pki"


class KubeletServer:
    """Answers for the kubelet's HTTPS and read-only ports from its effective config."""

    def __init__(self, config: dict, pods):
        self.config = config
        self.pods = pods  # () -> list of pod names, read at request time

    def _authorize(self, request: serving.Request) -> tuple[int, str] | None:
        """None when allowed, else (status, message) like the kubelet's auth filter."""
        authn = self.config.get("authentication") or {}
        if request.user is None:
            if not (authn.get("anonymous") or {}).get("enabled", False):
                return 401, "Unauthorized"
            mode = (self.config.get("authorization") or {}).get("mode", "Webhook")
            if mode != "AlwaysAllow":
                return 403, ("Forbidden (user=system:anonymous, verb=get, resource=nodes, "
                             f"subresource={request.path.strip('/').split('/')[0] or 'proxy'})")
        return None

    def respond(self, request: serving.Request) -> tuple[int, str, bytes]:
        denied = self._authorize(request)
        if denied:
            return denied[0], "text/plain; charset=utf-8", denied[1].encode()
        return self.read_only(request)

    def read_only(self, request: serving.Request) -> tuple[int, str, bytes]:
        path = request.path.rstrip("/") or "/"
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok"
        if path == "/pods":
            items = [{"metadata": {"name": name, "namespace": "kube-system"}} for name in self.pods()]
            return 200, "application/json", json.dumps({"kind": "PodList", "apiVersion": "v1",
                                                        "items": items}).encode()
        if path == "/configz":
            return 200, "application/json", json.dumps({"kubeletconfig": self.config}).encode()
        return 404, "text/plain", b"404 page not found\n"


def serving_pair(config: dict, cert_dir: str) -> tuple[str, str] | None:
    """(cert, key) host paths: tlsCertFile/tlsPrivateKeyFile, else <cert-dir>/kubelet.crt|key.
    None when serverTLSBootstrap waits for a CSR that nobody approved (nothing is served)."""
    if config.get("tlsCertFile") and config.get("tlsPrivateKeyFile"):
        return podenv.host_path(config["tlsCertFile"]), podenv.host_path(config["tlsPrivateKeyFile"])
    if config.get("serverTLSBootstrap"):
        current = podenv.host_path(os.path.join(cert_dir, "kubelet-server-current.pem"))
        return (current, current) if os.path.exists(current) else None
    cert = podenv.host_path(os.path.join(cert_dir, "kubelet.crt"))
    key = podenv.host_path(os.path.join(cert_dir, "kubelet.key"))
    return (cert, key) if os.path.exists(cert) and os.path.exists(key) else ("", "")


def start(config: dict, pods, cert_dir: str = CERT_DIR) -> list[str]:
    """Bind the kubelet's ports (OSError when a port is taken: the real kubelet exits)."""
    server = KubeletServer(config, pods)
    host = podenv.node_host(str(config.get("address") or "0.0.0.0"))
    listening = []
    pair = serving_pair(config, cert_dir)
    if config.get("enableServer", True) and pair is not None:
        client_ca = ((config.get("authentication") or {}).get("x509") or {}).get("clientCAFile")
        context = serving.server_context(pair[0] or None, pair[1] or None,
                                         podenv.host_path(client_ca) if client_ca else None, host)
        port = int(config.get("port") or 10250)
        serving.serve_https(host, port, context, server.respond)
        listening.append(f"https://{host}:{port}")
    read_only = int(config.get("readOnlyPort") or 0)
    if read_only:
        serving.serve_http(host, read_only, server.read_only)
        listening.append(f"http://{host}:{read_only}")
    return listening
