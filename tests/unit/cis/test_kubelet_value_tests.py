"""4.2.13 and 4.2.14 test the value, not only that something is written: `podPidsLimit: -1` is no
limit (the kubelet's default), and `seccompDefault: false` applies no profile."""

from __future__ import annotations

import pytest

from support.cis_nodes import kubelet, results

WHERE = " (running process 900, config /var/lib/kubelet/config.yaml)"


def verdict(config, *flags, check):
    return results(kubelet(config, *flags), "worker")[check]


@pytest.mark.parametrize("config,flags,status,text", [
    ({"podPidsLimit": -1}, [], "WARN", "config podPidsLimit = -1"),
    ({"podPidsLimit": 0}, [], "WARN", "config podPidsLimit = 0"),
    ({"podPidsLimit": 4096}, [], "PASS", "config podPidsLimit = 4096"),
    ({"podPidsLimit": 4096}, ["--pod-max-pids=-1"], "WARN", "--pod-max-pids=-1"),
    ({}, [], "WARN", "--pod-max-pids / config podPidsLimit is not set (the kubelet's default is -1, no limit)"),
])
def test_pod_pids_limit_must_be_a_positive_limit(config, flags, status, text):
    result = verdict(config, *flags, check="4.2.13")
    assert result.status == status
    assert result.actual == text + WHERE


@pytest.mark.parametrize("config,flags,status,text", [
    ({"seccompDefault": False}, [], "WARN", "config seccompDefault = false"),
    ({"seccompDefault": True}, [], "PASS", "config seccompDefault = true"),
    ({"seccompDefault": True}, ["--seccomp-default=false"], "WARN", "--seccomp-default=false"),
    ({}, ["--seccomp-default"], "PASS", "--seccomp-default=true"),
    ({}, [], "WARN", "--seccomp-default / config seccompDefault is not set (the kubelet's default is false)"),
])
def test_seccomp_default_must_be_true(config, flags, status, text):
    result = verdict(config, *flags, check="4.2.14")
    assert result.status == status
    assert result.actual == text + WHERE
