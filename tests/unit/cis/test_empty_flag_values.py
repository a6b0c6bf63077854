"""An empty value of a non-bool flag is not a setting: `--audit-log-path=` disables audit logs."""

from __future__ import annotations

import pytest

from harden.cis.catalogue import load_catalogue
from harden.cis.component_views import View, parse_flags
from harden.cis.evaluate import evaluate_host
from harden.cis.lookup import evaluate_item
from harden.cis.probe import Facts, Process


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def apiserver_results(catalogue, *flags: str) -> dict:
    facts = Facts(complete=True)
    argv = ["kube-apiserver", *flags]
    facts.processes["kube-apiserver"] = [Process(10, "kube-apiserver", argv)]
    return {r.id: r for r in evaluate_host("cp", facts, catalogue)}


@pytest.mark.parametrize("check,flag", [("1.2.16", "--audit-log-path="),
                                        ("1.2.5", "--kubelet-certificate-authority="),
                                        ("1.2.5", "--kubelet-certificate-authority")])
def test_empty_value_does_not_satisfy_a_must_be_set_check(catalogue, check, flag):
    args = [flag, ""] if not flag.endswith("=") else [flag]
    result = apiserver_results(catalogue, *args)[check]
    assert result.status == "FAIL"
    assert "empty" in result.actual


def test_empty_value_satisfies_a_must_not_be_set_check(catalogue):
    assert apiserver_results(catalogue, "--token-auth-file=")["1.2.2"].status == "PASS"
    assert apiserver_results(catalogue, "--token-auth-file=/t.csv")["1.2.2"].status == "FAIL"


def test_empty_kubelet_flag_overrides_the_config_file():
    view = View("running process 1", parse_flags(["--client-ca-file="]),
                config={"authentication": {"x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}}})
    ok, found = evaluate_item({"flag": "--client-ca-file", "key": "authentication.x509.clientCAFile"},
                              view)
    assert not ok and not found.found


def test_empty_bool_flag_is_still_reported_as_given():
    ok, found = evaluate_item({"flag": "--profiling", "op": "eq", "value": "false"},
                              View("p", parse_flags(["--profiling="])))
    assert found.found and not ok
