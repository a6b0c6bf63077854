"""Kubelet settings nobody wrote down are judged by the value the kubelet runs with: the config
file's defaults (v1beta1 defaults.go, zero durations included), the old command-line defaults
when there is no config file, and flags applied after defaulting. `actual` says when a default
decided; where CIS asks for an explicit setting, a default does not satisfy it."""

from __future__ import annotations

import pytest

from support.cis_nodes import kubelet, results

WHERE = " (running process 900, config /var/lib/kubelet/config.yaml)"
NO_CONFIG = " (running process 900)"
KEY = "--streaming-connection-idle-timeout / config streamingConnectionIdleTimeout"


def verdict(config, *flags, check):
    return results(kubelet(config, *flags), "worker")[check]


def test_kubeadm_zero_idle_timeout_runs_as_the_4h_default():
    result = verdict({"streamingConnectionIdleTimeout": "0s"}, check="4.2.5")
    assert result.status == "PASS"
    assert result.actual == ("config streamingConnectionIdleTimeout = 0s, a zero duration the kubelet "
                             "replaces with its default 4h0m0s" + WHERE)


@pytest.mark.parametrize("flag", ["--streaming-connection-idle-timeout=0", "--streaming-connection-idle-timeout=0m0s"])
def test_zero_idle_timeout_flag_is_really_zero(flag):
    result = verdict({"streamingConnectionIdleTimeout": "5m"}, flag, check="4.2.5")
    assert result.status == "WARN"                 # CIS Manual: a failure is WARN
    assert result.actual == f"{flag}{WHERE}"


def test_absent_idle_timeout_is_the_default():
    result = verdict({}, check="4.2.5")
    assert result.status == "PASS"
    assert result.actual == f"{KEY} is not set (the kubelet's default is 4h0m0s){WHERE}"


def test_anonymous_auth_default_does_not_satisfy_the_explicit_cis_setting():
    result = verdict({}, check="4.2.1")
    assert result.status == "FAIL"
    assert result.actual == ("--anonymous-auth / config authentication.anonymous.enabled is not set (the "
                             "kubelet's default is false, but CIS asks for an explicit setting)" + WHERE)


def test_without_a_config_file_the_old_command_line_defaults_apply():
    anonymous = verdict(None, check="4.2.1")
    assert anonymous.status == "FAIL"
    assert anonymous.actual == ("--anonymous-auth / config authentication.anonymous.enabled is not set "
                                "(without a config file the kubelet's default is true, but CIS asks for "
                                "an explicit setting)" + NO_CONFIG)
    port = verdict(None, check="4.2.4")
    assert port.status == "WARN"
    assert port.actual == ("--read-only-port / config readOnlyPort is not set (without a config file the "
                           "kubelet's default is 10255, an open unauthenticated read-only port)" + NO_CONFIG)


@pytest.mark.parametrize("check,status,text", [
    ("4.2.4", "PASS", "--read-only-port / config readOnlyPort is not set (the kubelet's default is 0)"),
    ("4.2.6", "PASS", "--make-iptables-util-chains / config makeIPTablesUtilChains is not set (the kubelet's default is true)"),
    ("4.2.8", "PASS", "--event-qps / config eventRecordQPS is not set (the kubelet's default is 50)"),
    ("4.2.10", "FAIL", "--rotate-certificates / config rotateCertificates is not set (the kubelet's default is false)"),
    ("4.2.2", "FAIL", "--authorization-mode / config authorization.mode is not set (the kubelet's default is "
                      "Webhook, but CIS asks for an explicit setting)"),
])
def test_absent_keys_take_the_config_file_defaults(check, status, text):
    result = verdict({"authentication": {"x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}}}, check=check)
    assert result.status == status
    assert result.actual == text + WHERE


def test_explicit_zero_event_qps_is_kept_not_defaulted():
    result = verdict({"eventRecordQPS": 0}, check="4.2.8")
    assert result.status == "PASS"
    assert result.actual == f"config eventRecordQPS = 0{WHERE}"


def test_flag_beats_the_config_file_and_its_default():
    result = verdict({"readOnlyPort": 0}, "--read-only-port=10255", check="4.2.4")
    assert result.status == "WARN"
    assert result.actual == f"--read-only-port=10255{WHERE}"


def test_explain_says_where_a_default_counts_and_where_it_does_not():
    from harden.cis.catalogue import explain
    from support.cis_nodes import CATALOGUE
    assert "(else the kubelet's default) noteq 0" in explain(CATALOGUE.get("4.2.5"))
    assert "(must be written: a default does not count) eq false" in explain(CATALOGUE.get("4.2.1"))
    assert "gte 100 (0 means 100)" in explain(CATALOGUE.get("1.2.19"))
