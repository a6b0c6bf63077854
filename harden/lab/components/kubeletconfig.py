"""KubeletConfiguration (kubelet.config.k8s.io/v1beta1) loading and validation for the lab kubelet.

The lab is stricter than the real v1beta1 decoder in one way, on purpose and as issue 3 asks:
an unknown field is fatal (upstream logs "using lenient decoding" and carries on), so a typo such
as `protectKernelDefault` is caught instead of silently leaving a node unhardened.
Type errors, bad enum values and `protectKernelDefaults` without the kernel tunables are fatal
upstream too (pkg/kubelet/apis/config/validation, cm.setupKernelTunables).
"""

from __future__ import annotations

import yaml

from harden.lab.components import podenv
from harden.lab.components.common import GO_CIPHER_SUITES
from harden.lab.components.flags import parse_duration

API_VERSION = "kubelet.config.k8s.io/v1beta1"

# field -> kind: b bool, i int, f number, s string, d duration, l list, m map, o object
FIELDS = dict(word.split(":") for word in """
apiVersion:s kind:s enableServer:b staticPodPath:s podLogsDir:s syncFrequency:d fileCheckFrequency:d
httpCheckFrequency:d staticPodURL:s staticPodURLHeader:m address:s port:i readOnlyPort:i
tlsCertFile:s tlsPrivateKeyFile:s tlsCipherSuites:l tlsMinVersion:s rotateCertificates:b
serverTLSBootstrap:b authentication:o authorization:o registryPullQPS:i registryBurst:i
imagePullCredentialsVerificationPolicy:s preloadedImagesVerificationAllowlist:l eventRecordQPS:i
eventBurst:i enableDebuggingHandlers:b enableContentionProfiling:b healthzPort:i healthzBindAddress:s
oomScoreAdj:i clusterDomain:s clusterDNS:l streamingConnectionIdleTimeout:d
nodeStatusUpdateFrequency:d nodeStatusReportFrequency:d nodeLeaseDurationSeconds:i
imageMinimumGCAge:d imageMaximumGCAge:d imageGCHighThresholdPercent:i imageGCLowThresholdPercent:i
volumeStatsAggPeriod:d kubeletCgroups:s systemCgroups:s cgroupRoot:s cgroupsPerQOS:b cgroupDriver:s
cpuManagerPolicy:s singleProcessOOMKill:b cpuManagerPolicyOptions:m cpuManagerReconcilePeriod:d
memoryManagerPolicy:s topologyManagerPolicy:s topologyManagerScope:s topologyManagerPolicyOptions:m
qosReserved:m runtimeRequestTimeout:d hairpinMode:s maxPods:i podCIDR:s podPidsLimit:i
resolvConf:s runOnce:b cpuCFSQuota:b cpuCFSQuotaPeriod:d nodeStatusMaxImages:i maxOpenFiles:i
contentType:s kubeAPIQPS:i kubeAPIBurst:i serializeImagePulls:b maxParallelImagePulls:i
evictionHard:m evictionSoft:m evictionSoftGracePeriod:m evictionPressureTransitionPeriod:d
evictionMaxPodGracePeriod:i evictionMinimumReclaim:m mergeDefaultEvictionSettings:b podsPerCore:i
enableControllerAttachDetach:b protectKernelDefaults:b makeIPTablesUtilChains:b
iptablesMasqueradeBit:i iptablesDropBit:i featureGates:m failSwapOn:b memorySwap:o
containerLogMaxSize:s containerLogMaxFiles:i containerLogMaxWorkers:i containerLogMonitorInterval:d
configMapAndSecretChangeDetectionStrategy:s systemReserved:m kubeReserved:m reservedSystemCPUs:s
showHiddenMetricsForVersion:s systemReservedCgroup:s kubeReservedCgroup:s enforceNodeAllocatable:l
allowedUnsafeSysctls:l volumePluginDir:s providerID:s kernelMemcgNotification:b logging:o
enableSystemLogHandler:b enableSystemLogQuery:b shutdownGracePeriod:d
shutdownGracePeriodCriticalPods:d shutdownGracePeriodByPodPriority:l crashLoopBackOff:o
reservedMemory:l enableProfilingHandler:b enableDebugFlagsHandler:b seccompDefault:b
memoryThrottlingFactor:f registerWithTaints:l registerNode:b tracing:o
localStorageCapacityIsolation:b containerRuntimeEndpoint:s imageServiceEndpoint:s failCgroupV1:b
userNamespaces:o
""".split())

SUBFIELDS = {
    "authentication": {"x509": "o", "webhook": "o", "anonymous": "o"},
    "authentication.x509": {"clientCAFile": "s"},
    "authentication.webhook": {"enabled": "b", "cacheTTL": "d"},
    "authentication.anonymous": {"enabled": "b"},
    "authorization": {"mode": "s", "webhook": "o"},
    "authorization.webhook": {"cacheAuthorizedTTL": "d", "cacheUnauthorizedTTL": "d"},
}
GO_TYPES = {"b": "bool", "i": "int32", "f": "float64", "s": "string", "d": "v1.Duration",
            "l": "[]string", "m": "map[string]string", "o": "struct"}

# setupKernelTunables: the values the kubelet requires when protectKernelDefaults is true
KERNEL_TUNABLES = {"vm/overcommit_memory": 1, "vm/panic_on_oom": 0, "kernel/panic": 10,
                   "kernel/panic_on_oops": 1, "kernel/keys/root_maxkeys": 1000000,
                   "kernel/keys/root_maxbytes": 25000000}

DEFAULTS = {"staticPodPath": "", "healthzPort": 10248, "healthzBindAddress": "127.0.0.1",
            "fileCheckFrequency": "20s", "protectKernelDefaults": False, "readOnlyPort": 0,
            "authorization": {"mode": "Webhook"}, "port": 10250}


class KubeletConfigError(Exception):
    """Why the kubelet refuses to run; printed like `command failed` on stderr."""


def load_config(path: str) -> dict:
    """Decoded, validated config with defaults applied (KubeletConfigError when invalid)."""
    return {**DEFAULTS, **read_config(path)}


def read_config(path: str) -> dict:
    """The fields a config file sets, after strict decoding (KubeletConfigError when invalid)."""
    prefix = f"failed to load kubelet config file, path: {path}, error: "
    try:
        with open(podenv.host_path(path), "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise KubeletConfigError(f"{prefix}failed to read kubelet config file \"{path}\", "
                                 f"error: open {path}: {err.strerror.lower()}") from None
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise KubeletConfigError(f"{prefix}failed to decode: {err}") from None
    if not isinstance(doc, dict):
        raise KubeletConfigError(f"{prefix}failed to decode: Object 'Kind' is missing")
    if doc.get("kind") != "KubeletConfiguration" or doc.get("apiVersion") != API_VERSION:
        raise KubeletConfigError(f"{prefix}failed to decode: no kind \"{doc.get('kind')}\" is "
                                 f"registered for version \"{doc.get('apiVersion')}\"")
    problems = check_types(doc)
    if problems:
        raise KubeletConfigError(f"{prefix}failed to decode: {'; '.join(problems)}")
    return doc


def check_types(doc: dict, table: dict | None = None, where: str = "") -> list[str]:
    """Strict decoding: unknown fields and JSON type mismatches, with Go's wording."""
    table = FIELDS if table is None else table
    problems = []
    for key, value in doc.items():
        dotted = f"{where}.{key}" if where else key
        kind = table.get(key)
        if kind is None:
            problems.append(f'strict decoding error: unknown field "{dotted}"')
            continue
        if value is None:
            continue
        if not _type_ok(kind, value):
            problems.append(f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                            f"KubeletConfiguration.{dotted} of type {GO_TYPES[kind]}")
        elif kind == "o" and dotted in SUBFIELDS:
            problems.extend(check_types(value, SUBFIELDS[dotted], dotted))
    return problems


def _type_ok(kind: str, value) -> bool:
    if kind == "b":
        return isinstance(value, bool)
    if kind == "i":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "f":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "s":
        return isinstance(value, str)
    if kind == "d":
        if not isinstance(value, str):
            return False
        try:
            parse_duration(value)
        except ValueError:
            return False
        return True
    if kind == "l":
        return isinstance(value, list)
    return isinstance(value, dict)


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def validate(config: dict) -> list[str]:
    """Semantic checks of pkg/kubelet/apis/config/validation that hardening can trip over."""
    errors = []
    for key, low in (("healthzPort", 0), ("port", 1), ("readOnlyPort", 0)):
        value = config.get(key)
        if isinstance(value, int) and not low <= value <= 65535:
            errors.append(f"invalid configuration: {key} ({value}) must be between {low} and 65535, "
                          f"inclusive")
    mode = (config.get("authorization") or {}).get("mode", "Webhook")
    if mode not in ("AlwaysAllow", "Webhook"):
        errors.append(f'invalid configuration: authorization.mode: Unsupported value: "{mode}"')
    if (config.get("eventRecordQPS") or 0) < 0:
        errors.append("invalid configuration: eventRecordQPS (--event-qps) must not be negative")
    if isinstance(config.get("podPidsLimit"), int) and config["podPidsLimit"] < -1:
        errors.append("invalid configuration: podPidsLimit must be -1 or positive")
    for suite in config.get("tlsCipherSuites") or []:
        if suite not in GO_CIPHER_SUITES:
            errors.append(f"invalid configuration: tlsCipherSuites ({suite}): Cipher suite {suite} "
                          f"not supported or doesn't exist")
    version = config.get("tlsMinVersion")
    if version and version not in ("VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13"):
        errors.append(f'invalid configuration: tlsMinVersion ({version}): unknown tls version "{version}"')
    for gate, value in (config.get("featureGates") or {}).items():
        if not isinstance(value, bool):
            errors.append(f"invalid configuration: featureGates.{gate}: must be a bool")
    return errors


def node_sysctls() -> dict[str, str]:
    """The node's live kernel tunables, read where the kubelet reads them: /proc/sys (a lab node
    has its own, so what was applied there counts, and a file in sysctl.d alone does not)."""
    values: dict[str, str] = {}
    for key in KERNEL_TUNABLES:
        try:
            with open(podenv.host_path(f"/proc/sys/{key}")) as handle:
                values[key] = handle.read().strip()
        except OSError:
            continue
    return values


def kernel_tunable_errors(sysctls: dict[str, str]) -> list[str]:
    """setupKernelTunables with protectKernelDefaults: every mismatch is an error."""
    errors = []
    for key, want in KERNEL_TUNABLES.items():
        have = sysctls.get(key)
        if have is None or have.strip() != str(want):
            errors.append(f"invalid kernel flag: {key}, expected value: {want}, actual value: {have}")
    return errors
