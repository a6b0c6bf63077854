"""`harden check` reads section 5's cluster data once per declared cluster on real lab nodes
(the lab's inventory sets harden_cluster): one control plane runs `kubectl get` and reads
kubeadm-config, the other gets them (same verdicts, evidence naming where they were asked) but
asks its own access reviews, each host still costing one exec; a control plane whose API server
authorizes differently fails 5.1.x on its own; one whose API server does not answer hands the
question on to the next one in a second exec."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from harden.lab import cluster

pytestmark = pytest.mark.lab
HARDEN = [sys.executable, "-m", "harden.cli"]
SECTION_5 = ("5.1.1", "5.1.2", "5.1.3", "5.1.4", "5.1.5", "5.2.1", "5.3.2")
CAN_I = ("5.1.2", "5.1.4")            # access reviews: each API server's own answer
APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"


@pytest.fixture(scope="module")
def lab(lab_factory):
    with lab_factory.running(control_planes=2, workers=1, wait_ready=True) as lab:
        yield lab


def check(lab, tmp_path, *args: str) -> dict:
    out = tmp_path / "report.json"
    done = subprocess.run([*HARDEN, "check", "-i", str(lab.inventory), "--format", "json",
                           "-o", str(out), *args], capture_output=True, text=True, timeout=300,
                          env=_env(tmp_path))
    assert done.returncode == 2, done.stderr          # the kubeadm lab has scored FAILs
    return json.loads(out.read_text())


def _env(tmp_path) -> dict:
    return {**os.environ, "HARDEN_STATE_DIR": str(tmp_path / "state")}


def results(report: dict, host: str) -> dict[str, dict]:
    return {r["id"]: r for r in report["results"] if r["host"] == host}


def asked_on_cp1(lab) -> str:
    inventory = lab.inventory.read_text()
    name = next(line.split("=", 1)[1] for line in inventory.splitlines()
                if line.startswith("harden_cluster="))
    return f", asked on cp1 (a host of this node's cluster, harden_cluster={name})"


def exec_requests(lab, node: str) -> int:
    """sshd at LogLevel DEBUG1 logs every exec channel request of every session."""
    log = (lab.dir / "nodes" / node / "sshd.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines()
               if "session_input_channel_req:" in line and line.endswith(" req exec"))


def execs_during(lab, run):
    before = {n: exec_requests(lab, n) for n in lab.nodes}
    value = run()
    return value, {n: exec_requests(lab, n) - before[n] for n in lab.nodes}


@pytest.mark.parametrize("transport", ["paramiko", "openssh"])
def test_section_5_is_asked_on_one_control_plane_and_given_to_the_other(lab, tmp_path,
                                                                        transport):
    lab.wait_ready()
    report, execs = execs_during(lab, lambda: check(lab, tmp_path, "--transport", transport))
    assert execs == {"cp1": 1, "cp2": 1, "w1": 1}
    cp1, cp2 = results(report, "cp1"), results(report, "cp2")
    alone = results(check(lab, tmp_path, "--transport", transport, "--limit", "cp2"), "cp2")
    for item in (*SECTION_5, "1.1.22k"):
        same = ("status", "actual", "expected", "computed")
        assert {k: cp2[item][k] for k in same} == {k: cp1[item][k] for k in same}, item
        assert {k: cp2[item][k] for k in same} == {k: alone[item][k] for k in same}, item
        shared = item not in CAN_I
        assert cp2[item]["facts"][0].endswith(asked_on_cp1(lab)) == shared, cp2[item]["facts"]
        assert not any("asked on" in f for f in cp1[item]["facts"] + alone[item]["facts"])
    assert cp2["5.1.1"]["status"] in ("PASS", "WARN") and "not checked" not in cp2["5.1.1"]["actual"]


def test_a_control_plane_whose_api_server_does_not_answer_hands_the_question_on(lab, tmp_path):
    lab.wait_ready()
    admin = lab.node_root("cp1") / "etc/kubernetes/admin.conf"
    text = admin.read_text()
    assert ":6443" in text
    admin.write_text(text.replace(":6443", ":1"))       # nothing listens there
    try:
        report, execs = execs_during(lab, lambda: check(lab, tmp_path))
    finally:
        admin.write_text(text)
    assert execs == {"cp1": 1, "cp2": 2, "w1": 1}
    cp1, cp2 = results(report, "cp1"), results(report, "cp2")
    assert cp1["5.1.1"]["status"] == "WARN" and "kubectl failed" in cp1["5.1.1"]["actual"]
    assert "not checked" not in cp2["5.1.1"]["actual"]
    assert cp2["5.1.1"]["facts"] == ["kubectl get (admin.conf on this node)"]


def _apiserver(lab, node: str) -> dict:
    row = next(r for r in cluster.status(lab.dir)["nodes"] if r["name"] == node)
    return row["pods"].get("kube-apiserver") or {}


def _restart_apiserver_with(lab, node: str, text: str, flag: str) -> None:
    """Write the manifest (atomically, through a dot-file the kubelet ignores) and wait for the
    new ready API server pod whose argv carries `flag`."""
    before = _apiserver(lab, node).get("pid")
    lab.ssh(node, f"cat > /etc/kubernetes/manifests/.kas.tmp && chmod 600 "
                  f"/etc/kubernetes/manifests/.kas.tmp && mv /etc/kubernetes/manifests/.kas.tmp "
                  f"{APISERVER}", stdin=text)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pod = _apiserver(lab, node)
        if pod.get("pid") not in (None, before) and pod.get("ready") and flag in pod.get("argv", []):
            return
        time.sleep(0.3)
    raise AssertionError(f"{node}: no ready kube-apiserver with {flag}: {_apiserver(lab, node)}")


def test_a_control_plane_whose_api_server_allows_everything_fails_its_own_access_reviews(lab,
                                                                                         tmp_path):
    lab.wait_ready()
    original = lab.ssh("cp2", f"cat {APISERVER}").stdout
    assert "--authorization-mode=Node,RBAC" in original
    drifted = original.replace("--authorization-mode=Node,RBAC", "--authorization-mode=AlwaysAllow")
    _restart_apiserver_with(lab, "cp2", drifted, "--authorization-mode=AlwaysAllow")
    try:
        report, execs = execs_during(lab, lambda: check(lab, tmp_path))
    finally:
        _restart_apiserver_with(lab, "cp2", original, "--authorization-mode=Node,RBAC")
        lab.wait_ready()
    assert execs == {"cp1": 1, "cp2": 1, "w1": 1}          # still no second exec
    cp1, cp2 = results(report, "cp1"), results(report, "cp2")
    for item in CAN_I:
        # a manual item shows a FAIL as WARN; `computed` keeps the verdict when it differs
        assert (cp1[item]["computed"] or cp1[item]["status"]) == "PASS", json.dumps(cp1[item])
        assert cp2[item]["computed"] == "FAIL", json.dumps(cp2[item])
        assert "any authenticated user may" in cp2[item]["actual"]
    assert cp2["5.1.1"]["facts"][0].endswith(asked_on_cp1(lab))      # objects still shared
