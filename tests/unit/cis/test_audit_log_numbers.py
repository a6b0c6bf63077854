"""--audit-log-maxage/maxbackup/maxsize of 0 mean what the API server's log writer (lumberjack,
staging/src/k8s.io/apiserver/pkg/server/options/audit.go) makes of them: no age limit, every old
file kept, the 100 MB default; an unset flag still fails (CIS asks for the argument)."""

from __future__ import annotations

import pytest

from support.cis_nodes import results, static_pod

BASE = ["--audit-log-path=/var/log/kubernetes/audit/audit.log"]


def apiserver(*args: str) -> dict:
    return results(static_pod("kube-apiserver", [*BASE, *args]))


def where(actual: str) -> str:
    return actual.split(" (running process ")[0]


@pytest.mark.parametrize("check,flag,status,text", [
    ("1.2.17", "--audit-log-maxage=0", "PASS", "--audit-log-maxage = 0, which the API server's log writer reads "
                                               "as no age limit: old files are never removed for age"),
    ("1.2.18", "--audit-log-maxbackup=0", "PASS", "--audit-log-maxbackup = 0, which the API server's log writer "
                                                  "reads as no count limit: every old file is kept"),
    ("1.2.19", "--audit-log-maxsize=0", "PASS", "--audit-log-maxsize = 0, which the API server's log writer reads "
                                                "as its default, 100 MB"),
    ("1.2.17", "--audit-log-maxage=7", "FAIL", "--audit-log-maxage=7"),
    ("1.2.18", "--audit-log-maxbackup=00", "PASS", "--audit-log-maxbackup = 0, which the API server's log writer "
                                                   "reads as no count limit: every old file is kept"),
    ("1.2.19", "--audit-log-maxsize=50", "FAIL", "--audit-log-maxsize=50"),
])
def test_zero_means_what_the_log_writer_does_with_it(check, flag, status, text):
    result = apiserver(flag)[check]
    assert result.status == status
    assert where(result.actual) == text


@pytest.mark.parametrize("check,flag", [("1.2.17", "--audit-log-maxage"), ("1.2.18", "--audit-log-maxbackup"),
                                        ("1.2.19", "--audit-log-maxsize")])
def test_unset_audit_log_numbers_still_fail(check, flag):
    result = apiserver()[check]
    assert result.status == "FAIL"
    assert where(result.actual) == f"{flag} is not set"
