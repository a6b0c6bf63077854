"""A command line the component would refuse (a stray positional argument, a feature gate
without a boolean) is an ERROR naming the argument, not a set of flags evaluated as if it ran:
kube-apiserver and friends exit with "... does not take any arguments" (cobra), the kubelet
with "unknown command", and component-base rejects `--feature-gates=X` / `X=maybe`."""

from __future__ import annotations

import pytest

from harden.cis.refusals import _integer
from support.cis_nodes import kubelet, results, static_pod


def test_bool_flag_written_as_two_words_is_an_error_naming_the_argument():
    checks = results(static_pod("kube-apiserver", ["--profiling", "false", "--authorization-mode=Node,RBAC"]))
    result = checks["1.2.15"]
    assert result.status == "ERROR"
    assert result.actual == ("kube-apiserver refuses to start with the command line of running process 100: "
                             "stray argument 'false' after --profiling, a flag that takes no separate value "
                             "(write --profiling=false); its settings are not evaluated")
    assert checks["1.2.7"].status == "ERROR"          # every flag check of that component
    # file checks are still judged (this fixture records no stat, so the manifest is "not found")
    assert checks["1.1.1"].status == "FAIL" and checks["1.1.1"].actual.startswith("not found: ")


def test_a_refused_manifest_is_an_error_even_while_the_old_process_still_runs():
    facts = static_pod("kube-scheduler", ["--profiling=false", "--bind-address=127.0.0.1", "extra"],
                       running=["--profiling=false", "--bind-address=127.0.0.1"])
    result = results(facts)["1.4.1"]
    assert result.status == "ERROR"
    assert result.actual == ("kube-scheduler refuses to start with the command line of manifest "
                             "/etc/kubernetes/manifests/kube-scheduler.yaml: stray argument 'extra'; "
                             "its settings are not evaluated")


@pytest.mark.parametrize("args,named", [
    (["--profiling=false", "--", "--bind-address=0.0.0.0"], "stray argument '--bind-address=0.0.0.0' (after --)"),
    (["--profiling=false", "leftover"], "stray argument 'leftover'"),
])
def test_positional_words_are_named(args, named):
    result = results(static_pod("kube-controller-manager", args))["1.3.2"]
    assert result.status == "ERROR"
    assert named in result.actual


@pytest.mark.parametrize("args", [
    ["--profiling=false", "--terminated-pod-gc-threshold", "10"],     # a value flag takes the next word
    ["--profiling=false", ""],                                        # cobra ignores empty arguments
    ["--profiling=false", "-v", "2"],                                 # a shorthand flag and its value
])
def test_accepted_command_lines_are_evaluated(args):
    result = results(static_pod("kube-controller-manager", args))["1.3.2"]
    assert result.status == "PASS"
    assert result.actual.startswith("--profiling=false (running process ")


@pytest.mark.parametrize("flag,named", [
    ("--feature-gates=RotateKubeletServerCertificate", "--feature-gates: missing bool value for RotateKubeletServerCertificate"),
    ("--feature-gates=RotateKubeletServerCertificate=maybe",
     "--feature-gates: invalid value of RotateKubeletServerCertificate=maybe"),
])
def test_feature_gate_the_component_cannot_parse_is_an_error(flag, named):
    result = results(kubelet({}, flag), "worker")["4.2.11"]
    assert result.status == "ERROR"
    assert result.actual == (f"kubelet refuses to start with the command line of running process 900: {named}; "
                             "its settings are not evaluated")


def test_kubelet_stray_argument_is_an_error():
    result = results(kubelet({}, "--rotate-certificates", "true"), "worker")["4.2.10"]
    assert result.status == "ERROR"
    assert "stray argument 'true' after --rotate-certificates" in result.actual


@pytest.mark.parametrize("args,named", [
    (["--audit-log-path=/var/log/audit.log", "--audit-log-maxage=30d"],
     "invalid argument '30d' for --audit-log-maxage (an integer flag)"),
    (["--audit-log-path=/var/log/audit.log", "--audit-log-maxbackup=-1"],
     "--audit-log-maxbackup -1 can't be a negative number"),
])
def test_values_the_api_server_rejects_at_start_are_errors(args, named):
    result = results(static_pod("kube-apiserver", args))["1.2.18"]
    assert result.status == "ERROR"
    assert result.actual == ("kube-apiserver refuses to start with the command line of running process 100: "
                             f"{named}; its settings are not evaluated")


def test_negative_audit_numbers_without_an_audit_log_are_not_validated():
    result = results(static_pod("kube-apiserver", ["--audit-log-maxbackup=-1"]))["1.2.18"]
    assert result.status == "FAIL"
    assert result.actual.startswith("--audit-log-maxbackup=-1 (running process ")


@pytest.mark.parametrize("text,value", [
    ("30", 30), ("010", 8), ("0x1f", 31), ("0b101", 5), ("-1", -1), ("+5", 5), ("1_000", 1000),
    ("30d", None), (" 3", None), ("", None), ("_1", None),
])
def test_integer_flags_parse_as_pflag_does(text, value):
    assert _integer(text) == value
