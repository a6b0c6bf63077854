"""Which sections of the catalogue apply to a host: its roles, detected or given."""

from __future__ import annotations

from harden.cis.component_views import kubelet_unit_files, manifest_commands
from harden.cis.probe import Facts
from harden.errors import HostError
from harden.node.paths import DEFAULT_KUBELET_CONFIG

ROLES = ("control-plane", "etcd", "worker")


def given_roles(override) -> set[str]:
    """The roles `harden_node_role` names (a list, or a comma-separated string), unchecked."""
    wanted = override if isinstance(override, list) else str(override).split(",")
    return {str(r).strip() for r in wanted if str(r).strip()}


def detect_roles(facts: Facts, override=None, host: str = "") -> set[str]:
    """Which sections apply: control-plane (apiserver manifest, or an apiserver process outside
    any pod), etcd (the same for etcd), worker (a kubelet process, unit or config).

    A process alone counts only outside kubepods cgroups: without a static-pod manifest, an etcd
    or apiserver in a pod is an ordinary workload (say an application's etcd on a worker) and
    must not turn a worker into an etcd node. `harden_node_role` replaces detection."""
    if override:
        roles = given_roles(override)
        unknown = roles - set(ROLES)
        if unknown:
            raise HostError(host, f"unknown node role(s) {', '.join(sorted(unknown))}; "
                            f"use {', '.join(ROLES)}", "harden_node_role")
        if "control-plane" in roles:
            roles.add("worker")
        return roles
    manifests = manifest_commands(facts)
    roles = set()
    if "kube-apiserver" in manifests or _runs_outside_pods(facts, "kube-apiserver"):
        roles.add("control-plane")
    if "etcd" in manifests or _runs_outside_pods(facts, "etcd"):
        roles.add("etcd")
    if facts.process("kubelet") or kubelet_unit_files(facts) or DEFAULT_KUBELET_CONFIG in facts.contents:
        roles.add("worker")
    return roles


def _runs_outside_pods(facts: Facts, component: str) -> bool:
    return any(not p.in_pod for p in facts.processes.get(component, []))
