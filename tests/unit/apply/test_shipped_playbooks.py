"""The shipped playbooks planned against an in-memory kubeadm node, the way the runner will:
render each task's args with the play's vars, gather the facts the modules ask for, plan,
record the changes. First pass: the expected changes; second pass over the result: none."""

from __future__ import annotations

import base64
import fnmatch
from pathlib import Path

import pytest
import yaml

from harden.apply.facts import CENSUS, FILE, GLOB, KUBELET, SYSCTL, Facts, FileState, KubeletProcess
from harden.apply.modules import get_module
from harden.apply.modules.base import PlanContext
from harden.apply.playbook import load_playbook
from harden.apply.templating import evaluate, layered_vars, render_value
from harden.node import etcd_census
from support.paths import REPO

FIXTURES = REPO / "tests" / "fixtures" / "manifests"
KEY = base64.b64encode(bytes(range(32))).decode()


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
        elif req.kind == CENSUS:        # an etcd that holds nothing yet
            facts.census = etcd_census.Census(method="etcdctl")
        elif req.kind == KUBELET:
            config = "/var/lib/kubelet/config.yaml"
            facts.kubelet_process = KubeletProcess(("kubelet", f"--config={config}"), config)
            facts.files[config] = node.get(config)
            facts.with_content.add(config)
    return facts


def run_playbook(path: Path, node: dict, sysctls: dict, extra: dict) -> list[str]:
    """Plan every task (and handler) of every play that writes and whose `when` holds (asserts
    and check-only preflight tasks need other hosts' results: the lab tests run those);
    apply to the in-memory node."""
    summaries = []
    for play in load_playbook(str(path)).plays:
        variables = layered_vars(play.vars, extra_vars=extra)
        rendered = []
        for task in play.tasks + play.handlers:
            if task.module == "assert" or task.check_mode is True or \
                    not all(evaluate(c, variables) for c in task.when):
                continue
            module = get_module(task.module)
            args = module.validate(render_value(task.args, variables, task.where), *task.where)
            rendered.append((task, module, args))
        facts = gather(node, sysctls, [r for _, m, a in rendered for r in m.facts_needed(a)])
        ctx = PlanContext(vars=variables, template_dirs=play.template_dirs)
        for task, module, args in rendered:
            if task.module in ("service",):      # actions: only through notify, elsewhere
                continue
            for change in module.plan(args, facts, ctx):
                change.record_in(facts)
                summaries.append(f"{task.name}: {change.summary}")
                if change.path and change.after is not None:
                    node[change.path] = change.after
                if change.sysctl:
                    sysctls[change.sysctl[0]] = change.sysctl[1]
    return summaries


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


def test_encryption_key_never_in_summaries_or_diffs():
    node = kubeadm_node()
    play = load_playbook(str(REPO / "playbooks" / "encryption-at-rest.yml")).plays[0]
    task = [t for t in play.tasks if t.module == "template"][0]
    module = get_module("template")
    variables = layered_vars(play.vars, extra_vars={"encryption_key": KEY})
    args = module.validate(render_value(task.args, variables))
    facts = gather(node, {}, module.facts_needed(args))
    changes = module.plan(args, facts, PlanContext(vars=variables,
                                                   template_dirs=play.template_dirs))
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
