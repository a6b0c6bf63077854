"""CIS 1.4.1 (scheduler profiling) as kube-scheduler decides it: without --config the
--profiling flag counts; with --config the flag is ignored and the KubeSchedulerConfiguration's
enableProfiling (default true) decides, read inside the running container and, for the
configured view, on the host through the manifest's hostPath volume. Real probe, fake node."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from harden.cis.catalogue import load_catalogue
from harden.cis.evaluate import evaluate_host
from harden.cis.probe import build_probe_script, parse_probe_output

CONFIG = "/etc/kubernetes/scheduler-config.yaml"
HOST_CONFIG = "/etc/kubernetes/sched/config.yaml"


def scheduler_config(enable_profiling: bool | None) -> str:
    doc = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration",
           "clientConnection": {"kubeconfig": "/etc/kubernetes/scheduler.conf"}}
    if enable_profiling is not None:
        doc["enableProfiling"] = enable_profiling
    return yaml.safe_dump(doc)


def put(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def verdict(root: Path, flags: list[str], running: str | None = None,
            on_host: str | None = None):
    """1.4.1 on a node whose scheduler runs `flags`; `running` is the config file inside its
    container, `on_host` the one the manifest's hostPath volume maps to CONFIG."""
    argv = ["kube-scheduler", "--bind-address=127.0.0.1", *flags]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kube-scheduler"},
           "spec": {"containers": [{"name": "kube-scheduler", "command": argv,
                                    "volumeMounts": [{"name": "config", "mountPath": CONFIG}]}],
                    "volumes": [{"name": "config", "hostPath": {"path": HOST_CONFIG}}]}}
    put(root, "/etc/kubernetes/manifests/kube-scheduler.yaml", yaml.safe_dump(pod))
    (root / "proc/300").mkdir(parents=True)
    (root / "proc/300/cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    if running is not None:
        put(root, f"/proc/300/root{CONFIG}", running)
    if on_host is not None:
        put(root, HOST_CONFIG, on_host)
    done = subprocess.run(["sh", "-c", build_probe_script(str(root))], capture_output=True,
                          text=True, timeout=60, check=True)
    facts = parse_probe_output(done.stdout)
    results = evaluate_host("cp1", facts, load_catalogue(), "control-plane")
    return next(r for r in results if r.id == "1.4.1")


def test_flag_only_decides_without_config(tmp_path):
    assert verdict(tmp_path / "off", ["--profiling=false"]).status == "PASS"
    on = verdict(tmp_path / "unset", [])
    assert on.status == "FAIL" and "--profiling / config enableProfiling is not set" in on.actual


def test_config_only_decides_with_its_default_true(tmp_path):
    off = verdict(tmp_path / "off", [f"--config={CONFIG}"], scheduler_config(False),
                  scheduler_config(False))
    assert off.status == "PASS", off.actual
    assert f"config enableProfiling = false (the scheduler runs with --config {CONFIG})" \
        in off.actual and "inside" not in off.actual
    default = verdict(tmp_path / "default", [f"--config={CONFIG}"], scheduler_config(None),
                      scheduler_config(None))
    assert default.status == "FAIL"
    assert "enableProfiling is not set (the scheduler runs with --config" in default.actual
    assert "the default is true" in default.actual


def test_with_both_the_flag_is_ignored(tmp_path):
    result = verdict(tmp_path / "both", ["--profiling=false", f"--config={CONFIG}"],
                     scheduler_config(None), scheduler_config(None))
    assert result.status == "FAIL"
    assert "--profiling=false is ignored" in result.actual
    both_off = verdict(tmp_path / "both-off", ["--profiling=true", f"--config={CONFIG}"],
                       scheduler_config(False), scheduler_config(False))
    assert both_off.status == "PASS" and "--profiling=true is ignored" in both_off.actual


def test_the_host_file_behind_the_hostpath_is_the_configured_view(tmp_path):
    # running with profiling off; the file on the host (what the next start reads) turns it on
    result = verdict(tmp_path, [f"--config={CONFIG}"], scheduler_config(False),
                     scheduler_config(True))
    assert result.status == "PASS"
    assert result.drift and f"host {HOST_CONFIG}" in result.drift and "fail after a restart" \
        in result.drift
