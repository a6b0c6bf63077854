"""Checks that read content rather than flags: the encryption config's providers (1.2.28), the
audit policy's rules (3.2.2), and the section 5 cluster objects fetched with kubectl (5.x).

Kept apart from the flag and file checks because each is a small interpreter of a Kubernetes document,
not a flag test; all work on facts the single probe already gathered.
"""

from __future__ import annotations

import yaml

from harden.errors import InputError
from harden.kubeadm.cluster_config import ClusterConfig, lost_on_upgrade
from harden.node import etcd_census
from harden.cis.component_views import manifest_commands, yaml_docs
from harden.cis.context import HostContext, Verdict
from harden.cis.probe import Facts, kubectl_error

PSA_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
NETPOL_EXEMPT_NAMESPACES = ("kube-node-lease", "kube-public")


def _apiserver_file_flag(ctx: HostContext, flag: str) -> tuple[str | None, str, str | None, str | None]:
    """(facts key, path as shown, source, drift text) for a file the API server names with `flag`.

    The API server runs in a container: its path is read where that container sees it
    (/proc/<pid>/root), or, when it is not running, at the host directory the manifest's
    hostPath volume maps there; the host path at the same name may be another file or none.
    """
    effective, configured = ctx.views("kube-apiserver")
    running = effective.flag(flag) if effective else None
    wanted = configured.flag(flag) if configured else None
    drift = None
    if effective and configured and running != wanted:
        drift = f"configured {flag}={wanted or '(not set)'} but running {flag}={running or '(not set)'}"
    if effective:
        if not running:
            return None, "", effective.source, drift
        inside = running.startswith("/")
        return (effective.root + running if inside else running,
                f"{running} (in the kube-apiserver container)" if inside else running,
                effective.source, drift)
    if not wanted:
        return None, "", (configured.source if configured else None), drift
    host = ctx.facts.host_paths.get("kube-apiserver", {}).get(wanted, wanted)
    shown = wanted if host == wanted else f"{wanted} (host {host})"
    return host, shown, configured.source, drift


# ------------------------------------------------------------------------------------ 1.2.28

def encryption_providers(allowed: list[str], ctx: HostContext) -> Verdict:
    """Pass when the first (encrypting) provider of every resources entry is an allowed one."""
    key, path, source, drift = _apiserver_file_flag(ctx, "--encryption-provider-config")
    if not key:
        return Verdict(False, "--encryption-provider-config is not set", [source or "kube-apiserver"], drift)
    entries = ctx.facts.encryption_providers.get(key)
    if entries is None:
        return Verdict(False, f"encryption config {path} not found", [source or ""], drift)
    if not entries or not all(entries):
        return Verdict(False, f"{path}: no providers found", [f"providers of {key}"], drift)
    firsts = [entry[0] for entry in entries]
    bad = [name for name in firsts if name not in allowed]
    text = f"{path}: first providers per entry: {', '.join(firsts)}"
    return Verdict(not bad, text, [f"provider names of {key}"], drift)


def _config_document(ctx: HostContext, key: str, path: str, source, drift, what: str,
                     kind: str, a_kind: str) -> dict | Verdict:
    """A config file the API server reads (named by one of its flags), parsed, or the FAIL
    verdict saying why it is unusable: missing, not YAML, or not the kind the flag wants."""
    text = ctx.facts.contents.get(key)
    if text is None:
        return Verdict(False, f"{what} {path} not found", [source or ""], drift)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return Verdict(False, f"{what} {path} is not valid YAML: {exc}", [key], drift)
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        return Verdict(False, f"{path} is not {a_kind}", [key], drift)
    return doc


# ------------------------------------------------------------------------------------ 1.2.6-1.2.8

def authorizers(test: dict, ctx: HostContext) -> Verdict | None:
    """With --authorization-config the API server takes its authorizers from that file and
    refuses --authorization-mode, so the mode tests are judged on the file's authorizer types
    (`test`: {op: has|nothave, value}). None when no authorization config is in use."""
    key, path, source, drift = _apiserver_file_flag(ctx, "--authorization-config")
    if not key:
        return None
    doc = _config_document(ctx, key, path, source, drift, "authorization config",
                           "AuthorizationConfiguration", "an AuthorizationConfiguration")
    if isinstance(doc, Verdict):
        return doc
    types = [str((a or {}).get("type")) for a in doc.get("authorizers") or []
             if isinstance(a, dict)]
    present = test["value"] in types
    passed = present if test.get("op", "has") == "has" else not present
    return Verdict(passed, f"{path}: authorizer types {', '.join(types) or '(none)'}",
                   [f"content of {key}"], drift)


# ------------------------------------------------------------------------------------ 3.2.2

# (what, verbs, group, resource, subresource, wanted): wanted is "metadata" (exactly Metadata) or
# "logged" (Metadata or more).
AUDIT_REQUIREMENTS = (
    ("secrets", ("get", "list", "watch", "create", "update", "patch", "delete"), "", "secrets", "", "metadata"),
    ("configmaps", ("get", "list", "watch", "create", "update", "patch", "delete"), "", "configmaps", "", "metadata"),
    ("tokenreviews", ("create",), "authentication.k8s.io", "tokenreviews", "", "metadata"),
    ("pod changes", ("create", "update", "patch", "delete"), "", "pods", "", "logged"),
    ("deployment changes", ("create", "update", "patch", "delete"), "apps", "deployments", "", "logged"),
    ("pods/exec", ("create", "get"), "", "pods", "exec", "logged"),
    ("pods/portforward", ("create", "get"), "", "pods", "portforward", "logged"),
    ("pods/proxy", ("create", "get"), "", "pods", "proxy", "logged"),
    ("services/proxy", ("create", "get"), "", "services", "proxy", "logged"),
    ("other requests", ("create", "get"), "example.com", "widgets", "", "logged"),
)


def _resource_matches(rule: dict, group: str, resource: str, subresource: str) -> bool:
    kinds = rule.get("resources")
    if rule.get("nonResourceURLs") and not kinds:
        return False
    if not kinds:
        return True
    full = f"{resource}/{subresource}" if subresource else resource
    for entry in kinds:
        if (entry.get("group") or "") != group or entry.get("resourceNames"):
            continue
        names = entry.get("resources") or []
        if not names or "*" in names or full in names:
            return True
        if subresource and (f"*/{subresource}" in names or f"{resource}/*" in names):
            return True
    return False


def audit_level(policy: dict, verb: str, group: str, resource: str, subresource: str = "") -> str:
    """The level the API server would log a request at: the first matching rule wins.
    Rules limited to users, groups or namespaces are skipped: they do not cover every request."""
    for rule in policy.get("rules") or []:
        if rule.get("users") or rule.get("userGroups") or rule.get("namespaces"):
            continue
        if rule.get("verbs") and verb not in rule["verbs"] and "*" not in rule["verbs"]:
            continue
        if _resource_matches(rule, group, resource, subresource):
            return str(rule.get("level", "None"))
    return "None"


def audit_policy_gaps(policy: dict) -> list[str]:
    gaps = []
    for what, verbs, group, resource, sub, wanted in AUDIT_REQUIREMENTS:
        for verb in verbs:
            level = audit_level(policy, verb, group, resource, sub)
            if wanted == "metadata" and level != "Metadata":
                gaps.append(f"{what} {verb} logged at {level} (want Metadata)")
                break
            if wanted == "logged" and level == "None":
                gaps.append(f"{what} {verb} not logged")
                break
    return gaps


def audit_policy(ctx: HostContext) -> Verdict:
    key, path, source, drift = _apiserver_file_flag(ctx, "--audit-policy-file")
    if not key:
        return Verdict(False, "--audit-policy-file is not set", [source or "kube-apiserver"], drift)
    policy = _config_document(ctx, key, path, source, drift, "audit policy", "Policy",
                              "an audit Policy")
    if isinstance(policy, Verdict):
        return policy
    gaps = audit_policy_gaps(policy)
    actual = f"{path}: " + ("; ".join(gaps) if gaps else "covers secrets/configmaps/tokenreviews at "
                                                        "Metadata, pod and deployment changes, exec/portforward/proxy")
    return Verdict(not gaps, actual, [f"content of {key}"], drift)


# ------------------------------------------------------------------------------------ 5.x

def _items(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o.get("kind") == kind]


def _name(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))


def cluster_admin_bindings(objects: list[dict]) -> list[str]:
    """ClusterRoleBindings granting cluster-admin, except the built-in one of that name."""
    return [f"{_name(b)} -> " + ", ".join(f"{s.get('kind')} {s.get('name')}" for s in b.get("subjects") or [])
            for b in _items(objects, "ClusterRoleBinding")
            if (b.get("roleRef") or {}).get("name") == "cluster-admin" and _name(b) != "cluster-admin"]


def wildcard_roles(objects: list[dict]) -> list[str]:
    """Roles and ClusterRoles with "*" in verbs, resources or apiGroups, bootstrap defaults aside."""
    found = []
    for role in _items(objects, "Role") + _items(objects, "ClusterRole"):
        labels = (role.get("metadata") or {}).get("labels") or {}
        if labels.get("kubernetes.io/bootstrapping") == "rbac-defaults":
            continue
        for rule in role.get("rules") or []:
            fields = [f for f in ("verbs", "resources", "apiGroups") if "*" in (rule.get(f) or [])]
            if fields:
                found.append(f"{role['kind']} {_name(role)} ({', '.join(fields)})")
                break
    return found


def default_service_account_automount(objects: list[dict]) -> list[str]:
    return [f"{_name(sa)} (automountServiceAccountToken: {sa.get('automountServiceAccountToken', 'not set')})"
            for sa in _items(objects, "ServiceAccount")
            if (sa.get("metadata") or {}).get("name") == "default"
            and sa.get("automountServiceAccountToken") is not False]


def namespaces_without_pod_security(objects: list[dict]) -> list[str]:
    return [_name(ns) for ns in _items(objects, "Namespace")
            if PSA_ENFORCE_LABEL not in ((ns.get("metadata") or {}).get("labels") or {})]


def namespaces_without_network_policy(objects: list[dict]) -> list[str]:
    covered = {(p.get("metadata") or {}).get("namespace") for p in _items(objects, "NetworkPolicy")}
    return [_name(ns) for ns in _items(objects, "Namespace")
            if _name(ns) not in covered and _name(ns) not in NETPOL_EXEMPT_NAMESPACES]


KUBECTL_CHECKS = {
    "cluster_admin_bindings": (cluster_admin_bindings, "ClusterRoleBindings to cluster-admin"),
    "wildcard_roles": (wildcard_roles, "roles with wildcards"),
    "default_service_account_automount": (default_service_account_automount,
                                          "default service accounts that automount tokens"),
    "namespaces_without_pod_security": (namespaces_without_pod_security,
                                        f"namespaces without a {PSA_ENFORCE_LABEL} label"),
    "namespaces_without_network_policy": (namespaces_without_network_policy,
                                          "namespaces without a NetworkPolicy"),
}


CAN_I_CHECKS = {
    "authenticated_can_read_secrets": ("get secrets", "list secrets", "watch secrets"),
    "authenticated_can_create_pods": ("create pods",),
}


def can_i_check(name: str, facts: Facts) -> Verdict:
    """5.1.2/5.1.4: may every authenticated user do this? Each verb is asked on its own (one
    `can-i` with "get,list,watch" asks about a verb of that literal name)."""
    objects, why = facts.kubectl_objects()
    if objects is None:
        return Verdict(None, f"not checked: {why}", status="WARN")
    answers = {query: facts.can_i(query) for query in CAN_I_CHECKS[name]}
    unknown = [q for q, a in answers.items() if a is None]
    if unknown:
        return Verdict(None, f"not checked: no can-i answer for {', '.join(unknown)}", status="WARN")
    allowed = [q for q, a in answers.items() if a]
    actual = ("any authenticated user may " + ", ".join(allowed) if allowed
              else "authenticated users may not " + ", ".join(answers))
    # never shared: each API server answers with its own authorizer (cluster_reads)
    return Verdict(not allowed, actual, ["kubectl auth can-i --as-group=system:authenticated"])


def kubectl_check(name: str, facts: Facts) -> Verdict:
    """A 5.x check over the probe's `kubectl get` output; WARN with the reason when unavailable."""
    if name in CAN_I_CHECKS:
        return can_i_check(name, facts)
    objects, why = facts.kubectl_objects()
    if objects is None:
        return Verdict(None, f"not checked: {why}", status="WARN")
    finder, what = KUBECTL_CHECKS[name]
    offenders = finder(objects)
    shown = "; ".join(offenders[:10]) + (f"; ... {len(offenders) - 10} more" if len(offenders) > 10 else "")
    actual = f"{len(offenders)} {what}: {shown}" if offenders else f"no {what}"
    return Verdict(not offenders, actual, [asked("kubectl get", facts)])


def asked(what: str, facts: Facts) -> str:
    """The evidence of a section-5 read: where it was asked (harden.cis.cluster_reads)."""
    if facts.kubectl_from:
        return (f"{what}, asked on {facts.kubectl_from} (a host of this node's cluster, "
                f"harden_cluster={facts.kubectl_cluster})")
    return f"{what} (admin.conf on this node)" if what == "kubectl get" else what


# ------------------------------------------------------------------------ 1.2.28 (stored)

def encryption_stored(ctx: "HostContext") -> Verdict:
    """Beyond CIS: what etcd really holds. FAIL when a value of a resource the configuration
    covers is stored in plaintext or under a provider/key that no longer writes (a rotation
    whose rewrite did not finish, or an object no API server can read any more); without any
    configuration, secrets stored in plaintext fail."""
    census = ctx.facts.census
    if census is None:
        return Verdict(None, "not checked: no running kube-apiserver on this node", status="SKIP")
    if not census.available:
        return Verdict(None, f"not checked: etcd could not be read ({census.error})", status="WARN")
    how = f"read with {census.method}"
    if not census.layout:
        if "secrets" in _overridden(census.overrides):
            return Verdict(None, "not checked: no EncryptionConfiguration, and secrets are kept "
                           "in another etcd (--etcd-servers-overrides), which was not read",
                           status="WARN")
        plain = census.counts.get("secrets", {}).get("identity", 0)
        return Verdict(plain == 0, f"no EncryptionConfiguration: {plain} secrets stored in "
                       f"plaintext ({how})", [f"etcd values ({census.method})"])
    off = etcd_census.off_primary(census)
    plain = {k: n for k, n in census.counts.items()
             if etcd_census.primary_for(census.layout, k) == "identity" and n.get("identity")}
    total = etcd_census.covered_total(census)
    problems = [f"{n} {what}" for what, n in off.items()]
    problems += [f"{tags['identity']} {r} in plaintext (identity writes)" for r, tags in plain.items()]
    if problems:
        actual = f"{sum(off.values()) + sum(t['identity'] for t in plain.values())} of {total} " \
                 f"stored objects not under their primary key: {'; '.join(problems)} ({how})"
        lost = etcd_census.unreadable(census)
        if lost:
            actual += (f"; {sum(lost.values())} of them unreadable, under a key the config no "
                       f"longer holds ({'; '.join(f'{n} {what}' for what, n in lost.items())}): "
                       f"the API server fails every read of them")
        return Verdict(False, actual + _not_judged(census), [f"etcd values ({census.method})"])
    primaries = sorted({etcd_census.primary_for(census.layout, r) for r in census.counts
                        if etcd_census.primary_for(census.layout, r)})
    actual = (f"all {total} stored objects of the covered resources are under "
              f"{', '.join(primaries)} ({how}){_not_judged(census)}")
    why = _unseen(census)
    if why:
        return Verdict(None, f"{actual}; {why}", [f"etcd values ({census.method})"], status="WARN")
    return Verdict(True, actual, [f"etcd values ({census.method})"])


def _not_judged(census) -> str:
    """What the read met outside the resources harden knows kube-apiserver to store (the
    service IP and port ranges, a removed API's leftovers, a resource newer than harden's
    table), and what --etcd-servers-overrides keeps in another etcd: said, not judged."""
    text = ""
    if census.unknown:
        where = ", ".join(f"{sum(tags.values())} in {d}/" for d, tags in sorted(census.unknown.items()))
        text += f"; not judged, not in harden's table of kube-apiserver resources: {where}"
    if census.overrides:
        text += (f"; not read, kept in another etcd by --etcd-servers-overrides: "
                 f"{', '.join(_overridden(census.overrides))}")
    return text


def _overridden(flag: str) -> list[str]:
    """The resources --etcd-servers-overrides names (`group/resource#servers`, comma-separated),
    as an EncryptionConfiguration names them."""
    names = []
    for entry in flag.split(","):
        group, _, resource = entry.partition("#")[0].partition("/")
        if resource:
            names.append(f"{resource}.{group}" if group else resource)
    return names


def _unseen(census) -> str:
    """Why a PASS would claim what was not seen ("" when nothing): values outside the known
    resources under a key no entry of the config holds (no API server can read them), or a
    covered resource kept in another etcd."""
    held = {p for entry in census.layout for p in entry["providers"]}
    lost = [f"{n} in {d}/ under {tag}" for d, tags in sorted(census.unknown.items())
            for tag, n in sorted(tags.items()) if tag != "identity" and tag not in held]
    elsewhere = [name for name in _overridden(census.overrides)
                 if etcd_census.primary_for(census.layout, name)]
    reasons = []
    if lost:
        reasons.append(f"{', '.join(lost)}: a key the config no longer holds, so no API server "
                       "can read them")
    if elsewhere:
        reasons.append(f"covered {', '.join(elsewhere)} kept in another etcd, not read")
    return "; ".join(reasons)


# ------------------------------------------------------------ kubeadm's source of truth

KUBEADM_CONFIG = "kube-system/kubeadm-config"


def kubeadm_agreement(watched: dict[str, list[str]], ctx: HostContext) -> Verdict:
    """Beyond CIS: the hardened flags of each static-pod manifest, and the hostPath volumes
    their files need, are in kubeadm's ClusterConfiguration; otherwise the next `kubeadm
    upgrade` (or `kubeadm join --control-plane`) writes the manifest without them."""
    if "kubeadm-config" not in ctx.facts.kubectl:
        why = ctx.facts.kubectl_objects()[1] or "kubectl could not read the cluster"
        return Verdict(None, f"not checked: {why}", status="WARN")
    rc, text = ctx.facts.kubectl["kubeadm-config"]
    if rc != 0:
        return Verdict(None, f"not checked: kubectl get configmap {KUBEADM_CONFIG} failed "
                       f"(exit {rc}): {kubectl_error(text)}", status="WARN")
    if not text.strip():
        return Verdict(None, f"no {KUBEADM_CONFIG} ConfigMap: not a cluster kubeadm manages",
                       status="SKIP")
    source = f"{KUBEADM_CONFIG} (ClusterConfiguration)"
    try:
        config = ClusterConfig(text, source)
    except InputError as exc:
        return Verdict(False, f"kubeadm cannot read its ClusterConfiguration: {exc}",
                       [asked(source, ctx.facts)])
    lost, used = [], [asked(source, ctx.facts)]
    for component, flags in watched.items():
        configured = ctx.views(component)[1]
        commands = manifest_commands(ctx.facts)
        if configured is None or component not in commands or \
                (component == "etcd" and config.external_etcd):
            continue
        path = commands[component][0]
        used.append(f"manifest {path}")
        present = {f: configured.flag(f"--{f}") for f in flags if f"--{f}" in configured.flags}
        lost += lost_on_upgrade(config, component, present, flags,
                                _manifest_mounts(ctx.facts.contents.get(path, "")))
    if lost:
        return Verdict(False, "the next kubeadm upgrade would drop: " + "; ".join(lost), used)
    return Verdict(True, "every hardened flag and volume of the static-pod manifests is in "
                   f"ClusterConfiguration ({config.version})", used)


def _manifest_mounts(text: str) -> list[tuple[str, str]]:
    """(host path, container path) of each hostPath volume mounted in the pod's containers."""
    pod = yaml_docs(text) or {}
    spec = pod.get("spec") or {}
    hosts = {v.get("name"): (v.get("hostPath") or {}).get("path")
             for v in spec.get("volumes") or [] if isinstance(v, dict)}
    return [(hosts[m["name"]], str(m.get("mountPath", "")))
            for c in spec.get("containers") or [] for m in c.get("volumeMounts") or []
            if isinstance(m, dict) and hosts.get(m.get("name"))]
