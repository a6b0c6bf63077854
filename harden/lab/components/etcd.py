"""etcd for lab control planes: the real Debian binary when installed, else an emulation.

Either way the container's view is checked first (certificates and the data dir must be
mounted), then the real binary replaces this process (same PID, argv exactly the manifest's),
or the emulation validates the TLS flags and serves /health.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
from urllib.parse import urlsplit

from harden.lab.components import podenv, serving
from harden.lab.components.common import FileView, StartupError, check_tls_pair
from harden.lab.components.flags import FlagError, FlagSet, Parsed, kinds_from_table

ETCD_BINARY = "/usr/bin/etcd"
EMULATE_ENV = "HARDEN_LAB_ETCD_EMULATE"
FLAGS = kinds_from_table("""
name data-dir wal-dir snapshot-count:i heartbeat-interval:i election-timeout:i
initial-election-tick-advance:b listen-peer-urls listen-client-urls listen-metrics-urls
max-snapshots:i max-wals:i quota-backend-bytes:i backend-bbolt-freelist-type
backend-batch-interval:d backend-batch-limit:i max-txn-ops:i max-request-bytes:i
grpc-keepalive-min-time:d grpc-keepalive-interval:d grpc-keepalive-timeout:d socket-reuse-port:b
socket-reuse-address:b initial-advertise-peer-urls initial-cluster initial-cluster-state
initial-cluster-token advertise-client-urls discovery discovery-fallback discovery-proxy
discovery-srv discovery-srv-name strict-reconfig-check:b auto-compaction-retention
auto-compaction-mode enable-v2:b v2-deprecation cert-file key-file client-cert-auth:b
client-crl-file client-cert-allowed-hostname trusted-ca-file auto-tls:b peer-cert-file
peer-key-file peer-client-cert-auth:b peer-crl-file peer-trusted-ca-file peer-auto-tls:b
peer-cert-allowed-cn peer-cert-allowed-hostname cipher-suites tls-min-version tls-max-version
cors host-whitelist logger log-outputs log-level enable-log-rotation:b log-rotation-config-json
debug:b enable-pprof:b metrics self-signed-cert-validity:i unsafe-no-fsync:b
experimental-initial-corrupt-check:b experimental-corrupt-check-time:d
experimental-compact-hash-check-enabled:b experimental-compact-hash-check-time:d
experimental-watch-progress-notify-interval:d experimental-warning-apply-duration:d
experimental-enable-distributed-tracing:b experimental-peer-skip-client-san-verification:b
experimental-memory-mlock:b experimental-snapshot-catchup-entries:i
experimental-enable-lease-checkpoint:b experimental-compaction-batch-limit:i
experimental-txn-mode-write-with-shared-buffer:b config-file version:b help:b
""")
FILE_FLAGS = ("cert-file", "key-file", "trusted-ca-file", "peer-cert-file", "peer-key-file",
              "peer-trusted-ca-file", "client-crl-file", "peer-crl-file", "config-file")


def parse(args: list[str]) -> Parsed:
    """Go's flag package: `-flag` or `--flag`; bools never take a separate value."""
    normalised = ["-" + a if a.startswith("-") and not a.startswith("--") and len(a) > 1 else a
                  for a in args]
    try:
        parsed = FlagSet("etcd", FLAGS, positional_allowed=True).parse(normalised)
    except FlagError as err:
        text = str(err)
        if text.startswith("unknown flag: --"):
            text = f"flag provided but not defined: -{text[len('unknown flag: --'):]}"
        raise StartupError(text) from None
    if parsed.positional:
        raise StartupError(f"'{parsed.positional[0]}' is not a valid flag")
    return parsed


def validate_tls(flags: Parsed) -> list[str]:
    """embed.Config.Validate / ClientTLSInfo rules that hardening flags touch."""
    errors = []
    client_urls = str(flags.get("listen-client-urls", "http://localhost:2379")).split(",")
    peer_urls = str(flags.get("listen-peer-urls", "http://localhost:2380")).split(",")
    https_client = any(u.startswith("https://") for u in client_urls)
    if https_client and not flags.get("auto-tls") and not (flags.get("cert-file") and flags.get("key-file")):
        errors.append(f"TLS key/cert (--cert-file, --key-file) must be provided for client url "
                      f"{next(u for u in client_urls if u.startswith('https://'))} with HTTPS scheme")
    if any(u.startswith("https://") for u in peer_urls) and not flags.get("peer-auto-tls") \
            and not (flags.get("peer-cert-file") and flags.get("peer-key-file")):
        errors.append("TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer "
                      "url with HTTPS scheme")
    if flags.get("client-cert-auth") and not flags.get("trusted-ca-file") and https_client:
        errors.append("--client-cert-auth requires --trusted-ca-file to verify client certificates")
    if flags.get("peer-client-cert-auth") and not flags.get("peer-trusted-ca-file"):
        errors.append("--peer-client-cert-auth requires --peer-trusted-ca-file")
    return errors


def check_view(flags: Parsed, view: FileView) -> None:
    for flag in FILE_FLAGS:
        if flags.get(flag):
            view.require(flags.get(flag))
    data_dir = flags.get("data-dir") or f"{flags.get('name', 'default')}.etcd"
    if os.path.isabs(data_dir) and podenv.visible_host_path(data_dir, view.mounts) is None:
        raise StartupError(f"cannot access data directory: mkdir {data_dir}: read-only file system")
    for cert, key in (("cert-file", "key-file"), ("peer-cert-file", "peer-key-file")):
        if flags.get(cert) and flags.get(key):
            check_tls_pair(view, flags.get(cert), flags.get(key))


def exec_real(argv: list[str]) -> None:
    """Become the real etcd. Under a test root prefix, path flags point into that root."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARDEN_LAB_")}
    args = list(argv)
    if os.environ.get(podenv.ROOT_ENV):
        args = [_rooted(a) for a in args]
    os.execve(ETCD_BINARY, args, env)


def _rooted(arg: str) -> str:
    name, eq, value = arg.partition("=")
    if eq and name.lstrip("-") in FILE_FLAGS + ("data-dir", "wal-dir") and value.startswith("/"):
        return f"{name}={podenv.host_path(value)}"
    return arg


def emulate(flags: Parsed, view: FileView) -> None:
    """Serve /health over each client URL (TLS as configured) and metrics URL."""
    health = json.dumps({"health": "true", "reason": ""}).encode()

    def respond(request: serving.Request) -> tuple[int, str, bytes]:
        if request.path == "/health":
            return 200, "application/json", health
        return 404, "text/plain", b"404 page not found\n"

    urls = str(flags.get("listen-client-urls", "http://localhost:2379")).split(",")
    urls += [u for u in str(flags.get("listen-metrics-urls", "")).split(",") if u]
    for url in urls:
        parts = urlsplit(url)
        host = podenv.node_host(parts.hostname or "")
        if parts.scheme == "https":
            ca = view.require(flags.get("trusted-ca-file")) if flags.get("client-cert-auth") else None
            context = serving.server_context(view.require(flags.get("cert-file")),
                                             view.require(flags.get("key-file")), ca, host)
            if ca:
                context.verify_mode = ssl.CERT_REQUIRED
            serving.serve_https(host, parts.port or 2379, context, respond)
        else:
            serving.serve_http(host, parts.port or 2379, respond)


def main(argv: list[str]) -> int:
    view = FileView.from_env()
    try:
        flags = parse(argv[1:])
        errors = validate_tls(flags)
        if errors:
            raise StartupError(errors[0])
        check_view(flags, view)
        if os.path.exists(ETCD_BINARY) and os.environ.get(EMULATE_ENV) != "1":
            sys.stdout.flush()
            exec_real(argv)
        emulate(flags, view)
    except (StartupError, OSError) as err:
        print(json.dumps({"level": "fatal", "msg": "failed to start etcd", "error": str(err)}),
              file=sys.stderr, flush=True)
        return 1
    serving.wait_forever()
    return 0
