"""Module tests as "facts in -> changes out" (pyinfra's habit): build facts, plan a module, plan again; and the local fact/apply round trip."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
import pytest
from harden.apply.facts import ConfigMapState, Facts, FileState, KubeletProcess, build_script, \
    parse_output
from harden.apply.modules import get_module
from harden.apply.modules.base import PlanContext, apply_script
from harden.apply.templating import render_value


REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "tests" / "fixtures" / "manifests"


def manifest_text(name: str) -> bytes:
    return (MANIFESTS / name).read_bytes()


def file_state(path: str, content: bytes | None = b"", mode: int = 0o600, owner: str = "root",
               group: str = "root", kind: str = "file") -> FileState:
    return FileState(path, kind, mode, owner, group, content if kind == "file" else None)


KUBEADM_CONFIGMAPS = ("kube-system/kubeadm-config", "kube-system/kubelet-config")


def make_facts(*states: FileState, absent=(), sysctls=None, kubelet=None,
               configmaps: dict[str, str] | None = None) -> Facts:
    """configmaps: ref -> the one data key's text ({"kube-system/kubeadm-config": "..."});
    kubeadm's ConfigMaps not given are unreadable, as on a node without admin.conf. The
    directory of a path given (or absent) exists as a 0755 root directory unless it is given
    itself (as absent, for a missing directory)."""
    facts = Facts()
    keys = {"kube-system/kubeadm-config": "ClusterConfiguration",
            "kube-system/kubelet-config": "kubelet"}
    for ref in KUBEADM_CONFIGMAPS:
        facts.configmaps[ref] = ConfigMapState(ref, unavailable="no admin.conf (test facts)")
    for ref, text in (configmaps or {}).items():
        facts.configmaps[ref] = ConfigMapState(ref, {keys.get(ref, "data"): text}, "7")
    for state in states:
        facts.files[state.path] = state
        facts.with_content.add(state.path)
    for path in absent:
        facts.files[path] = None
        facts.with_content.add(path)
    for path in [s.path for s in states] + list(absent):
        parent = os.path.dirname(path.rstrip("/")) or "/"
        if parent not in facts.files:
            facts.files[parent] = FileState(parent, "directory", 0o755, "root", "root")
    facts.sysctls.update(sysctls or {})
    if kubelet is not None:
        facts.kubelet_process = kubelet
    return facts


def kubelet_process(config="/var/lib/kubelet/config.yaml", argv=None) -> KubeletProcess:
    return KubeletProcess(tuple(argv) if argv else ("kubelet", f"--config={config}"), config)


def plan(module: str, args: dict, facts: Facts, variables: dict | None = None,
         check_mode: bool = False, as_found: bool = False, predicting: bool | None = None):
    """What the runner does for one task: render args, validate, plan. `check_mode` alone is
    the predictive --check; a task's own check_mode: true in a real run gives predicting=False."""
    mod = get_module(module)
    rendered = render_value(args, variables or {})
    valid = mod.validate(rendered)
    ctx = PlanContext(vars=variables or {}, template_dirs=[str(REPO / "templates")],
                      check_mode=check_mode, as_found=as_found,
                      predicting=check_mode and not as_found if predicting is None else predicting)
    return mod.plan(valid, facts, ctx)


def plan_twice(module: str, args: dict, facts: Facts, variables: dict | None = None):
    """Plan, record the changes into the facts, plan again: the second plan must be empty."""
    first = plan(module, args, facts, variables)
    for change in first:
        change.record_in(facts)
    return first, plan(module, args, facts, variables)


def gather_local(requests) -> Facts:
    script = build_script(requests)
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, check=True)
    return parse_output(requests, out.stdout)


def apply_local(changes, run_id: str, backup_root: Path) -> None:
    script = apply_script(changes, run_id, backup_root=str(backup_root))
    done = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def gather_isolated(requests) -> Facts:
    """The fact script in a PID namespace of its own, so kubelets of labs that other tests run
    at the same time are not visible (root only; otherwise skipped when one is running)."""
    script = build_script(requests)
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--pid", "--fork", "--mount-proc", "sh", "-s"]
    elif _first_kubelet_argv() is None:
        argv = ["sh", "-s"]
    else:
        pytest.skip("a kubelet runs on this machine and no PID namespace is available")
    out = subprocess.run(argv, input=script, capture_output=True, text=True, check=True)
    return parse_output(requests, out.stdout)


def _first_kubelet_argv():
    """Independent of the script: scan /proc in pid order for argv[0] named kubelet."""
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = [a.decode() for a in handle.read().split(b"\0") if a]
        except OSError:
            continue
        if argv and os.path.basename(argv[0].split()[0]) == "kubelet":
            return tuple(argv)
    return None
