"""Finding a catalogue test item's value in a component view, and testing it.

Semantics follow kube-bench's test items: flag first, then config key, then environment; the
operators themselves are in harden/cis/operators.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from harden.cis.component_views import BOOL_FLAGS, View
from harden.cis.feature_gates import feature_gates
from harden.cis.kubelet_defaults import defaulted_zero, kubelet_default
from harden.cis.operators import compare


def format_value(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(format_value(v) or "" for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={format_value(v)}" for k, v in value.items())
    return str(value)


def config_value(config: dict | None, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@dataclass
class Lookup:
    found: bool
    value: str | None
    where: str          # "--profiling", "config authentication.anonymous.enabled", "env ETCD_X"
    meaning: str | None = None   # how the component reads it (a default, a zero), after `where`

    def describe(self) -> str:
        if self.meaning:
            return f"{self.where} {self.meaning}"
        if not self.found:
            if self.value == "":
                return f"{self.where} is empty (counts as not set)"
            return f"{self.where} is not set"
        return f"{self.where}={self.value}" if self.where.startswith("--") else f"{self.where} = {self.value}"


def lookup(item: dict, view: View) -> Lookup:
    """Find a test item's value: command line first, then config file, then environment; for
    the kubelet, a setting nobody wrote takes the kubelet's default."""
    if "gate" in item:
        return _gate_lookup(item["gate"], view)
    if "flag" in item and item["flag"] in view.ignored_flags:
        return _config_instead_of_flag(item, view)
    if "flag" in item and item["flag"] in view.flags:
        value = view.flag(item["flag"])
        if value or item["flag"] in BOOL_FLAGS:
            return Lookup(True, value, item["flag"])
        # `--audit-log-path=` turns the feature off, and an explicit flag overrides the
        # kubelet's config file, so an empty value is "not set" and the config is not consulted
        return Lookup(False, "", item["flag"])
    if "key" in item and view.config is not None:
        value = format_value(config_value(view.config, item["key"]))
        if value:      # an empty value is "not set", as kube-bench's JSONPath output is empty
            zero = defaulted_zero(item["key"], value) if view.component == "kubelet" else None
            if zero is not None:
                return Lookup(True, zero, f"config {item['key']}",
                              meaning=f"= {value}, a zero duration the kubelet replaces with its default {zero}")
            return Lookup(True, value, f"config {item['key']}")
    if "env" in item and item["env"] in view.env:
        return Lookup(True, view.env[item["env"]], f"env {item['env']}")
    name = item.get("flag") or f"feature gate {item.get('gate')}"
    if "key" in item:
        name += f" / config {item['key']}"
    if "key" in item and view.component == "kubelet":
        return _kubelet_default(item, view, name)
    return Lookup(False, None, name)


# What kube-scheduler runs with when its config file leaves a key out (the
# KubeSchedulerConfiguration defaults, pkg/scheduler/apis/config/v1/defaults.go).
SCHEDULER_CONFIG_DEFAULTS = {"enableProfiling": "true", "enableContentionProfiling": "true"}


def _config_instead_of_flag(item: dict, view: View) -> Lookup:
    """A flag the component ignores (kube-scheduler with --config): the config key decides,
    else the config's default; the ignored flag is named so nobody trusts it."""
    flag = item["flag"]
    why = view.ignored_flags[flag]
    ignored = f"; {flag}={view.flag(flag)} is ignored" if flag in view.flags else ""
    key = item.get("key")
    value = format_value(config_value(view.config, key)) if key and view.config else None
    if value:
        return Lookup(True, value, f"config {key}", meaning=f"= {value} ({why}{ignored})")
    default = SCHEDULER_CONFIG_DEFAULTS.get(key or "") if view.component == "kube-scheduler" else None
    if default is None:
        return Lookup(False, None, f"config {key}" if key else flag,
                      meaning=f"is not set ({why}{ignored})")
    return Lookup(True, default, f"config {key}",
                  meaning=f"is not set ({why}; the default is {default}{ignored})")


def _kubelet_default(item: dict, view: View, name: str) -> Lookup:
    """An unset kubelet setting has the kubelet's default; where the CIS text asks for the
    setting to be written down (`explicit: true`), the default does not satisfy it."""
    with_file = view.config is not None or bool(view.flag("--config"))
    found = kubelet_default(item["key"], with_file)
    if found is None:
        return Lookup(False, None, name)
    value, why = found
    if item.get("explicit"):
        return Lookup(False, None, name, meaning=f"is not set ({why}, but CIS asks for an explicit setting)")
    return Lookup(True, value, name, meaning=f"is not set ({why})")


def _gate_lookup(name: str, view: View) -> Lookup:
    """A feature gate's effective value: the last --feature-gates pair for it, else the config
    file's featureGates (kubelet), else the gate's default."""
    gate = feature_gates(view).get(name)
    if gate is None:
        return Lookup(False, None, f"feature gate {name}")
    value = "true" if gate.enabled else "false"
    if gate.source == "default":
        return Lookup(True, value, f"feature gate {name}", meaning=f"is not set (its default is {value})")
    if gate.source == "--feature-gates":
        return Lookup(True, value, f"--feature-gates {name}")
    return Lookup(True, value, f"config featureGates.{name}")


def evaluate_item(item: dict, view: View) -> tuple[bool, Lookup]:
    found = lookup(item, view)
    if not item.get("set", True):
        return not found.found, found
    if not found.found:
        return False, found
    if "zero_means" in item and _is_zero(found.value):
        return _zero_verdict(item, found)
    if item.get("op"):
        return compare(item["op"], found.value or "", str(item["value"])), found
    return True, found


def _is_zero(value: str | None) -> bool:
    try:
        return int(value or "") == 0
    except ValueError:
        return False


def _zero_verdict(item: dict, found: Lookup) -> tuple[bool, Lookup]:
    """A 0 the component reads as "no limit" or as its default (the API server's audit log
    writer: lumberjack's MaxAge/MaxBackups 0 keep everything, MaxSize 0 is 100 MB)."""
    meaning = str(item["zero_means"])
    why = f"= 0, {item.get('zero_why') or meaning}"
    shown = Lookup(True, found.value, found.where, meaning=why)
    if meaning == "unlimited":
        return item.get("op") in ("gt", "gte", "noteq"), shown
    return compare(item["op"], meaning, str(item["value"])), shown


def run_tests(audit: dict, view: View) -> tuple[bool, list[Lookup]]:
    outcomes = [evaluate_item(item, view) for item in audit["tests"]]
    combine = any if audit.get("bin_op", "and") == "or" else all
    lookups: list[Lookup] = []
    for _, found in outcomes:
        if found.describe() not in [l.describe() for l in lookups]:
            lookups.append(found)
    return combine(ok for ok, _ in outcomes), lookups
