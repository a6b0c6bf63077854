"""Feature gates as the components resolve them: one parser for every check that reads a gate.

k8s.io/component-base/featuregate (feature_gate.go, `Set` and `SetFromMap`): each `--feature-gates`
occurrence is split on commas into `name=value` pairs, each value parsed with Go's
strconv.ParseBool, and merged into what earlier occurrences set, so the last value for a name
wins, within one flag and across repeated flags. The kubelet starts from its config file's
`featureGates` map and lets the command line override it gate by gate
(cmd/kubelet/app/server.go, kubeletConfigFlagPrecedence). A gate set nowhere has its default
(pkg/features/kube_features.go).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harden.cis.component_views import View

GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})     # strconv.ParseBool
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
# defaults of the gates a check reads (pkg/features/kube_features.go)
GATE_DEFAULTS = {"RotateKubeletServerCertificate": True}


@dataclass
class Gate:
    enabled: bool
    source: str          # "--feature-gates", "config featureGates", "default"


@dataclass
class FeatureGates:
    gates: dict[str, Gate] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)     # what the component would refuse

    def get(self, name: str) -> Gate | None:
        if name in self.gates:
            return self.gates[name]
        if name in GATE_DEFAULTS:
            return Gate(GATE_DEFAULTS[name], "default")
        return None


def parse_bool(text) -> bool | None:
    """Go's strconv.ParseBool (None: the component refuses the value); YAML booleans pass through."""
    if isinstance(text, bool):
        return text
    text = str(text)
    return True if text in GO_TRUE else False if text in GO_FALSE else None


def feature_gates(view: View) -> FeatureGates:
    """The gates a component runs with: its config file's featureGates (kubelet), then every
    --feature-gates occurrence in command-line order, pair by pair; the last value wins."""
    out = FeatureGates()
    config_gates = (view.config or {}).get("featureGates") if isinstance(view.config, dict) else None
    if isinstance(config_gates, dict):
        for name, value in config_gates.items():
            enabled = parse_bool(value)
            if enabled is None:
                out.errors.append(f"config featureGates.{name}: {value!r} is not a boolean")
            else:
                out.gates[str(name)] = Gate(enabled, "config featureGates")
    for occurrence in view.flags.get("--feature-gates", []):
        for pair in occurrence.split(","):
            if not pair:
                continue
            name, eq, value = pair.partition("=")
            name, value = name.strip(), value.strip()
            enabled = parse_bool(value) if eq else None
            if not eq:
                out.errors.append(f"--feature-gates: missing bool value for {name}")
            elif enabled is None:
                out.errors.append(f"--feature-gates: invalid value of {name}={value}")
            else:
                out.gates[name] = Gate(enabled, "--feature-gates")
    return out
