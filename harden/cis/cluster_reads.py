"""Section 5 once per cluster: one control plane asks the API server, the others are given its
answers.

Section 5 reads cluster objects (RBAC, service accounts, namespaces, network policies, what any
authenticated user may do, kubeadm's ClusterConfiguration): facts of the cluster, not of the
node. Asking them on every control plane costs each one three kubectl processes and the API
server's work, for the same answer; kube-bench too runs section 5 once per cluster.

Who asks is decided before the probe runs (the probe stays one exec per host), and checked
after it with what the nodes report:

* Before: the run's hosts fall into groups by the `harden_cluster` host variable (hosts
  without it form one group). In each group one host's probe asks (`ask_cluster`); the others'
  probes do not, when they can name their cluster. The asking host is, in inventory order, the
  first with `harden_node_role` naming control-plane, else the first in a group named like a
  control-plane group (control_plane, kube_control_plane, masters), else the first.
* After: a control plane's cluster is its group and the SHA-256 of its cluster CA
  (/etc/kubernetes/pki/ca.crt, record I). A control plane that did not ask gets the answers of
  one that did in the same cluster, and says whose they are (`Facts.kubectl_from`, shown in
  the evidence). When none did, or its API server did not answer (`kubectl get` failed), the
  controller asks the next control plane of that cluster in a second exec
  (`gather_cluster_facts`), in inventory order, until one answers; a control plane asked that
  way keeps its own answer, as it would have without sharing.

So a wrong guess costs a second exec on one control plane, never a wrong answer: a cluster is
only ever what the nodes' CA says, within what the inventory says. Two clusters that share a
CA must be told apart with `harden_cluster`.
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

from harden.cis.probe import Facts
from harden.errors import HostError
from harden.ssh.parallel import HostOutcome

CLUSTER_VAR = "harden_cluster"
_CONTROL_PLANE_GROUP = re.compile(r"control|master", re.IGNORECASE)


def cluster_group(host) -> str:
    """The host's `harden_cluster` ("" when unset); a value that cannot name a cluster is a
    HostError naming the host and the variable, before any host is contacted."""
    value = host.vars.get(CLUSTER_VAR)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise HostError(host.name, f"{CLUSTER_VAR} must be a non-empty string naming the "
                        f"host's cluster, not {value!r}", CLUSTER_VAR)
    return str(value).strip()


def askers(hosts: Iterable) -> set[str]:
    """The names of the hosts whose probe asks section 5: one per `harden_cluster` group."""
    groups: dict[str, list] = {}
    for host in hosts:
        groups.setdefault(cluster_group(host), []).append(host)
    return {min(enumerate(members), key=lambda item: (_preference(item[1]), item[0]))[1].name
            for members in groups.values()}


def _preference(host) -> int:
    """Lower is likelier a control plane: the role given, then the group's name."""
    role = host.vars.get("harden_node_role")
    if role:
        roles = role if isinstance(role, list) else str(role).split(",")
        return 0 if "control-plane" in {str(r).strip() for r in roles} else 3
    return 1 if any(_CONTROL_PLANE_GROUP.search(group) for group in host.groups) else 2


def answered(facts: Facts) -> bool:
    """Whether these facts hold the cluster's objects (`kubectl get` worked)."""
    return "get" in facts.kubectl and facts.kubectl["get"][0] == 0


def share(hosts: list, facts: dict[str, Facts], ask: Callable[[object], Facts]) -> None:
    """Give every control plane that left section 5 to another its cluster's answers, asking
    more control planes (`ask(host)`, one exec each) only when no answer is at hand."""
    by_name = {host.name: host for host in hosts}
    clusters: dict[tuple[str, str], list[str]] = {}
    for host in hosts:
        found = facts.get(host.name)
        if found is not None and found.cluster_ca:
            clusters.setdefault((cluster_group(host), found.cluster_ca), []).append(host.name)
    for members in clusters.values():
        waiting = [name for name in members if facts[name].kubectl_deferred]
        source = next((name for name in members
                       if not facts[name].kubectl_deferred and answered(facts[name])), None)
        while source is None and waiting:
            name = waiting.pop(0)
            _ask_again(by_name[name], facts[name], ask)
            if answered(facts[name]):
                source = name
        for name in waiting:
            _copy(facts[source], facts[name], source)


def _ask_again(host, facts: Facts, ask: Callable[[object], Facts]) -> None:
    """This control plane's own answers, from a second exec; a failure of that exec is the
    reason its section 5 is not checked."""
    facts.kubectl_deferred = False
    try:
        fresh = ask(host)
    except Exception as exc:   # noqa: BLE001 - reported as this host's section 5, as any failure
        reason = HostOutcome(host.name, error=exc).message
        facts.kubectl = {"unavailable": (1, f"no control plane of this cluster answered, and "
                                            f"asking this one failed: {reason}")}
        return
    facts.kubectl = fresh.kubectl


def _copy(source: Facts, target: Facts, source_host: str) -> None:
    target.kubectl = dict(source.kubectl)
    target.kubectl_from = source_host
    target.kubectl_deferred = False
