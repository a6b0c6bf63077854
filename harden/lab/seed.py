"""The cluster state a lab starts with: what kubeadm creates, a few workloads' objects, and for
the weak profile what section 5 of the CIS benchmark must catch.

Written by `lab up` as DIR/seed.json; each API server creates the objects that are absent when
it starts (so several API servers seeding at once is harmless). The API server itself creates
the system namespaces and its bootstrap RBAC (harden.lab.components.rbac), as upstream does.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

RBAC = "rbac.authorization.k8s.io"
APP_NAMESPACES = ("apps", "monitoring")


def _meta(name: str, namespace: str | None = None, **extra) -> dict:
    meta = {"name": name, **extra}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _binding(kind: str, name: str, role_kind: str, role: str, subjects: list[dict],
             namespace: str | None = None) -> dict:
    return {"metadata": _meta(name, namespace),
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role}, "subjects": subjects}


def _group(name: str) -> dict:
    return {"apiGroup": RBAC, "kind": "Group", "name": name}


def _user(name: str) -> dict:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


def _sa(name: str, namespace: str) -> dict:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict:
    return {"metadata": _meta(name, namespace), "type": "Opaque",
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def kubeadm_objects(cluster_configuration: str, kubelet: str) -> list[tuple[str, dict]]:
    """The RBAC, service accounts and config maps `kubeadm init` (v1.30) creates; the two
    config maps hold the lab's full ClusterConfiguration and KubeletConfiguration texts."""
    ks = "kube-system"
    return [
        ("clusterrolebindings", _binding("CRB", "kubeadm:cluster-admins", "ClusterRole",
                                         "cluster-admin", [_group("kubeadm:cluster-admins")])),
        ("clusterroles", {"metadata": _meta("kubeadm:get-nodes"),
                          "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
        ("clusterrolebindings", _binding("CRB", "kubeadm:get-nodes", "ClusterRole",
                                         "kubeadm:get-nodes",
                                         [_group("system:bootstrappers:kubeadm:default-node-token")])),
        ("clusterrolebindings", _binding("CRB", "kubeadm:kubelet-bootstrap", "ClusterRole",
                                         "system:node-bootstrapper",
                                         [_group("system:bootstrappers:kubeadm:default-node-token")])),
        ("clusterrolebindings", _binding("CRB", "kubeadm:node-autoapprove-bootstrap", "ClusterRole",
                                         "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                                         [_group("system:bootstrappers:kubeadm:default-node-token")])),
        ("clusterrolebindings", _binding("CRB", "kubeadm:node-autoapprove-certificate-rotation",
                                         "ClusterRole",
                                         "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                                         [_group("system:nodes")])),
        ("serviceaccounts", {"metadata": _meta("kube-proxy", ks)}),
        ("serviceaccounts", {"metadata": _meta("coredns", ks)}),
        ("clusterrolebindings", _binding("CRB", "kubeadm:node-proxier", "ClusterRole",
                                         "system:node-proxier", [_sa("kube-proxy", ks)])),
        ("roles", {"metadata": _meta("kubeadm:kubelet-config", ks),
                   "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["kubelet-config"], "verbs": ["get"]}]}),
        ("rolebindings", _binding("RB", "kubeadm:kubelet-config", "Role", "kubeadm:kubelet-config",
                                  [_group("system:nodes"),
                                   _group("system:bootstrappers:kubeadm:default-node-token")], ks)),
        ("roles", {"metadata": _meta("kubeadm:nodes-kubeadm-config", ks),
                   "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["kubeadm-config"], "verbs": ["get"]}]}),
        ("rolebindings", _binding("RB", "kubeadm:nodes-kubeadm-config", "Role",
                                  "kubeadm:nodes-kubeadm-config", [_group("system:nodes")], ks)),
        ("configmaps", {"metadata": _meta("kubeadm-config", ks),
                        "data": {"ClusterConfiguration": cluster_configuration}}),
        ("configmaps", {"metadata": _meta("kubelet-config", ks),
                        "data": {"kubelet": kubelet}}),
        ("secrets", _secret("bootstrap-token-abcdef", ks, {"token-id": "abcdef",
                                                           "token-secret": "0123456789abcdef"})),
    ]


def workload_objects() -> list[tuple[str, dict]]:
    """Two application namespaces with a service account, a config map and a secret each."""
    found: list[tuple[str, dict]] = []
    for ns in APP_NAMESPACES:
        found.append(("namespaces", {"metadata": _meta(ns, labels={"team": ns})}))
        found.append(("serviceaccounts", {"metadata": _meta(f"{ns}-runner", ns),
                                          "automountServiceAccountToken": False}))
        found.append(("configmaps", {"metadata": _meta(f"{ns}-settings", ns),
                                     "data": {"log_level": "info"}}))
        found.append(("secrets", _secret(f"{ns}-credentials", ns,
                                         {"username": f"{ns}-user", "password": f"{ns}-pw-1"})))
    return found


def weak_objects() -> list[tuple[str, dict]]:
    """What section 5 must catch: a user bound to cluster-admin, a wildcard role, a namespace
    without NetworkPolicy or Pod Security label, service accounts that automount tokens."""
    return [
        ("clusterrolebindings", _binding("CRB", "dev-admin", "ClusterRole", "cluster-admin",
                                         [_user("dev@example.com")])),
        ("clusterroles", {"metadata": _meta("ops-wildcard"),
                          "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        ("roles", {"metadata": _meta("secret-reader", "apps"),
                   "rules": [{"apiGroups": [""], "resources": ["secrets"],
                              "verbs": ["get", "list", "watch"]}]}),
        ("rolebindings", _binding("RB", "secret-reader", "Role", "secret-reader",
                                  [_sa("default", "apps")], "apps")),
        ("namespaces", {"metadata": _meta("legacy")}),
        ("serviceaccounts", {"metadata": _meta("legacy-app", "legacy"),
                             "automountServiceAccountToken": True}),
        ("pods", {"metadata": _meta("privileged-debug", "legacy"),
                  "spec": {"hostNetwork": True, "hostPID": True,
                           "containers": [{"name": "shell", "image": "busybox",
                                           "securityContext": {"privileged": True}}]}}),
    ]


def bulk_secrets(count: int) -> list[tuple[str, dict]]:
    """`--secrets N`: N secrets spread over the application namespaces and default."""
    spaces = APP_NAMESPACES + ("default",)
    return [("secrets", _secret(f"bulk-{i:05d}", spaces[i % len(spaces)],
                                {"value": f"bulk secret {i}", "index": str(i)}))
            for i in range(count)]


def objects(profile: str, secrets: int = 0, *, cluster_configuration: str,
            kubelet: str) -> list[tuple[str, dict]]:
    """Namespaces first, so that every namespaced object finds its namespace."""
    found = (kubeadm_objects(cluster_configuration, kubelet) + workload_objects()
             + bulk_secrets(secrets))
    if profile == "weak":
        found += weak_objects()
    return ([o for o in found if o[0] == "namespaces"]
            + [o for o in found if o[0] != "namespaces"])


def write(path: Path, profile: str, secrets: int = 0, *, cluster_configuration: str,
          kubelet: str) -> None:
    found = objects(profile, secrets, cluster_configuration=cluster_configuration, kubelet=kubelet)
    path.write_text(json.dumps([{"resource": r, "object": o} for r, o in found]))
