"""Feature gates resolve as component-base's featuregate does: pairs in order, repeated flags
merged, the last value for a gate wins; the kubelet's config featureGates are the base that
--feature-gates overrides gate by gate; a gate set nowhere has its default."""

from __future__ import annotations

import pytest

from support.cis_nodes import kubelet, results, static_pod

GATE = "RotateKubeletServerCertificate"


@pytest.mark.parametrize("args,status,actual", [
    ([f"--feature-gates={GATE}=true,{GATE}=false"], "FAIL", f"--feature-gates {GATE}=false"),
    ([f"--feature-gates={GATE}=false,{GATE}=true"], "PASS", f"--feature-gates {GATE}=true"),
    ([f"--feature-gates={GATE}=false", f"--feature-gates={GATE}=true"], "PASS", f"--feature-gates {GATE}=true"),
    ([f"--feature-gates={GATE}=true", "--feature-gates", f"Other=true,{GATE}=False"], "FAIL",
     f"--feature-gates {GATE}=false"),
    ([f"--feature-gates=Other=false, {GATE} = 0"], "FAIL", f"--feature-gates {GATE}=false"),
    (["--feature-gates=Other=false"], "PASS", f"feature gate {GATE} is not set (its default is true)"),
    ([], "PASS", f"feature gate {GATE} is not set (its default is true)"),
])
def test_controller_manager_gate_takes_the_last_value(args, status, actual):
    result = results(static_pod("kube-controller-manager", ["--bind-address=127.0.0.1", *args]))["1.3.6"]
    assert result.status == status
    assert result.actual.startswith(f"{actual} (running process ")


def test_a_gate_named_inside_another_gates_text_is_not_matched():
    args = [f"--feature-gates=Not{GATE}=false"]
    result = results(static_pod("kube-controller-manager", args))["1.3.6"]
    assert result.status == "PASS"
    assert result.actual.startswith(f"feature gate {GATE} is not set (its default is true)")


@pytest.mark.parametrize("config_gates,flags,status,actual", [
    ({GATE: False}, [], "WARN", f"config featureGates.{GATE} = false"),
    ({GATE: False}, [f"--feature-gates={GATE}=true"], "PASS", f"--feature-gates {GATE}=true"),
    ({GATE: True}, [f"--feature-gates={GATE}=true,{GATE}=false"], "WARN", f"--feature-gates {GATE}=false"),
    ({GATE: True}, ["--feature-gates=Other=true"], "PASS", f"config featureGates.{GATE} = true"),
    ({}, [], "PASS", f"feature gate {GATE} is not set (its default is true)"),
])
def test_kubelet_flags_override_config_feature_gates_gate_by_gate(config_gates, flags, status, actual):
    config = {"featureGates": config_gates} if config_gates else {}
    result = results(kubelet(config, *flags), "worker")["4.2.11"]
    assert result.status == status                 # 4.2.11 is CIS Manual: a failure is WARN
    assert result.actual.startswith(f"{actual} (running process 900")
