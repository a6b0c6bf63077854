"""The shipped playbooks planned against an in-memory kubeadm node, the way the runner will:
render each task's args with the play's vars, gather the facts the modules ask for, plan,
record the changes. First pass: the expected changes; second pass over the result: none."""

from __future__ import annotations

import base64
import fnmatch
from pathlib import Path

import pytest
import yaml

from harden.apply.facts import (CENSUS, CONFIGMAP, FILE, GLOB, KUBELET, SYSCTL, ConfigMapState,
                                FactNotGathered, Facts, FileState, KubeletProcess)
from harden.kubeadm.cluster_config import ClusterConfig
from harden.apply.modules import get_module
from harden.apply.modules.base import PlanContext
from harden.apply.playbook import load_playbook
from harden.apply.templating import evaluate, layered_vars, render_value
from harden.node import etcd_census
from support.paths import REPO

FIXTURES = REPO / "tests" / "fixtures" / "manifests"
KEY = base64.b64encode(bytes(range(32))).decode()
CLUSTER_CONFIGURATION = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer: {}
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controllerManager: {}
etcd:
  local:
    dataDir: /var/lib/etcd
kubernetesVersion: v1.31.0
networking:
  serviceSubnet: 10.96.0.0/12
scheduler: {}
"""


def kubeadm_node() -> dict[str, FileState]:
    files = {}

    def add(path, content=None, mode=0o600, kind="file"):
        files[path] = FileState(path, kind, mode, "root", "root", content)

    for d in ("/etc/kubernetes", "/etc/kubernetes/manifests", "/etc/kubernetes/pki",
              "/etc/kubernetes/pki/etcd", "/var/lib/etcd", "/var/lib/kubelet"):
        add(d, mode=0o755, kind="directory")
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
        add(f"/etc/kubernetes/manifests/{name}.yaml", (FIXTURES / f"{name}.yaml").read_bytes())
    for name in ("admin.conf", "super-admin.conf", "controller-manager.conf", "scheduler.conf",
                 "kubelet.conf"):
        add(f"/etc/kubernetes/{name}", b"apiVersion: v1\nkind: Config\n", 0o644)
    for name in ("ca", "apiserver", "etcd/ca", "etcd/server"):
        add(f"/etc/kubernetes/pki/{name}.crt", b"crt", 0o644)
        add(f"/etc/kubernetes/pki/{name}.key", b"key", 0o644)
    add("/var/lib/kubelet/config.yaml", (FIXTURES / "kubelet-config.yaml").read_bytes(), 0o644)
    add("/var/lib/kubelet/kubeadm-flags.env",
        b'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///run/containerd/'
        b'containerd.sock --read-only-port=10255"\n', 0o644)
    add("/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", b"[Service]\n", 0o644)
    # the cluster's kubeadm ConfigMaps, as admin.conf on this control plane reads them
    files["cm:kube-system/kubeadm-config"] = ConfigMapState(
        "kube-system/kubeadm-config", {"ClusterConfiguration": CLUSTER_CONFIGURATION}, "1")
    files["cm:kube-system/kubelet-config"] = ConfigMapState(
        "kube-system/kubelet-config",
        {"kubelet": (FIXTURES / "kubelet-config.yaml").read_text()}, "1")
    return files


def gather(node: dict, sysctls: dict, requests) -> Facts:
    facts = Facts()
    for req in requests:
        if req.kind == FILE:
            facts.files[req.target.rstrip("/")] = node.get(req.target.rstrip("/"))
            facts.with_content.add(req.target.rstrip("/"))
        elif req.kind == GLOB:
            root = req.target
            hits = [p for p in node if fnmatch.fnmatchcase(p, root) or
                    (req.recurse and any(fnmatch.fnmatchcase(p[:i], root)
                                         for i in range(len(p)) if p[i] == "/"))]
            facts.globs[(root, req.recurse)] = sorted(hits)
            facts.files.update({p: node[p] for p in hits})
        elif req.kind == SYSCTL:
            facts.sysctls[req.target] = sysctls.get(req.target, "0")
        elif req.kind == CONFIGMAP:
            facts.configmaps[req.target] = node.get(f"cm:{req.target}") or ConfigMapState(
                req.target, unavailable="no admin.conf")
        elif req.kind == CENSUS:        # an etcd that holds nothing yet
            facts.census = etcd_census.Census(method="etcdctl")
        elif req.kind == KUBELET:
            config = "/var/lib/kubelet/config.yaml"
            facts.kubelet_process = KubeletProcess(("kubelet", f"--config={config}"), config)
            facts.files[config] = node.get(config)
            facts.with_content.add(config)
    return facts


def run_playbook(path: Path, node: dict, sysctls: dict, extra: dict) -> list[str]:
    """Plan every task (and handler) of every play that writes and whose `when` holds, and
    apply it to the in-memory node. Asserts, set_fact, commands and check-only preflight tasks
    need other hosts or a cluster: the lab tests and test_pod_security_preflight run those."""
    summaries = []
    for play in load_playbook(str(path)).plays:
        variables = layered_vars(play.vars, extra_vars=extra)
        rendered = []
        for task in play.tasks + play.handlers:
            if task.module in ("assert", "command", "shell", "set_fact") or \
                    task.check_mode is True or \
                    not all(evaluate(c, variables) for c in task.when):
                continue
            module = get_module(task.module)
            args = module.validate(render_value(task.args, variables, task.where), *task.where)
            rendered.append((task, module, args))
        facts = gather(node, sysctls, [r for _, m, a in rendered for r in m.facts_needed(a)])
        ctx = PlanContext(vars=variables, template_dirs=play.template_dirs)
        notified: set[str] = set()
        handlers = {id(h) for h in play.handlers}
        for task, module, args in rendered:
            if task.module in ("service",):      # actions: only through notify, elsewhere
                continue
            if id(task) in handlers and task.name not in notified:
                continue                         # as the runner: only notified handlers run
            changes = plan_on_demand(module, args, facts, ctx, node, sysctls)
            if changes:
                notified.update(task.notify)
            for change in changes:
                change.record_in(facts)
                summaries.append(f"{task.name}: {change.summary}")
                if change.path and change.after is not None:
                    node[change.path] = change.after
                if change.configmap is not None:
                    node[f"cm:{change.configmap.ref}"] = change.configmap
                if change.sysctl:
                    sysctls[change.sysctl[0]] = change.sysctl[1]
    return summaries


def plan_on_demand(module, args, facts: Facts, ctx: PlanContext, node: dict, sysctls: dict):
    """Plan, fetching a fact nobody asked for up front the way the runner does."""
    for _ in range(5):
        try:
            return module.plan(args, facts, ctx)
        except FactNotGathered as missing:
            more = gather(node, sysctls, [missing.request])
            facts.files.update(more.files)
            facts.with_content |= more.with_content
            facts.configmaps.update(more.configmaps)
    raise AssertionError("facts still missing")


@pytest.mark.parametrize("name,extra", [
    ("site.yml", {}), ("cis-control-plane.yml", {}), ("kubelet.yml", {}),
    ("encryption-at-rest.yml", {"encryption_key": KEY}),
    ("encryption-at-rest.yml", {"encryption_key": KEY, "encryption_phase": "enable"})])
def test_shipped_playbook_changes_once_then_nothing(name, extra):
    node, sysctls = kubeadm_node(), {}
    if extra.get("encryption_phase") == "enable":       # the prepare run came first
        run_playbook(REPO / "playbooks" / name, node, sysctls, {"encryption_key": KEY})
    first = run_playbook(REPO / "playbooks" / name, node, sysctls, extra)
    assert first
    second = run_playbook(REPO / "playbooks" / name, node, sysctls, extra)
    assert second == []


def test_encryption_is_prepared_then_turned_on():
    node, sysctls = kubeadm_node(), {}
    path, enc = REPO / "playbooks" / "encryption-at-rest.yml", \
        "/etc/kubernetes/enc/encryption-config.yaml"

    def providers() -> list[list[str]]:
        return [list(p) for p in yaml.safe_load(node[enc].content)["resources"][0]["providers"]]

    run_playbook(path, node, sysctls, {"encryption_key": KEY})
    assert providers() == [["identity"], ["secretbox"]]
    run_playbook(path, node, sysctls, {"encryption_key": KEY, "encryption_phase": "enable"})
    assert providers() == [["secretbox"], ["identity"]]


def test_site_plan_content():
    node, sysctls = kubeadm_node(), {}
    summaries = run_playbook(REPO / "playbooks" / "site.yml", node, sysctls, {})
    text = "\n".join(summaries)
    assert "/etc/kubernetes/admin.conf: mode 0644 -> 0600" in text
    assert "/etc/kubernetes/pki/ca.key: mode 0644 -> 0600" in text
    assert "/etc/kubernetes/pki/ca.crt: mode" not in text
    apiserver = node["/etc/kubernetes/manifests/kube-apiserver.yaml"].content.decode()
    for flag in ("--profiling=false", "--audit-policy-file=/etc/kubernetes/audit-policy.yaml",
                 "--audit-log-maxage=30",
                 "--enable-admission-plugins=NodeRestriction,EventRateLimit",
                 "--admission-control-config-file=/etc/kubernetes/admission/"
                 "admission-config.yaml"):
        assert f"    - {flag}\n" in apiserver
    assert "harden.io/config-hash" in apiserver
    kubelet = node["/var/lib/kubelet/config.yaml"].content.decode()
    assert "readOnlyPort: 0\n" in kubelet and "protectKernelDefaults: true\n" in kubelet
    assert b"--read-only-port" not in node["/var/lib/kubelet/kubeadm-flags.env"].content
    assert sysctls["vm.overcommit_memory"] == "1"


def test_site_keeps_every_flag_volume_and_kubelet_key_in_kubeadms_configmaps():
    node, sysctls = kubeadm_node(), {}
    run_playbook(REPO / "playbooks" / "site.yml", node, sysctls, {})
    config = ClusterConfig(node["cm:kube-system/kubeadm-config"].data["ClusterConfiguration"])
    args = dict(config.extra_args("kube-apiserver"))
    assert args["profiling"] == "false"
    assert args["enable-admission-plugins"] == "NodeRestriction,EventRateLimit"
    assert args["audit-policy-file"] == "/etc/kubernetes/audit-policy.yaml"
    assert args["admission-control-config-file"] == \
        "/etc/kubernetes/admission/admission-config.yaml"
    assert {v.host_path for v in config.extra_volumes("kube-apiserver")} == {
        "/etc/kubernetes/audit-policy.yaml", "/var/log/kubernetes/audit",
        "/etc/kubernetes/admission"}
    assert dict(config.extra_args("kube-controller-manager"))["terminated-pod-gc-threshold"] \
        == "12500"
    assert dict(config.extra_args("kube-scheduler")) == {"profiling": "false"}
    assert config.generated("etcd", "client-cert-auth") == (True, "true")   # kubeadm's own
    assert "authorization-mode" not in args and "use-service-account-credentials" not in \
        dict(config.extra_args("kube-controller-manager"))
    kubelet = yaml.safe_load(node["cm:kube-system/kubelet-config"].data["kubelet"])
    assert kubelet["readOnlyPort"] == 0 and kubelet["protectKernelDefaults"] is True


def test_node_only_mode_leaves_kubeadms_configmaps_alone():
    node, sysctls = kubeadm_node(), {}
    before = {k: v for k, v in node.items() if k.startswith("cm:")}
    summaries = run_playbook(REPO / "playbooks" / "site.yml", node, sysctls,
                             {"harden_kubeadm_persist": False})
    assert {k: v for k, v in node.items() if k.startswith("cm:")} == before
    assert not [s for s in summaries if "configmap" in s]
    assert "--profiling=false" in \
        node["/etc/kubernetes/manifests/kube-apiserver.yaml"].content.decode()


def test_encryption_key_never_in_summaries_or_diffs():
    node = kubeadm_node()
    play = load_playbook(str(REPO / "playbooks" / "encryption-at-rest.yml")).plays[0]
    task = [t for t in play.tasks if t.module == "template"][0]
    module = get_module("template")
    variables = layered_vars(play.vars, extra_vars={"encryption_key": KEY})
    args = module.validate(render_value(task.args, variables))
    facts = gather(node, {}, module.facts_needed(args))
    changes = module.plan(args, facts, PlanContext(vars=variables,       # the task's check_mode
                                                   template_dirs=play.template_dirs,
                                                   check_mode=True))
    assert task.no_log and args["secret"]
    assert all(KEY not in c.diff and KEY not in c.summary for c in changes)


def test_encryption_dir_moves_the_config_with_it():
    node, sysctls = kubeadm_node(), {}
    run_playbook(REPO / "playbooks" / "encryption-at-rest.yml", node, sysctls,
                 {"encryption_key": KEY, "encryption_dir": "/etc/kubernetes/encryption"})
    assert "/etc/kubernetes/encryption/encryption-config.yaml" in node
    apiserver = node["/etc/kubernetes/manifests/kube-apiserver.yaml"].content.decode()
    assert "--encryption-provider-config=/etc/kubernetes/encryption/encryption-config.yaml" \
        in apiserver


def test_control_plane_play_runs_without_an_etcd_static_pod():
    """External etcd: no etcd manifest on the control plane; the etcd task is skipped instead of
    failing (and rolling back) the whole control-plane play."""
    node, sysctls = kubeadm_node(), {}
    del node["/etc/kubernetes/manifests/etcd.yaml"]
    summaries = run_playbook(REPO / "playbooks" / "cis-control-plane.yml", node, sysctls, {})
    assert any("kube-apiserver.yaml" in s for s in summaries)
    assert not any("etcd.yaml" in s for s in summaries)
    assert "/etc/kubernetes/manifests/etcd.yaml" not in node


def test_defaults_that_keep_workloads_working():
    """Finished pods kept cluster-wide: upstream's 12500, not 10 (which deletes Job pods and
    their logs within minutes); a per-pod pid limit thread-heavy pods do not hit."""
    node, sysctls = kubeadm_node(), {}
    run_playbook(REPO / "playbooks" / "site.yml", node, sysctls, {})
    cm = node["/etc/kubernetes/manifests/kube-controller-manager.yaml"].content.decode()
    assert "    - --terminated-pod-gc-threshold=12500\n" in cm
    kubelet = yaml.safe_load(node["/var/lib/kubelet/config.yaml"].content)
    assert kubelet["podPidsLimit"] == 16384
