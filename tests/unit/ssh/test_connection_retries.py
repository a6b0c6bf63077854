"""Connection attempts: only network errors are retried, at most `retries` more times and
within the connect timeout; a first attempt that works costs no tenacity import."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harden.ssh.common import NetworkError, Unreachable, with_retries
from harden.ssh.settings import ConnectionSpec, Endpoint

TARGET = Endpoint(name="w1", address="127.0.0.1", port=22, user="root")


def spec(retries: int, timeout: float = 30.0) -> ConnectionSpec:
    return ConnectionSpec(host="w1", target=TARGET, connect_timeout=timeout, retries=retries)


class Flaky:
    """Fails with `error` the first `failures` times, then answers."""

    def __init__(self, failures: int, error: Exception | None = None):
        self.failures, self.calls = failures, 0
        self.error = error or NetworkError("Connection refused")

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "session"


def test_a_first_attempt_that_works_is_the_only_one():
    attempt = Flaky(0)
    assert with_retries(spec(3), attempt) == "session" and attempt.calls == 1


def test_network_errors_are_tried_again_up_to_the_retries():
    attempt = Flaky(2)
    assert with_retries(spec(2), attempt) == "session" and attempt.calls == 3
    attempt = Flaky(5)
    with pytest.raises(Unreachable, match="Connection refused"):
        with_retries(spec(2), attempt)
    assert attempt.calls == 3


def test_no_retries_means_one_attempt():
    attempt = Flaky(1)
    with pytest.raises(Unreachable):
        with_retries(spec(0), attempt)
    assert attempt.calls == 1


def test_other_errors_are_never_retried():
    attempt = Flaky(1, ValueError("not a network error"))
    with pytest.raises(ValueError):
        with_retries(spec(3), attempt)
    assert attempt.calls == 1


def test_the_connect_timeout_bounds_all_attempts_together():
    def slow():
        time.sleep(0.3)
        raise NetworkError("timed out")

    began = time.monotonic()
    with pytest.raises(Unreachable):
        with_retries(spec(50, timeout=1.0), slow)
    assert time.monotonic() - began < 1.0 + 0.3 + 2.0 + 0.5     # budget, one attempt, one wait


def test_a_connection_that_works_first_time_imports_no_tenacity():
    code = ("from harden.ssh.common import with_retries\n"
            "from harden.ssh.settings import ConnectionSpec, Endpoint\n"
            "s = ConnectionSpec(host='h', target=Endpoint(name='h', address='a', port=22, user='u'))\n"
            "with_retries(s, lambda: 1)\n"
            "import sys; print('tenacity' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
