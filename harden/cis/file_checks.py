"""File checks (1.1.x, 4.1.x): which node paths a catalogue reference stands for, and their
mode or owner against the catalogue's limit."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from harden.cis.component_views import component_process, manifest_commands
from harden.cis.context import HostContext, Verdict
from harden.cis.lookup import config_value, format_value, lookup
from harden.cis.operators import bitmask_ok
from harden.cis.probe import Facts, FileStat
from harden.node.paths import (DEFAULT_KUBELET_CONFIG, KUBELET_DROPIN_DIRS, KUBELET_UNITS, MANIFEST_DIR,
                               PROXY_KUBECONFIGS)


@dataclass
class Resolved:
    paths: list[str]
    not_used: str | None = None        # the thing the check is about is not used on this node


def resolve_paths(ref: str, ctx: HostContext) -> Resolved:
    """Node paths a catalogue path reference stands for on this host."""
    facts = ctx.facts
    if ref.startswith("/"):
        return Resolved([ref])
    if ref.startswith("manifest:"):
        component = ref.split(":", 1)[1]
        found = manifest_commands(facts).get(component)
        return Resolved([found[0] if found else f"{MANIFEST_DIR}/{component}.yaml"])
    return RESOLVERS[ref](ctx)     # references were validated when the catalogue was loaded


def _first_flag(ctx: HostContext, component: str, flag: str) -> str | None:
    for view in ctx.views(component):
        if view and view.flag(flag):
            return view.flag(flag)
    return None


def _tree(facts: Facts, root: str, suffix: str = "", include_root: bool = True) -> list[str]:
    root = root.rstrip("/")
    return sorted(p for p in facts.stats
                  if (p.startswith(root + "/") or (include_root and p == root)) and p.endswith(suffix)
                  and (not suffix or _is_regular(facts, p)))


def _is_regular(facts: Facts, path: str) -> bool:
    """A regular file as a component opening it sees it (a symlink to a key is a key)."""
    stat = facts.followed(path)
    return stat is not None and stat.type == "regular file"


def _etcd_data_dir(ctx: HostContext) -> Resolved:
    effective, configured = ctx.views("etcd")
    for view in (effective, configured):
        if view and (view.flag("--data-dir") or view.env.get("ETCD_DATA_DIR")):
            return Resolved([view.flag("--data-dir") or view.env["ETCD_DATA_DIR"]])
    return Resolved(["/var/lib/etcd"])


def _cni_files(ctx: HostContext) -> Resolved:
    conf_dir = _first_flag(ctx, "kubelet", "--cni-conf-dir") or "/etc/cni/net.d"
    state = [p for p in _tree(ctx.facts, "/var/lib/cni/networks", include_root=False)
             if _is_regular(ctx.facts, p)]
    return Resolved(_tree(ctx.facts, conf_dir, include_root=False) + state)


def _kubelet_service(ctx: HostContext) -> Resolved:
    units = [u for u in KUBELET_UNITS if u in ctx.facts.stats]
    dropins = [p for p in ctx.facts.stats
               if posixpath.dirname(p) in KUBELET_DROPIN_DIRS and p.endswith(".conf")]
    return Resolved(units + sorted(dropins))


def _kubelet_config(ctx: HostContext) -> Resolved:
    effective, configured = ctx.views("kubelet")
    if effective is not None and not effective.flag("--config"):
        return Resolved([], not_used="the running kubelet uses no config file (--config is not set)")
    for view in (effective, configured):
        if view and view.flag("--config"):
            return Resolved([view.flag("--config")])
    return Resolved([DEFAULT_KUBELET_CONFIG])


def _kubelet_client_ca(ctx: HostContext) -> Resolved:
    item = {"flag": "--client-ca-file", "key": "authentication.x509.clientCAFile"}
    for view in ctx.views("kubelet"):
        if view:
            found = lookup(item, view)
            if found.found and found.value:
                return Resolved([found.value])
    return Resolved(["/etc/kubernetes/pki/ca.crt"])


def _kubelet_kubeconfig(ctx: HostContext) -> Resolved:
    return Resolved([_first_flag(ctx, "kubelet", "--kubeconfig") or "/etc/kubernetes/kubelet.conf"])


def _proxy_kubeconfig(ctx: HostContext) -> Resolved:
    """The kubeconfig the running kube-proxy uses, as its container sees it, then the host's
    usual places. With --config, kube-proxy takes clientConnection.kubeconfig from that file and
    ignores --kubeconfig (kubeadm's DaemonSet works that way)."""
    paths = list(PROXY_KUBECONFIGS)
    proc = component_process(ctx.facts, "kube-proxy")
    effective, _ = ctx.views("kube-proxy")
    if proc and effective:
        named = effective.flag("--kubeconfig")
        if effective.flag("--config"):
            named = format_value(config_value(effective.config, "clientConnection.kubeconfig"))
        if named and named.startswith("/"):
            paths.insert(0, f"/proc/{proc.pid}/root{named}")
    return Resolved(paths)


RESOLVERS = {
    "etcd-data-dir": _etcd_data_dir,
    "cni-files": _cni_files,
    "pki-tree": lambda ctx: Resolved(_tree(ctx.facts, "/etc/kubernetes/pki") or ["/etc/kubernetes/pki"]),
    "pki-certs": lambda ctx: Resolved(_tree(ctx.facts, "/etc/kubernetes/pki", ".crt")),
    "pki-keys": lambda ctx: Resolved(_tree(ctx.facts, "/etc/kubernetes/pki", ".key")),
    "admin-kubeconfigs": lambda ctx: Resolved(["/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf"]),
    "kubelet-service": _kubelet_service,
    "kubelet-kubeconfig": _kubelet_kubeconfig,
    "kubelet-client-ca": _kubelet_client_ca,
    "kubelet-config": _kubelet_config,
    "proxy-kubeconfig": _proxy_kubeconfig,
}


def _file_ok(stat: FileStat, audit: dict) -> bool:
    if "mode_max" in audit:
        return bitmask_ok(stat.mode & 0o7777, int(str(audit["mode_max"]), 8))
    return stat.owner == audit["owner"]


def _describe_stat(stat: FileStat, audit: dict) -> str:
    """`path: 600`; for a symlink `path -> target: 600`, the target's mode and owner being what
    a component opening the path meets (the link's own 777 means nothing on Linux)."""
    shown = f"{stat.mode & 0o7777:o}" if "mode_max" in audit else stat.owner
    via = f" -> {stat.link}" if stat.link is not None else ""
    return f"{stat.path}{via}: {shown}"


def evaluate_files(audit: dict, ctx: HostContext) -> Verdict:
    paths: list[str] = []
    for ref in audit["files"]:
        resolved = resolve_paths(ref, ctx)
        if resolved.not_used:
            return Verdict(True, resolved.not_used)
        paths.extend(resolved.paths)
    seen: set[str] = set()
    stats: list[FileStat] = []
    dangling: list[str] = []
    for path in paths:
        stat = ctx.facts.followed(path)
        if path in ctx.facts.dangling:
            dangling.append(f"{path} -> {ctx.facts.dangling[path]} (leads nowhere)")
        if stat and stat.inode not in seen:
            seen.add(stat.inode)
            stats.append(stat)
    if not stats:
        return _missing_verdict(audit, [p for p in paths if p not in ctx.facts.dangling] + dangling)
    bad = [s for s in stats if not _file_ok(s, audit)]
    shown = bad or stats
    text = "; ".join(_describe_stat(s, audit) for s in shown[:8])
    if len(shown) > 8:
        text += f"; ... {len(shown) - 8} more"
    if len(stats) > 1:
        text = (f"{len(bad)} of {len(stats)} files fail: " if bad else f"all {len(stats)} files pass: ") + text
    return Verdict(not bad, text, [f"stat {s.path}" for s in stats])


def _missing_verdict(audit: dict, paths: list[str]) -> Verdict:
    looked = ", ".join(paths) if paths else "no candidate files"
    policy = audit.get("missing", "fail")
    reason = audit.get("missing_reason", "")
    text = f"not found: {looked}" + (f" ({reason})" if reason else "")
    if policy == "pass":
        return Verdict(True, text)
    if policy == "skip":
        return Verdict(None, text, status="SKIP")
    return Verdict(False, text)
