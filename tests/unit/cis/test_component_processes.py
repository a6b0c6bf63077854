"""Which process is the component, and which node roles processes imply.

Reviewed defects: an etcd pod on a worker made the node an etcd node, the lowest pid was taken
even when another process matched the static-pod manifest, and a process that exited mid-probe
left an empty record that passed "flag not set" checks."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from harden.cis.catalogue import load_catalogue
from harden.cis.component_views import component_views
from harden.cis.evaluate import evaluate_host
from harden.cis.roles import detect_roles
from harden.cis.probe import build_probe_script, parse_probe_output

APISERVER_MANIFEST = ("spec:\n  containers:\n  - command:\n    - kube-apiserver\n"
                      "    - --token-auth-file=/etc/kubernetes/tokens.csv\n")
ETCD_MANIFEST = ("spec:\n  containers:\n  - command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n"
                 "    - --client-cert-auth=true\n")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def b64(text: bytes | str) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def probe_output(*records: str) -> str:
    return "HARDEN-PROBE|1|\nT|1700000000|100\n" + "".join(r + "\n" for r in records) + "END|\n"


def proc(pid: int, name: str, argv: list[str], start: int = 100) -> str:
    return f"P|{pid}|{name}|{start}|{b64(chr(0).join(argv) + chr(0))}"


def manifest(name: str, text: str) -> str:
    return f"F|{b64(text)}|/etc/kubernetes/manifests/{name}.yaml"


def test_etcd_pod_on_a_worker_does_not_make_it_an_etcd_node():
    facts = parse_probe_output(probe_output(
        proc(40, "kubelet", ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"]),
        proc(41, "etcd", ["etcd", "--data-dir=/bitnami/etcd"]), "G|41",
        proc(42, "kube-apiserver", ["kube-apiserver", "--etcd-servers=http://x"]), "G|42"))
    assert detect_roles(facts) == {"worker"}


def test_etcd_outside_pods_without_manifest_still_makes_an_etcd_node():
    facts = parse_probe_output(probe_output(proc(41, "etcd", ["etcd", "--data-dir=/srv/etcd"])))
    assert detect_roles(facts) == {"etcd"}


def test_static_pod_in_kubepods_is_found_through_its_manifest():
    facts = parse_probe_output(probe_output(
        manifest("etcd", ETCD_MANIFEST),
        proc(30, "etcd", ["etcd", "--data-dir=/bitnami/etcd"]), "G|30",
        proc(31, "etcd", ["etcd", "--data-dir=/var/lib/etcd", "--client-cert-auth=true"]), "G|31"))
    assert "etcd" in detect_roles(facts)
    effective, _ = component_views("etcd", facts)
    assert effective.source == "running process 31"


def test_without_an_exact_match_the_newest_process_of_the_manifest_binary_is_taken():
    facts = parse_probe_output(probe_output(
        manifest("etcd", ETCD_MANIFEST),
        proc(30, "etcd", ["etcd", "--data-dir=/var/lib/etcd"], start=900),
        proc(31, "etcd", ["/opt/bin/etcd", "--data-dir=/bitnami"], start=950),
        proc(32, "etcd", ["etcd", "--data-dir=/var/lib/etcd"], start=100)))
    effective, _ = component_views("etcd", facts)
    assert effective.source == "running process 30"


def test_empty_cmdline_record_is_not_a_running_process(catalogue):
    facts = parse_probe_output(probe_output(
        manifest("kube-apiserver", APISERVER_MANIFEST), f"P|50|kube-apiserver|100|{b64(b'')}",
        f"P|51|kube-apiserver|100|{b64(bytes(1))}"))
    assert facts.processes.get("kube-apiserver", []) == []
    result = next(r for r in evaluate_host("cp", facts, catalogue) if r.id == "1.2.2")
    assert result.status != "PASS"


def _fake_proc(root: Path, pid: int, cmdline: bytes, cgroup: str | None = None) -> None:
    target = root / "proc" / str(pid)
    target.mkdir(parents=True)
    (target / "cmdline").write_bytes(cmdline)
    if cgroup is not None:
        (target / "cgroup").write_text(cgroup)


def test_probe_script_skips_exited_processes_and_marks_pod_containers(tmp_path):
    root = tmp_path / "node"
    _fake_proc(root, 21, b"etcd\0--data-dir=/bitnami/etcd\0",
               "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-x\n")
    _fake_proc(root, 22, b"/usr/bin/etcd\0--data-dir=/srv/etcd\0", "0::/system.slice/etcd.service\n")
    _fake_proc(root, 23, b"")      # exited between the process listing and the read
    out = subprocess.run(["sh", "-c", build_probe_script(str(root))], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "P|23|" not in out
    facts = parse_probe_output(out)
    etcds = {p.pid: p.in_pod for p in facts.processes["etcd"]}
    assert etcds == {21: True, 22: False}
    assert facts.process("etcd").pid == 22      # no manifest: the host-run etcd, not the pod


def test_probe_script_drops_a_process_that_exited_after_the_listing(tmp_path):
    """An unreaped child is a zombie: listed by ps, but its cmdline reads empty - exactly what
    a component exiting between the listing and the read looks like."""
    child = subprocess.Popen(["true"])
    try:
        for _ in range(200):
            if Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1].startswith("Z"):
                break
            subprocess.run(["sleep", "0.01"], check=True)
        shim = tmp_path / "bin"
        shim.mkdir()
        (shim / "ps").write_text(f"#!/bin/sh\necho '{child.pid} etcd'\n")
        (shim / "ps").chmod(0o755)
        env = {"PATH": f"{shim}:/usr/bin:/bin"}
        out = subprocess.run(["sh", "-c", build_probe_script()], capture_output=True, text=True,
                             timeout=60, check=True, env=env).stdout
    finally:
        child.wait()
    assert f"P|{child.pid}|" not in out
    assert "etcd" not in parse_probe_output(out).processes
