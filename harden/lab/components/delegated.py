"""Shared start-up and serving of kube-controller-manager and kube-scheduler.

Both use the generic "delegated" secure serving: HTTPS on --bind-address:--secure-port
(a self-signed in-memory cert unless --tls-cert-file is set; port 0 disables serving), and
--authorization-always-allow-paths (default /healthz,/readyz,/livez) answer anonymous requests.
"""

from __future__ import annotations

import json
import ssl

import yaml

from harden.lab.components import podenv, serving
from harden.lab.components.common import FileView, StartupError, check_tls_pair, cipher_errors
from harden.lab.components.flags import FlagError, FlagSet, Parsed

DELEGATED_FLAGS = """
bind-address:ip cert-dir http2-max-streams-per-connection:i permit-address-sharing:b
permit-port-sharing:b secure-port:i tls-cert-file tls-cipher-suites:l tls-min-version
tls-private-key-file tls-sni-cert-key:l authentication-kubeconfig authentication-skip-lookup:b
authentication-token-webhook-cache-ttl:d authentication-tolerate-lookup-failure:b client-ca-file
requestheader-allowed-names:l requestheader-client-ca-file requestheader-extra-headers-prefix:l
requestheader-group-headers:l requestheader-username-headers:l requestheader-uid-headers:l
authorization-always-allow-paths:l authorization-kubeconfig
authorization-webhook-cache-authorized-ttl:d authorization-webhook-cache-unauthorized-ttl:d
contention-profiling:b profiling:b kubeconfig master kube-api-burst:i kube-api-content-type
kube-api-qps:f leader-elect:b leader-elect-lease-duration:d leader-elect-renew-deadline:d
leader-elect-resource-lock leader-elect-resource-name leader-elect-resource-namespace
leader-elect-retry-period:d feature-gates:m allow-metric-labels:m allow-metric-labels-manifest
disabled-metrics:l show-hidden-metrics-for-version log-flush-frequency:d log-json-info-buffer-size
log-json-split-stream:b log-text-info-buffer-size log-text-split-stream:b logging-format v:i vmodule
help:b version:o
"""
KUBECONFIG_FLAGS = ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")
CERT_FLAGS = ("client-ca-file", "requestheader-client-ca-file")


def load_kubeconfig(view: FileView, path: str) -> None:
    """clientcmd: the file must be a kubeconfig with at least one cluster and context."""
    try:
        with open(view.require(path)) as handle:
            doc = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise StartupError(f"invalid configuration: error loading config file \"{path}\": {err}") from None
    if not isinstance(doc, dict) or not doc.get("clusters") or not doc.get("contexts"):
        raise StartupError(f"invalid configuration: no configuration has been provided, try setting "
                           f"KUBERNETES_MASTER environment variable ({path})")


def start(command: str, kinds: dict[str, str], argv: list[str], file_flags: tuple[str, ...],
          validate=None) -> int:
    """Parse, validate, open files, serve; the exit status the real component would have."""
    try:
        flags = FlagSet(command, kinds, {"v": "v", "h": "help"}).parse(argv[1:])
    except FlagError as err:
        return serving.flag_error(command, str(err))
    early = serving.informational(command, flags)
    if early is not None:
        return early
    errors = cipher_errors(flags.get("tls-cipher-suites") or []) + (validate(flags) if validate else [])
    port = flags.get("secure-port", default_port(command))
    if not 0 <= port <= 65535:
        errors.append(f"--secure-port {port} must be between 0 and 65535, inclusive. 0 for turning "
                      f"off secure port")
    if errors:
        return serving.command_failed(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
    view = FileView.from_env()
    try:
        for flag in KUBECONFIG_FLAGS:
            if flags.has(flag):
                load_kubeconfig(view, flags.get(flag))
        for flag in CERT_FLAGS + file_flags:
            if flags.has(flag):
                view.require(flags.get(flag))
        if flags.has("tls-cert-file") and flags.has("tls-private-key-file"):
            check_tls_pair(view, flags.get("tls-cert-file"), flags.get("tls-private-key-file"))
        if port:
            _serve(flags, view, port)
    except StartupError as err:
        return serving.command_failed(str(err))
    except ssl.SSLError as err:
        return serving.command_failed(f"failed to load serving certificate: {err}")
    serving.wait_forever()
    return 0


def default_port(command: str) -> int:
    return 10259 if command == "kube-scheduler" else 10257


def _serve(flags: Parsed, view: FileView, port: int) -> None:
    host = podenv.node_host(flags.get("bind-address", "0.0.0.0"))
    cert = flags.get("tls-cert-file")
    context = serving.server_context(
        view.require(cert) if cert else None,
        view.require(flags.get("tls-private-key-file")) if cert else None,
        view.require(flags.get("client-ca-file")) if flags.has("client-ca-file") else None, host)
    allowed = set(flags.get("authorization-always-allow-paths") or ["/healthz", "/readyz", "/livez"])

    def respond(request: serving.Request) -> tuple[int, str, bytes]:
        path = request.path.rstrip("/") or "/"
        if path in allowed or any(a.endswith("*") and path.startswith(a[:-1]) for a in allowed):
            if path.split("/")[1] in ("healthz", "readyz", "livez"):
                return 200, "text/plain; charset=utf-8", b"ok"
            return 404, "text/plain", b"404 page not found\n"
        if request.user is None:
            body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f'forbidden: User "system:anonymous" cannot get path "{path}"',
                    "reason": "Forbidden", "details": {}, "code": 403}
            return 403, "application/json", json.dumps(body).encode()
        return 404, "text/plain", b"404 page not found\n"

    try:
        serving.serve_https(host, port, context, respond)
    except OSError as err:
        raise StartupError(f"failed to create listener: failed to listen on {host}:{port}: listen "
                           f"tcp {host}:{port}: bind: {(err.strerror or str(err)).lower()}") from None
