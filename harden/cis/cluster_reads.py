"""Section 5's cluster data once per declared cluster: one control plane reads the cluster's
objects, the others of that cluster are given them.

Two kinds of section-5 reads differ. `kubectl get` of the cluster's objects (RBAC, service
accounts, namespaces, network policies) and kubeadm's ClusterConfiguration are cluster data,
kept in etcd: every API server of the cluster returns the same. The access reviews ("can-i",
5.1.x) are not: each API server answers them with its own authorizer (its
`--authorization-mode`, `--authorization-config`, webhooks), so one drifted control plane must
fail on its own. Only the first kind is shared; every control plane asks its own reviews.

Sharing needs the user's word that hosts are one cluster: the `harden_cluster` host variable.
Hosts without it ask everything themselves, as if sharing did not exist (two clusters with one
CA, a DR twin restored with its pki or cloned images, must never swap answers by default).
`harden lab up` writes it for its nodes.

* Before the probe: per `harden_cluster` value one host's probe asks (`askers`); the others'
  probes leave the shared reads out when they can name their cluster. The asking host is, in
  inventory order, the first with `harden_node_role` naming control-plane, else the first in a
  group named like a control-plane group (control_plane, kube_control_plane, masters), else
  the first.
* After it: a control plane's cluster is its `harden_cluster` and the SHA-256 of its cluster CA
  (/etc/kubernetes/pki/ca.crt, record I), the CA being a safety net under the inventory. One
  that left the shared reads out gets those of one that asked in the same cluster
  (`Facts.kubectl_from`, named in the evidence). When none did, or its API server did not
  answer (`kubectl get` failed), the controller asks the next control plane of that cluster in
  a second exec (`gather_cluster_facts`), in inventory order, until one answers; clusters are
  worked on in parallel, `forks` at a time. A second exec that fails (SSH, network) fails that
  host, as a failed probe does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

from harden.cis.probe import Facts
from harden.cis.roles import given_roles
from harden.errors import HostError
from harden.ssh.parallel import DEFAULT_FORKS, for_each_host

CLUSTER_VAR = "harden_cluster"
_CONTROL_PLANE_GROUP = re.compile(r"control|master", re.IGNORECASE)


def cluster_group(host) -> str:
    """The host's `harden_cluster` ("" when unset); a value that cannot name a cluster (or an
    untemplated Jinja expression) is a HostError naming the host and the variable, before any
    host is contacted."""
    value = host.vars.get(CLUSTER_VAR)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise HostError(host.name, f"{CLUSTER_VAR} must be a non-empty string naming the "
                        f"host's cluster, not {value!r}", CLUSTER_VAR)
    if "{{" in str(value):
        raise HostError(host.name, f"{CLUSTER_VAR} is {value!r}, an untemplated expression: "
                        "harden does not render templates in it; give the cluster's name",
                        CLUSTER_VAR)
    return str(value).strip()


def askers(hosts: Iterable) -> set[str]:
    """The names of the hosts whose probe asks section 5 in full: every host without
    `harden_cluster`, and one per `harden_cluster` value."""
    asking, groups = set(), {}
    for host in hosts:
        group = cluster_group(host)
        if group:
            groups.setdefault(group, []).append(host)
        else:
            asking.add(host.name)
    # min keeps the first of equals: inventory order among hosts alike
    return asking | {min(members, key=_preference).name for members in groups.values()}


def _preference(host) -> int:
    """Lower is likelier a control plane: the role given, then the group's name."""
    role = host.vars.get("harden_node_role")
    if role:
        return 0 if "control-plane" in given_roles(role) else 3
    return 1 if any(_CONTROL_PLANE_GROUP.search(group) for group in host.groups) else 2


def answered(facts: Facts) -> bool:
    """Whether these facts hold the cluster's objects (`kubectl get` worked)."""
    return "get" in facts.kubectl and facts.kubectl["get"][0] == 0


@dataclass
class _Cluster:
    """One declared cluster as its CA confirms it: a unit of work for for_each_host."""

    name: str
    group: str
    members: list[str]


def share(hosts: list, facts: dict[str, Facts], ask: Callable[[object], Facts],
          forks: int = DEFAULT_FORKS) -> dict[str, Exception]:
    """Give every control plane that left the shared reads to another its cluster's, asking
    more control planes (`ask(host)`, one exec each) only when no answer is at hand, one
    cluster per worker. Returns the hosts whose second exec failed, with why."""
    by_name = {host.name: host for host in hosts}
    clusters: dict[tuple[str, str], list[str]] = {}
    for host in hosts:
        found, group = facts.get(host.name), cluster_group(host)
        if found is not None and found.cluster_ca and group:
            clusters.setdefault((group, found.cluster_ca), []).append(host.name)
    work = [_Cluster(f"{group}/{ca[:12]}", group, members)
            for (group, ca), members in clusters.items()
            if any(facts[name].kubectl_deferred for name in members)]
    outcomes = for_each_host(work, lambda cluster: _settle(cluster, by_name, facts, ask), forks)
    failed: dict[str, Exception] = {}
    for cluster in work:
        outcome = outcomes[cluster.name]
        if outcome.ok:
            failed.update(outcome.value)
        else:       # a bug while settling: its waiting hosts were not audited, say so
            failed.update({name: RuntimeError(outcome.message) for name in cluster.members
                           if facts[name].kubectl_deferred})
    return failed


def _settle(cluster: _Cluster, by_name: dict, facts: dict[str, Facts],
            ask: Callable[[object], Facts]) -> dict[str, Exception]:
    """One cluster's waiting control planes answered: copied from one that asked, else asked
    again one by one until one answers (each so asked keeps its own answers)."""
    waiting = [name for name in cluster.members if facts[name].kubectl_deferred]
    source = next((name for name in cluster.members
                   if not facts[name].kubectl_deferred and answered(facts[name])), None)
    failed: dict[str, Exception] = {}
    while source is None and waiting:
        name = waiting.pop(0)
        facts[name].kubectl_deferred = False
        try:
            facts[name].kubectl = ask(by_name[name]).kubectl
        except Exception as exc:   # noqa: BLE001 - this host fails, as a failed probe would
            failed[name] = exc
            continue
        if answered(facts[name]):
            source = name
    for name in waiting:
        _copy(facts[source], facts[name], source, cluster.group)
    return failed


def _copy(source: Facts, target: Facts, source_host: str, group: str) -> None:
    """The source's cluster data with the target's own access reviews (per API server)."""
    own = {key: value for key, value in target.kubectl.items() if key.startswith("can-i ")}
    shared = {key: value for key, value in source.kubectl.items()
              if not key.startswith("can-i ")}
    target.kubectl = {**shared, **own}
    target.kubectl_from = source_host
    target.kubectl_cluster = group
    target.kubectl_deferred = False
