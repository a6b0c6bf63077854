"""Beyond CIS: the kernel tunables a kubelet with protectKernelDefaults requires survive a reboot.

With protectKernelDefaults the kubelet exits at start unless six sysctls hold its values. The
running kernel may hold them today while a sysctl file read later at boot than the one that
set them (say a 99-*.conf a package dropped in) sets another value: nothing shows until the
next reboot, when the kubelet does not start. `apply` refuses to persist such a value; this
check reports the file and key on every `harden check`, as drift between what runs and what
the next boot brings.
"""

from __future__ import annotations

from harden.cis.context import HostContext, Verdict
from harden.cis.lookup import evaluate_item
from harden.node import sysctl_boot

_PROTECT = {"flag": "--protect-kernel-defaults", "key": "protectKernelDefaults", "op": "eq",
            "value": "true"}


def kernel_tunables(ctx: HostContext) -> Verdict:
    """FAIL naming file and key when the next boot would set a required tunable otherwise."""
    effective, configured = ctx.views("kubelet")
    view = effective or configured
    if view is None:
        return Verdict(True, "no kubelet runs or is configured on this node")
    protected, lookup = evaluate_item(_PROTECT, view)
    if not protected and not (configured and evaluate_item(_PROTECT, configured)[0]):
        return Verdict(True, f"{lookup.describe()}: the kubelet does not require the tunables "
                       f"at start", [view.source])
    files = ctx.facts.sysctl_files
    order = sysctl_boot.boot_order(files)
    boot = sysctl_boot.boot_values([(path, files[path]) for path in order])
    wrong = [(key, *boot[key]) for key, want in sysctl_boot.KUBELET_TUNABLES.items()
             if key in boot and not sysctl_boot.same_value(boot[key][0], want)]
    used = [view.source, "sysctl files: " + (", ".join(order) or "none")]
    if not wrong:
        set_by = sorted({path for key, (_, path) in boot.items()
                         if key in sysctl_boot.KUBELET_TUNABLES})
        return Verdict(True, f"{lookup.describe()}; no sysctl file read at boot sets a required "
                       f"tunable to another value (set by {', '.join(set_by) or 'no file'})",
                       used)
    found = "; ".join(f"{path} sets {key} = {value} (the kubelet requires "
                      f"{sysctl_boot.KUBELET_TUNABLES[key]})" for key, value, path in wrong)
    drift = (f"the running kernel is not what the next boot sets: {found}, read last at boot; "
             f"with protectKernelDefaults the kubelet would not start after a reboot")
    return Verdict(False, f"{lookup.describe()}; at the next boot {found}", used, drift)
