"""Emulated kube-apiserver (flag set of v1.33): refuses to start exactly where the real one does.

Start-up order mirrors the real server: parse flags (cobra/pflag errors), validate options
(admission plugins, authorization modes, anonymous-auth vs. authentication config, ...), load
every referenced file *as the container sees it* (through the pod's hostPath mounts), validate
the config files, then serve HTTPS on --bind-address:--secure-port with /livez, /readyz, /healthz.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import ssl
import threading
import time

from harden.lab.components import apiconfig, kubeapi, podenv, serving
from harden.lab.components.encryption import Transformers
from harden.lab.components.etcdclient import EtcdClient
from harden.lab.components.audit import AuditLog
from harden.lab.components.common import FileView, StartupError, check_tls_pair, cipher_errors
from harden.lab.components.flags import FlagError, FlagSet, Parsed, kinds_from_table

COMMAND = "kube-apiserver"
SEED_ENV = "HARDEN_LAB_SEED"       # the lab's seed objects (JSON), created at first start
FLAGS = kinds_from_table("""
advertise-address:ip cloud-provider-gce-l7lb-src-cidrs cloud-provider-gce-lb-src-cidrs
cors-allowed-origins:l default-not-ready-toleration-seconds:i
default-unreachable-toleration-seconds:i enable-priority-and-fairness:b emulated-version:l
external-hostname feature-gates:m goaway-chance:f livez-grace-period:d
max-mutating-requests-inflight:i max-requests-inflight:i min-request-timeout:i request-timeout:d
shutdown-delay-duration:d shutdown-send-retry-after:b shutdown-watch-termination-grace-period:d
strict-transport-security-directives:l delete-collection-workers:i enable-garbage-collector:b
encryption-provider-config encryption-provider-config-automatic-reload:b etcd-cafile etcd-certfile
etcd-compaction-interval:d etcd-count-metric-poll-period:d etcd-db-metric-poll-interval:d
etcd-healthcheck-timeout:d etcd-keyfile etcd-prefix etcd-readycheck-timeout:d etcd-servers:l
etcd-servers-overrides:l lease-reuse-duration-seconds:i storage-backend storage-media-type
storage-initialization-timeout:d watch-cache:b watch-cache-sizes:l default-watch-cache-size:i
bind-address:ip cert-dir http2-max-streams-per-connection:i permit-address-sharing:b
permit-port-sharing:b secure-port:i tls-cert-file tls-cipher-suites:l tls-min-version
tls-private-key-file tls-sni-cert-key:l audit-log-batch-buffer-size:i audit-log-batch-max-size:i
audit-log-batch-max-wait:d audit-log-batch-throttle-burst:i audit-log-batch-throttle-enable:b
audit-log-batch-throttle-qps:f audit-log-compress:b audit-log-format audit-log-maxage:i
audit-log-maxbackup:i audit-log-maxsize:i audit-log-mode audit-log-path
audit-log-truncate-enabled:b audit-log-truncate-max-batch-size:i audit-log-truncate-max-event-size:i
audit-log-version audit-policy-file audit-webhook-batch-buffer-size:i audit-webhook-batch-max-size:i
audit-webhook-batch-max-wait:d audit-webhook-batch-throttle-burst:i
audit-webhook-batch-throttle-enable:b audit-webhook-batch-throttle-qps:f audit-webhook-config-file
audit-webhook-initial-backoff:d audit-webhook-mode audit-webhook-truncate-enabled:b
audit-webhook-truncate-max-batch-size:i audit-webhook-truncate-max-event-size:i
audit-webhook-version contention-profiling:b debug-socket-path profiling:b anonymous-auth:b
api-audiences:l authentication-config authentication-token-webhook-cache-ttl:d
authentication-token-webhook-config-file authentication-token-webhook-version client-ca-file
enable-bootstrap-token-auth:b oidc-ca-file oidc-client-id oidc-groups-claim oidc-groups-prefix
oidc-issuer-url oidc-required-claim:m oidc-signing-algs:l oidc-username-claim oidc-username-prefix
requestheader-allowed-names:l requestheader-client-ca-file requestheader-extra-headers-prefix:l
requestheader-group-headers:l requestheader-username-headers:l requestheader-uid-headers:l
service-account-extend-token-expiration:b service-account-issuer:l service-account-jwks-uri
service-account-key-file:l service-account-lookup:b service-account-max-token-expiration:d
token-auth-file authorization-config authorization-mode:l authorization-policy-file
authorization-webhook-cache-authorized-ttl:d authorization-webhook-cache-unauthorized-ttl:d
authorization-webhook-config-file authorization-webhook-version runtime-config:m
egress-selector-config-file admission-control:l admission-control-config-file
disable-admission-plugins:l enable-admission-plugins:l allow-metric-labels:m
allow-metric-labels-manifest disabled-metrics:l show-hidden-metrics-for-version
log-flush-frequency:d log-json-info-buffer-size log-json-split-stream:b log-text-info-buffer-size
log-text-split-stream:b logging-format v:i vmodule tracing-config-file
aggregator-reject-forwarding-redirect:b allow-privileged:b enable-aggregator-routing:b
endpoint-reconciler-type event-ttl:d kubelet-certificate-authority kubelet-client-certificate
kubelet-client-key kubelet-port:i kubelet-preferred-address-types:l kubelet-read-only-port:i
kubelet-timeout:d kubernetes-service-node-port:i max-connection-bytes-per-sec:i
peer-advertise-ip peer-advertise-port peer-ca-file proxy-client-cert-file proxy-client-key-file
service-account-signing-key-file service-account-signing-endpoint service-cluster-ip-range
service-node-port-range cloud-config cloud-provider enable-logs-handler:b
master-service-namespace help:b version:o
""")
SHORTHANDS = {"v": "v", "h": "help"}

ADMISSION_PLUGINS = set("""
AlwaysAdmit AlwaysDeny AlwaysPullImages CertificateApproval CertificateSigning
CertificateSubjectRestriction ClusterTrustBundleAttest DefaultIngressClass DefaultStorageClass
DefaultTolerationSeconds DenyServiceExternalIPs EventRateLimit ExtendedResourceToleration
ImagePolicyWebhook LimitPodHardAntiAffinityTopology LimitRanger MutatingAdmissionPolicy
MutatingAdmissionWebhook NamespaceAutoProvision NamespaceExists NamespaceLifecycle NodeRestriction
OwnerReferencesPermissionEnforcement PersistentVolumeClaimResize PodNodeSelector PodSecurity
PodTolerationRestriction PodTopologyLabels Priority ResourceQuota RuntimeClass ServiceAccount
StorageObjectInUseProtection TaintNodesByCondition ValidatingAdmissionPolicy
ValidatingAdmissionWebhook
""".split())
DEFAULT_ADMISSION = {"NamespaceLifecycle", "LimitRanger", "ServiceAccount", "TaintNodesByCondition",
                     "PodSecurity", "Priority", "DefaultTolerationSeconds", "DefaultStorageClass",
                     "StorageObjectInUseProtection", "PersistentVolumeClaimResize", "RuntimeClass",
                     "CertificateApproval", "CertificateSigning", "ClusterTrustBundleAttest",
                     "CertificateSubjectRestriction", "DefaultIngressClass",
                     "MutatingAdmissionWebhook", "ValidatingAdmissionPolicy",
                     "ValidatingAdmissionWebhook", "ResourceQuota"}
AUTHORIZATION_MODES = ("AlwaysAllow", "AlwaysDeny", "ABAC", "Webhook", "RBAC", "Node")
# file flags the server opens at start-up (each must exist and be mounted into the container)
FILE_FLAGS = ("tls-cert-file", "tls-private-key-file", "client-ca-file", "etcd-cafile",
              "etcd-certfile", "etcd-keyfile", "kubelet-client-certificate", "kubelet-client-key",
              "kubelet-certificate-authority", "proxy-client-cert-file", "proxy-client-key-file",
              "requestheader-client-ca-file", "service-account-signing-key-file",
              "encryption-provider-config", "audit-policy-file", "admission-control-config-file",
              "authentication-config", "authorization-config", "egress-selector-config-file",
              "tracing-config-file", "token-auth-file", "oidc-ca-file", "audit-webhook-config-file",
              "authentication-token-webhook-config-file", "authorization-webhook-config-file",
              "authorization-policy-file", "peer-ca-file")
PUBLIC_PATHS = ("/livez", "/readyz", "/healthz", "/version")
TLS_VERSIONS = ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13")


def validate_options(flags: Parsed) -> list[str]:
    """ServerRunOptions.Validate: the checks that need no files."""
    errors = _admission_errors(flags) + _authorization_errors(flags)
    port = flags.get("secure-port", 6443)
    if not 1 <= port <= 65535:
        errors.append(f"--secure-port {port} must be between 1 and 65535, inclusive. It cannot be "
                      f"turned off")
    if not flags.get("etcd-servers"):
        errors.append("--etcd-servers must be specified")
    if not flags.get("service-account-issuer"):
        errors.append("service-account-issuer is a required flag")
    if not flags.has("service-account-signing-key-file"):
        errors.append("service-account-signing-key-file and service-account-issuer are required flags")
    for flag in ("audit-log-maxage", "audit-log-maxbackup", "audit-log-maxsize"):
        if flags.get(flag, 0) < 0:
            errors.append(f"--{flag} {flags.get(flag)} can't be a negative number")
    if flags.get("audit-log-format", "json") not in ("json", "legacy"):
        errors.append(f'invalid audit log format {flags.get("audit-log-format")}, allowed formats '
                      f'are "json,legacy"')
    for flag in ("audit-log-mode", "audit-webhook-mode"):
        if flags.has(flag) and flags.get(flag) not in ("batch", "blocking", "blocking-strict"):
            errors.append(f'invalid audit {flag.split("-")[1]} mode {flags.get(flag)}, allowed modes '
                          f'are "batch,blocking,blocking-strict"')
    if flags.has("tls-min-version") and flags.get("tls-min-version") not in TLS_VERSIONS:
        errors.append(f'unknown tls version "{flags.get("tls-min-version")}"')
    errors += cipher_errors(flags.get("tls-cipher-suites") or [])
    errors += _feature_gate_errors(flags.get("feature-gates") or {})
    return errors


def _admission_errors(flags: Parsed) -> list[str]:
    enabled = [p for p in flags.get("enable-admission-plugins") or [] if p]
    disabled = [p for p in flags.get("disable-admission-plugins") or [] if p]
    errors = [f"{flag} plugin \"{p}\" is unknown"
              for flag, plugins in (("enable-admission-plugins", enabled),
                                    ("disable-admission-plugins", disabled))
              for p in plugins if p not in ADMISSION_PLUGINS]
    overlap = [p for p in enabled if p in disabled]
    if overlap:
        errors.append(f"[{' '.join(overlap)}] in enable-admission-plugins and "
                      f"disable-admission-plugins overlapped")
    if flags.has("admission-control") and (enabled or disabled):
        errors.append("admission-control is deprecated and cannot be used together with "
                      "enable-admission-plugins or disable-admission-plugins")
    return errors


def _authorization_errors(flags: Parsed) -> list[str]:
    modes = [m for m in flags.get("authorization-mode") or [] if m]
    if flags.has("authorization-config"):
        if flags.has("authorization-mode"):
            return ["--authorization-config can not be specified when --authorization-mode is "
                    "specified"]
        return []
    modes = modes or ["AlwaysAllow"]
    errors = [f"authorization-mode \"{m}\" is not a valid mode" for m in modes
              if m not in AUTHORIZATION_MODES]
    errors += [f"authorization-mode {m!r} has mode specified more than once"
               for i, m in enumerate(modes) if m in modes[:i]]
    if "ABAC" in modes and not flags.get("authorization-policy-file"):
        errors.append("authorization-mode ABAC's authorization policy file not passed")
    if "Webhook" in modes and not flags.get("authorization-webhook-config-file"):
        errors.append("authorization-mode Webhook's authorization config file not passed")
    return errors


def _feature_gate_errors(gates: dict) -> list[str]:
    return [f"invalid value of {name}={value}, err: strconv.ParseBool: parsing \"{value}\": invalid "
            f"syntax" for name, value in gates.items() if value not in
            ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False")]


class ApiServer:
    """Holds what the running emulated server needs to answer requests."""

    def __init__(self, flags: Parsed, view: FileView):
        self.flags, self.view = flags, view
        self.authn_doc: dict | None = None
        self.audit: AuditLog | None = None
        self.tokens: dict[str, str] = {}
        self.etcd_ok = (0.0, False)
        self.api: kubeapi.KubeApi | None = None     # the object store, once files are loaded

    # -- start-up -----------------------------------------------------------------------------
    def load_files(self) -> None:
        """Open every referenced file as the container would; StartupError on the first failure
        category (like the real server, which stops at the first error it meets)."""
        for flag in FILE_FLAGS:
            if self.flags.get(flag):   # an empty path is unset, as upstream treats it
                self.view.require(str(self.flags.get(flag)))
        for path in self.flags.get("service-account-key-file") or []:
            self.view.require(path)
        self._check_certificates()
        self._load_encryption()
        self._load_audit()
        self._load_authentication()
        self._load_authorization()
        self._load_admission()
        self._load_tokens()
        self._load_store()

    def _load_store(self) -> None:
        """The REST API over etcd: encryption from --encryption-provider-config (re-read when
        it changes if --encryption-provider-config-automatic-reload), authorization modes."""
        flags = self.flags

        def host(flag: str) -> str | None:
            return self.view.require(flags.get(flag)) if flags.get(flag) else None

        etcd = EtcdClient(flags.get("etcd-servers") or [], host("etcd-cafile"),
                          host("etcd-certfile"), host("etcd-keyfile"))
        transformers = Transformers(
            flags.get("encryption-provider-config"),
            lambda path: apiconfig.load_yaml(self.view.require(path), path),
            bool(flags.get("encryption-provider-config-automatic-reload")))
        store = kubeapi.ObjectStore(etcd, transformers, flags.get("etcd-prefix") or "/registry")
        host_addr = podenv.node_host(flags.get("bind-address", "0.0.0.0"))
        self.api = kubeapi.KubeApi(store, list(flags.get("authorization-mode") or ["AlwaysAllow"]),
                                   f"{host_addr}:{flags.get('secure-port', 6443)}")

    def start_bootstrap(self) -> None:
        """Create the system namespaces, bootstrap RBAC and the lab's seed in the background,
        retrying until etcd answers (its members may still be electing a leader)."""
        seed = kubeapi.load_seed(os.environ.get(SEED_ENV))

        def run() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    kubeapi.bootstrap(self.api.store, seed)
                    return
                except Exception as err:  # noqa: BLE001 - retried; logged when giving up
                    last = err
                time.sleep(0.5)
            print(f"E bootstrap] {last}", file=sys.stderr, flush=True)

        threading.Thread(target=run, daemon=True).start()

    def _check_certificates(self) -> None:
        flags = self.flags
        if flags.has("tls-cert-file") != flags.has("tls-private-key-file"):
            raise StartupError("both --tls-cert-file and --tls-private-key-file must be set")
        for cert, key in (("tls-cert-file", "tls-private-key-file"), ("etcd-certfile", "etcd-keyfile"),
                          ("kubelet-client-certificate", "kubelet-client-key"),
                          ("proxy-client-cert-file", "proxy-client-key-file")):
            if flags.get(cert) and flags.get(key):
                check_tls_pair(self.view, flags.get(cert), flags.get(key))

    def _load_encryption(self) -> None:
        path = self.flags.get("encryption-provider-config")
        if not path:
            return
        doc = self._yaml(path, "error while parsing file")
        errors = apiconfig.validate_encryption(doc)
        if errors:
            raise StartupError(f"error while parsing file: {_aggregate(errors)}")

    def _load_audit(self) -> None:
        path = self.flags.get("audit-policy-file")
        doc = None
        if path:
            doc = self._yaml(path, "loading audit policy file")
            errors = apiconfig.validate_audit_policy(doc, path)
            if errors:
                raise StartupError(f"loading audit policy file: {_aggregate(errors)}")
        log_path = self.flags.get("audit-log-path")
        if log_path and log_path != "-":
            host_log = self.view.open_for_append(log_path)
            if doc:  # without a policy no events are logged
                self.audit = AuditLog(doc, host_log)

    def _load_authentication(self) -> None:
        path = self.flags.get("authentication-config")
        if not path:
            return
        doc = self._yaml(path, "failed to load authentication configuration")
        errors = apiconfig.validate_authentication(doc)
        if errors:
            raise StartupError(f"failed to load authentication configuration: {_aggregate(errors)}")
        if doc.get("anonymous") is not None and self.flags.has("anonymous-auth"):
            raise StartupError("--anonymous-auth flag cannot be set when anonymous field is "
                               "configured in authentication configuration file")
        self.authn_doc = doc

    def _load_authorization(self) -> None:
        path = self.flags.get("authorization-config")
        if not path:
            return
        doc = self._yaml(path, "failed to load authorization configuration")
        errors = apiconfig.validate_authorization(doc)
        if errors:
            raise StartupError(f"failed to load authorization configuration: {_aggregate(errors)}")

    def _load_admission(self) -> None:
        enabled = set(DEFAULT_ADMISSION | set(self.flags.get("enable-admission-plugins") or []))
        enabled -= set(self.flags.get("disable-admission-plugins") or [])
        path = self.flags.get("admission-control-config-file")
        configs: dict[str, dict] = {}
        if path:
            doc = self._yaml(path, "failed to read plugin config")
            configs, errors = apiconfig.admission_plugin_configs(
                doc, os.path.dirname(path), self.view.require)
            if errors:
                raise StartupError(f"failed to read plugin config: {_aggregate(errors)}")
        checks = {"PodSecurity": apiconfig.validate_pod_security,
                  "EventRateLimit": apiconfig.validate_event_rate_limit}
        for plugin, validate in checks.items():
            if plugin not in enabled:
                continue
            if plugin == "PodSecurity" and plugin not in configs:
                continue  # built-in defaults (privileged) apply
            errors = validate(configs.get(plugin))
            if errors:
                raise StartupError(f"failed to initialize admission: couldn't init admission plugin "
                                   f"\"{plugin}\": {_aggregate(errors)}")
        if "ImagePolicyWebhook" in enabled and "ImagePolicyWebhook" not in configs:
            raise StartupError('failed to initialize admission: couldn\'t init admission plugin '
                               '"ImagePolicyWebhook": no config specified')

    def _load_tokens(self) -> None:
        path = self.flags.get("token-auth-file")
        if not path:
            return
        with open(self.view.require(path)) as handle:
            for number, line in enumerate(handle, 1):
                fields = [f.strip().strip('"') for f in line.split(",")]
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if len(fields) < 3:
                    raise StartupError(f"token file '{path}' must have at least 3 columns (token, "
                                       f"user name, user uid), found {len(fields)} on line {number}")
                self.tokens[fields[0]] = fields[1]

    def _yaml(self, path: str, context: str) -> dict:
        try:
            return apiconfig.load_yaml(self.view.require(path), path)
        except apiconfig.ConfigFileError as err:
            raise StartupError(f"{context}: {err}") from None

    # -- serving ------------------------------------------------------------------------------
    def anonymous_allowed(self, path: str) -> bool:
        file_enabled, paths = apiconfig.anonymous_paths(self.authn_doc)
        if file_enabled is None:
            return bool(self.flags.get("anonymous-auth", True))
        return file_enabled and (not paths or path in paths)

    def respond(self, request: serving.Request) -> tuple[int, str, bytes]:
        answer = self._answer(request)
        if self.audit:
            self.audit.record(request.user, request.path, request.query, request.source, answer[0])
        return answer

    def _answer(self, request: serving.Request) -> tuple[int, str, bytes]:
        path = request.path.rstrip("/") or "/"
        if request.user is None and not self.anonymous_allowed(path):
            return 401, "application/json", json.dumps(serving.UNAUTHORIZED).encode()
        base = "/" + path.split("/")[1] if path != "/" else "/"
        if base in ("/livez", "/readyz", "/healthz"):
            return self._health(base, path, "verbose" in request.query)
        if path == "/version":
            return 200, "application/json", json.dumps({"major": "1", "minor": str(serving.MINOR),
                                                        "gitVersion": serving.VERSION}).encode()
        if self.api is not None:
            user = request.user or "system:anonymous"
            groups = tuple(request.groups) + (("system:authenticated",) if request.user
                                              else ("system:unauthenticated",))
            answer = self.api.handle(request.method, path, request.query, request.headers,
                                     request.body, user, groups)
            if answer is not None:
                return answer
        if request.user is None:
            body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": f'forbidden: User "system:anonymous" cannot get path "{path}"',
                    "reason": "Forbidden", "details": {}, "code": 403}
            return 403, "application/json", json.dumps(body).encode()
        return 404, "text/plain", b"404 page not found\n"

    def _health(self, base: str, path: str, verbose: bool) -> tuple[int, str, bytes]:
        checks = {"ping": True, "log": True, "poststarthook/start-apiextensions-controllers": True}
        if base != "/livez":
            checks["etcd"] = self._etcd_reachable()
        if base == "/readyz":
            checks["shutdown"] = True
        if path != base:
            name = path[len(base) + 1:]
            if name not in checks:
                return 404, "text/plain", b"404 page not found\n"
            checks = {name: checks[name]}
        status, body = serving.health_body(checks, verbose, base.strip("/"))
        return status, "text/plain; charset=utf-8", body

    def _etcd_reachable(self) -> bool:
        """TCP reachability of the first etcd server, cached for a second."""
        checked_at, ok = self.etcd_ok
        if time.monotonic() - checked_at < 1.0:
            return ok
        server = (self.flags.get("etcd-servers") or [""])[0]
        host_port = server.split("://", 1)[-1].rstrip("/")
        host, _, port = host_port.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port or 2379)), timeout=1.0):
                ok = True
        except (OSError, ValueError):
            ok = False
        self.etcd_ok = (time.monotonic(), ok)
        return ok

    def serve(self) -> None:
        host = podenv.node_host(self.flags.get("bind-address", "0.0.0.0"))
        port = self.flags.get("secure-port", 6443)
        cert = self.flags.get("tls-cert-file")
        context = serving.server_context(
            self.view.require(cert) if cert else None,
            self.view.require(self.flags.get("tls-private-key-file")) if cert else None,
            self.view.require(self.flags.get("client-ca-file")) if self.flags.has("client-ca-file")
            else None, host)
        try:
            serving.serve_https(host, port, context, self.respond, self.tokens)
        except OSError as err:
            raise StartupError(f"failed to create listener: failed to listen on {host}:{port}: "
                               f"listen tcp {host}:{port}: bind: {err.strerror.lower()}") from None


def _aggregate(errors: list[str]) -> str:
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def main(argv: list[str]) -> int:
    try:
        flags = FlagSet(COMMAND, FLAGS, SHORTHANDS).parse(argv[1:])
    except FlagError as err:
        return serving.flag_error(COMMAND, str(err))
    early = serving.informational(COMMAND, flags)
    if early is not None:
        return early
    errors = validate_options(flags)
    if errors:
        return serving.command_failed(_aggregate(errors))
    server = ApiServer(flags, FileView.from_env())
    try:
        server.load_files()
        server.serve()
        server.start_bootstrap()
    except StartupError as err:
        return serving.command_failed(str(err))
    except ssl.SSLError as err:
        return serving.command_failed(f"failed to load serving certificate: {err}")
    print(f"I {threading.get_native_id()} secure_serving.go] Serving securely on "
          f"{podenv.node_host(flags.get('bind-address', '0.0.0.0'))}:{flags.get('secure-port', 6443)}",
          flush=True)
    serving.wait_forever()
    return 0
