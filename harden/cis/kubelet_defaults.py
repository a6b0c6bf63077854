"""What the kubelet runs with for a setting nobody wrote down: its defaults, for every config
key a CIS check reads.

With a config file (`--config`), the kubelet defaults the file before flags apply
(pkg/kubelet/apis/config/v1beta1/defaults.go, SetDefaults_KubeletConfiguration). A duration
field left at zero there is replaced by its default: kubeadm's `streamingConnectionIdleTimeout:
0s` runs as 4h. Pointer fields (eventRecordQPS) keep an explicit 0. Without a config file, four
settings keep their old command-line defaults, the insecure ones
(cmd/kubelet/app/options/options.go, applyLegacyDefaults). A flag is applied after defaulting,
so `--streaming-connection-idle-timeout=0` really is zero.
"""

from __future__ import annotations

from dataclasses import dataclass

from harden.cis.operators import ZERO_DURATION


@dataclass(frozen=True)
class Default:
    value: str                        # as a test item compares it
    legacy: str | None = None         # the default when the kubelet runs without a config file
    zero_is_unset: bool = False       # a zero duration in the file is defaulted as if absent
    means: str = ""                   # what the default does, where the number alone hides it
    legacy_means: str = ""


KUBELET_DEFAULTS = {
    "authentication.anonymous.enabled": Default("false", legacy="true"),
    "authorization.mode": Default("Webhook", legacy="AlwaysAllow"),
    "readOnlyPort": Default("0", legacy="10255", legacy_means="an open unauthenticated read-only port"),
    "streamingConnectionIdleTimeout": Default("4h0m0s", zero_is_unset=True),
    "makeIPTablesUtilChains": Default("true"),
    "eventRecordQPS": Default("50"),
    "rotateCertificates": Default("false"),
    "podPidsLimit": Default("-1", means="no limit"),
    "seccompDefault": Default("false"),
}


def kubelet_default(key: str, with_config_file: bool) -> tuple[str, str] | None:
    """(value, why in words) of a key the kubelet defaults, or None when it has no default."""
    default = KUBELET_DEFAULTS.get(key)
    if default is None:
        return None
    if not with_config_file and default.legacy is not None:
        value, note = default.legacy, default.legacy_means
        why = f"without a config file the kubelet's default is {value}"
    else:
        value, note = default.value, default.means
        why = f"the kubelet's default is {value}"
    return value, why + (f", {note}" if note else "")


def defaulted_zero(key: str, value: str) -> str | None:
    """The value the kubelet puts in place of a zero duration the config file holds, if it does."""
    default = KUBELET_DEFAULTS.get(key)
    if default and default.zero_is_unset and ZERO_DURATION.match(value):
        return default.value
    return None
