"""The variables harden itself reads during a run (`harden_*`), checked when the run is loaded.

A bad `-e harden_wait_interval=abc` used to be found at the first health wait, after cp1's
manifests were written and its control plane restarted; checked here, it is an input error
(exit 1) before any host is contacted. A value that is a template is rendered per host later
and checked then (harden.apply.modules.wait_for_static_pod.pace).
"""

from __future__ import annotations

import math

from harden.errors import HostError, InputError

MAX_INTERVAL = 3600.0


def wait_interval(value) -> float:
    """Seconds between health polls: a number > 0 (and at most an hour)."""
    number = _number(value)
    if number is None or not (0 < number <= MAX_INTERVAL):
        raise ValueError(f"{value!r} is not a number of seconds > 0 and <= {MAX_INTERVAL:g}")
    return number


def wait_successes(value) -> int:
    """Probes in a row that must pass: a whole number >= 1."""
    number = _number(value)
    if number is None or number != int(number) or number < 1:
        raise ValueError(f"{value!r} is not a whole number >= 1")
    return int(number)


def kubeadm_persist(value) -> str:
    """auto | true | false (harden.apply.kubeadm_persist)."""
    text = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    text = {"yes": "true", "on": "true", "no": "false", "off": "false"}.get(text, text)
    if text not in ("auto", "true", "false"):
        raise ValueError(f"{value!r} is not one of auto, true, false")
    return text


def etcd_snapshot(value) -> str | bool:
    """Whether (and where) rotate-encryption-key.yml saves an etcd snapshot before `retire`:
    a boolean, or the absolute path of the snapshot file."""
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return text.lower() in ("true", "yes", "on", "1")
    if text.startswith("/") and not text.endswith("/") and "\n" not in text:
        return text
    raise ValueError(f"{value!r} is neither true/false nor an absolute file path")


RUN_VARS = {"harden_wait_interval": wait_interval, "harden_wait_successes": wait_successes,
            "harden_etcd_snapshot": etcd_snapshot, "harden_kubeadm_persist": kubeadm_persist}


def _number(value) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _templated(value) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _check(variables: dict, where) -> None:
    for name, parse in RUN_VARS.items():
        if name in variables and not _templated(variables[name]):
            try:
                parse(variables[name])
            except ValueError as exc:
                raise where(name, str(exc)) from None


def validate_run_vars(extra_vars: dict, plays: list, hosts: list) -> None:
    """Every place a run variable can come from: -e, each play's vars (and vars_files), each
    selected host's inventory variables."""
    _check(extra_vars, lambda name, why: InputError(f"-e {name}: {why}"))
    for play in plays:
        _check(play.vars, lambda name, why: InputError(f"play '{play.name}' vars: {name}: {why}",
                                                       play.path, play.line))
    for host in hosts:
        _check(host.vars, lambda name, why: HostError(host.name, why, name))
