"""Why a component would not start with a view's command line: then its flags never take effect,
and a check must say so (ERROR) instead of testing them as if it ran.

* Stray positional arguments (component_views.stray_arguments): cobra's "does not take any
  arguments" (cmd/kube-apiserver/app/server.go and the other components), the kubelet's
  "unknown command".
* A flag value pflag cannot parse for an integer flag (`--audit-log-maxage=30d`: "invalid
  argument ... for ... flag").
* A feature gate pair without a boolean (component-base featuregate `Set`).
* A negative audit log number while the log backend is on (AuditLogOptions.Validate in
  staging/src/k8s.io/apiserver/pkg/server/options/audit.go: "can't be a negative number").
"""

from __future__ import annotations

from harden.cis.component_views import View
from harden.cis.feature_gates import feature_gates

# integer flags a check reads (pflag IntVar/Int32Var/Int64Var): a non-integer value is refused
INT_FLAGS = frozenset({"--audit-log-maxage", "--audit-log-maxbackup", "--audit-log-maxsize",
                       "--event-qps", "--read-only-port", "--pod-max-pids",
                       "--terminated-pod-gc-threshold"})
AUDIT_LOG_NUMBERS = ("--audit-log-maxage", "--audit-log-maxbackup", "--audit-log-maxsize")


def refusals(view: View) -> list[str]:
    """Every reason the component would refuse to start with this view, in words."""
    return ([f"stray argument {s}" for s in view.stray] + _bad_integers(view)
            + feature_gates(view).errors + _negative_audit_numbers(view))


def _integer(text: str) -> int | None:
    """Go's strconv.ParseInt(text, 0, 64), as pflag's integer flags parse: a sign, then decimal,
    0x hex, 0b binary, or octal (0o, or a leading 0); None when pflag would refuse it."""
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    bases = {"0x": 16, "0X": 16, "0b": 2, "0B": 2, "0o": 8, "0O": 8}
    base = bases.get(digits[:2])
    if base:
        digits = digits[2:].replace("_", "")
    elif len(digits) > 1 and digits.startswith("0"):
        base, digits = 8, digits[1:].replace("_", "")
    elif "_" in digits.strip("_"):
        digits = digits.replace("_", "")        # Go literal syntax: 1_000
    try:
        return sign * int(digits, base or 10) if digits and digits.isalnum() else None
    except ValueError:
        return None


def _bad_integers(view: View) -> list[str]:
    return [f"invalid argument {values[-1]!r} for {flag} (an integer flag)"
            for flag, values in sorted(view.flags.items())
            if flag in INT_FLAGS and values and values[-1] and _integer(values[-1]) is None]


def _negative_audit_numbers(view: View) -> list[str]:
    if view.component != "kube-apiserver" or not view.flag("--audit-log-path"):
        return []
    return [f"{flag} {view.flag(flag)} can't be a negative number" for flag in AUDIT_LOG_NUMBERS
            if (number := _integer(view.flag(flag) or "")) is not None and number < 0]
