"""harden SIGKILLed in every encryption and rotation phase: no secret is ever lost.

One 2-control-plane lab with seeded secrets goes through prepare, enable, stage, promote and
retire. In each test one phase is started and its whole process group is SIGKILLed at a real
point of that phase (the first control plane's file or manifest changed while the second's is
not yet, or a count of objects rewritten in etcd while others are not: the node-side rewrite is
paused there, see paused_mid_rewrite, so the cut does not depend on how long a rewrite of so
many secrets takes, and it ends with harden as a lost connection would end it); then the phase
is run again (taking over the dead run's lock with --break-lock) or the killed run is rolled
back and the phase run again. Right after the kill and after the recovery every secret must read back
through every API server with its original data, and plain etcdctl must show every stored
value under the provider:key the phase promises. Each test first brings the lab to the phase
before its own (when run alone or after a failure), so the tests also pass one by one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support.lab_cli import harden
from support.rotation import (ENC, LAB_VARS, NEW, OLD, PLAYBOOKS, ROTATE, etcd, key_order,
                              secret_data, stored_prefixes)

pytestmark = pytest.mark.lab

SECRETS = 40               # the kill point is made, not raced for: see paused_mid_rewrite
REWRITER = ["kubectl", "replace", "-f", "-"]     # the rewrite's writer (encryption_census)
APISERVER = "etc/kubernetes/manifests/kube-apiserver.yaml"
PHASES = ("prepare", "enable", "stage", "promote", "retire")
# what etcd holds for every secret once each phase is complete
STORED_AFTER = {"prepare": "plaintext", "enable": "secretbox:key1", "stage": "secretbox:key1",
                "promote": "secretbox:key2", "retire": "secretbox:key2"}


@dataclass
class KillLab:
    lab: object
    state: Path                                  # HARDEN_STATE_DIR of every run here
    old_key: Path
    new_key: Path
    original: dict[str, str] = field(default_factory=dict)   # secret -> data digest
    done: list[str] = field(default_factory=list)            # phases completed, in order
    paused: list[int] = field(default_factory=list)          # node process groups stopped

    def argv(self, phase: str, *extra: str) -> list[str]:
        """The harden command line of one phase, as docs/operations.md gives it."""
        if phase in ("prepare", "enable"):
            return ["apply", "-i", str(self.lab.inventory),
                    str(PLAYBOOKS / "encryption-at-rest.yml"), "-e", f"@{self.old_key}",
                    "-e", f"encryption_phase={phase}", *LAB_VARS, *extra]
        return ["apply", "-i", str(self.lab.inventory), ROTATE, "-e", f"@{self.new_key}",
                "-e", f"rotation_phase={phase}", *LAB_VARS, *extra]

    def run(self, phase: str, *extra: str) -> subprocess.CompletedProcess:
        done = harden(self.state, *self.argv(phase, *extra), timeout=600)
        assert done.returncode == 0, (phase, done.stdout[-3000:], done.stderr[-2000:])
        return done


@pytest.fixture(scope="module")
def kill_lab(lab_factory, tmp_path_factory):
    keys = tmp_path_factory.mktemp("kill-keys")
    old_key, new_key = keys / "key.yml", keys / "new-key.yml"
    old_key.write_text(f"encryption_key: {OLD}\n")
    new_key.write_text(f"new_encryption_key_name: key2\nnew_encryption_key: {NEW}\n")
    for path in (old_key, new_key):
        path.chmod(0o600)
    with lab_factory.running(control_planes=2, workers=0, wait_ready=True,
                             seed_secrets=SECRETS) as lab:
        ctx = KillLab(lab, tmp_path_factory.mktemp("kill-state"), old_key, new_key)
        deadline = time.monotonic() + 120
        while sum(name.split("/")[1].startswith("bulk-") for name in secret_data(lab)) < SECRETS:
            assert time.monotonic() < deadline, "the lab never seeded its secrets"
            time.sleep(0.5)
        ctx.original = secret_data(lab)
        yield ctx


def advance_to(ctx: KillLab, phase: str) -> None:
    """Run, in order, every phase before `phase` that is not complete yet."""
    for earlier in PHASES[:PHASES.index(phase)]:
        if earlier not in ctx.done:
            ctx.run(earlier)
            ctx.done.append(earlier)


def run_and_kill(ctx: KillLab, argv: list[str], reached, what: str) -> str:
    """Start harden, SIGKILL its process group as soon as `reached()` is true; the run id.
    The run must still be going at that point: a kill after its end proves nothing."""
    log = ctx.state / f"killed-{len(os.listdir(ctx.state))}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "harden.cli", *argv], stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "HARDEN_STATE_DIR": str(ctx.state), "COLUMNS": "200"},
            start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not reached():
                assert process.poll() is None, \
                    f"the run ended before {what}:\n{log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"never reached {what}"
                time.sleep(0.05)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            for group in ctx.paused:          # the node-side command of the killed exec
                os.killpg(group, signal.SIGKILL)
            ctx.paused.clear()
    runs = json.loads(harden(ctx.state, "runs", "--json").stdout)
    assert runs[0]["interrupted"], runs[0]
    return runs[0]["id"]


def file_has(ctx: KillLab, node: str, path: str, text: str) -> bool:
    target = ctx.lab.node_root(node) / path
    return target.exists() and text in target.read_text()


def keys_are(ctx: KillLab, node: str, order: list[str]) -> bool:
    return (ctx.lab.node_root(node) / ENC).exists() and key_order(ctx.lab)[node] == order


def under(ctx: KillLab, tag: str) -> int:
    return stored_prefixes(ctx.lab).get(tag, 0)


def node_processes(ctx: KillLab, node: str, argv: list[str]) -> list[int]:
    """Host pids of the processes of `node` (its own PID namespace) running exactly `argv`."""
    state = json.loads((ctx.lab.dir / "lab.json").read_text())
    supervisor = next(n["supervisor_pid"] for n in state["nodes"] if n["name"] == node)
    namespace = os.readlink(f"/proc/{supervisor}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.readlink(f"/proc/{entry}/ns/pid") == namespace and \
                    Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[:-1] == \
                    [a.encode() for a in argv]:
                found.append(int(entry))
        except OSError:
            continue
    return found


def paused_mid_rewrite(ctx: KillLab, tag: str, order: list[str]):
    """A `reached` for run_and_kill: true once the rewrite on cp1 is stopped (SIGSTOP, whole
    node-side command) with some but not all secrets under `tag`. The writer runs in short
    steps between two looks at etcd, so the cut lands inside the rewrite however fast it goes;
    run_and_kill then kills that node-side command with harden (a killed harden alone would
    leave it finishing the rewrite on the node, and no rewrite would be cut). Processes are
    looked for only once every control plane holds `order` (the rewrite comes after that)."""
    total = len(ctx.original)

    def reached() -> bool:
        if not all(keys_are(ctx, node, order) for node in ctx.lab.names("control-plane")):
            return False
        groups = {os.getpgid(pid) for pid in node_processes(ctx, "cp1", REWRITER)}
        for group in groups:
            os.killpg(group, signal.SIGSTOP)
        ctx.paused[:] = sorted(groups)
        done = under(ctx, tag) if groups else 0
        assert done < total, f"the rewrite under {tag} ended before it could be cut"
        if groups and done > 0:
            return True
        for group in groups:
            os.killpg(group, signal.SIGCONT)       # one more step (run_and_kill sleeps 0.05 s)
        ctx.paused.clear()
        return False
    return reached


def assert_no_secret_lost(ctx: KillLab, *tags: str) -> None:
    """Every API server healthy; every secret read back through each of them with its original
    data; etcd holds each one under one of `tags`."""
    ctx.lab.wait_ready(timeout=180)
    for node in ctx.lab.names("control-plane"):
        assert secret_data(ctx.lab, node) == ctx.original, f"secrets read through {node} differ"
    stored = stored_prefixes(ctx.lab)
    assert set(stored) <= set(tags) and sum(stored.values()) == len(ctx.original), stored


def assert_stored_under(ctx: KillLab, tag: str) -> None:
    assert stored_prefixes(ctx.lab) == {tag: len(ctx.original)}


@pytest.mark.timeout(900)
def test_prepare_killed_after_the_first_control_plane_then_run_again(kill_lab):
    ctx = kill_lab
    flag = "--encryption-provider-config"
    run_and_kill(ctx, ctx.argv("prepare"),
                              lambda: file_has(ctx, "cp1", APISERVER, flag),
                              "cp1's manifest naming the encryption config")
    assert not file_has(ctx, "cp2", APISERVER, flag)           # killed mid-phase
    assert_no_secret_lost(ctx, "plaintext")
    ctx.run("prepare", "--break-lock")
    ctx.done.append("prepare")
    assert key_order(ctx.lab) == {n: ["key1", "(reads only)"] for n in ("cp1", "cp2")}
    assert_no_secret_lost(ctx, "plaintext")


@pytest.mark.timeout(900)
def test_enable_killed_after_the_first_control_plane_then_rolled_back(kill_lab):
    ctx = kill_lab
    advance_to(ctx, "enable")
    killed = run_and_kill(ctx, ctx.argv("enable"), lambda: keys_are(ctx, "cp1", ["key1"]),
                          "key1 first on cp1")
    assert keys_are(ctx, "cp2", ["key1", "(reads only)"])
    assert_no_secret_lost(ctx, "plaintext", "secretbox:key1")
    rollback(ctx, killed)
    assert key_order(ctx.lab) == {n: ["key1", "(reads only)"] for n in ("cp1", "cp2")}
    assert_no_secret_lost(ctx, "plaintext", "secretbox:key1")


@pytest.mark.timeout(900)
def test_enable_killed_mid_rewrite_then_run_again(kill_lab):
    ctx = kill_lab
    advance_to(ctx, "enable")
    total = len(ctx.original)
    run_and_kill(ctx, ctx.argv("enable"), paused_mid_rewrite(ctx, "secretbox:key1", ["key1"]),
                 "part of the secrets rewritten under key1")
    assert 0 < under(ctx, "secretbox:key1") < total
    assert key_order(ctx.lab) == {n: ["key1"] for n in ("cp1", "cp2")}
    assert_no_secret_lost(ctx, "plaintext", "secretbox:key1")
    ctx.run("enable", "--break-lock")
    ctx.done.append("enable")
    assert_no_secret_lost(ctx, "secretbox:key1")
    assert_stored_under(ctx, "secretbox:key1")


@pytest.mark.timeout(900)
def test_stage_killed_after_the_first_control_plane_then_run_again(kill_lab):
    ctx = kill_lab
    advance_to(ctx, "stage")
    run_and_kill(ctx, ctx.argv("stage"), lambda: keys_are(ctx, "cp1", ["key1", "key2"]),
                 "key2 staged on cp1")
    assert keys_are(ctx, "cp2", ["key1"])
    assert_no_secret_lost(ctx, "secretbox:key1")
    ctx.run("stage", "--break-lock")
    ctx.done.append("stage")
    assert key_order(ctx.lab) == {n: ["key1", "key2"] for n in ("cp1", "cp2")}
    assert_no_secret_lost(ctx, "secretbox:key1")


@pytest.mark.timeout(900)
def test_promote_killed_after_the_first_control_plane_then_rolled_back(kill_lab):
    ctx = kill_lab
    advance_to(ctx, "promote")
    killed = run_and_kill(ctx, ctx.argv("promote"),
                          lambda: keys_are(ctx, "cp1", ["key2", "key1"]), "key2 first on cp1")
    assert keys_are(ctx, "cp2", ["key1", "key2"])
    assert_no_secret_lost(ctx, "secretbox:key1", "secretbox:key2")
    rollback(ctx, killed)
    assert key_order(ctx.lab) == {n: ["key1", "key2"] for n in ("cp1", "cp2")}
    assert_no_secret_lost(ctx, "secretbox:key1", "secretbox:key2")


@pytest.mark.timeout(900)
def test_promote_killed_mid_rewrite_then_the_rewrite_phase_finishes_it(kill_lab):
    ctx = kill_lab
    advance_to(ctx, "promote")
    total = len(ctx.original)
    run_and_kill(ctx, ctx.argv("promote"),
                 paused_mid_rewrite(ctx, "secretbox:key2", ["key2", "key1"]),
                 "part of the secrets rewritten under key2")
    assert 0 < under(ctx, "secretbox:key2") < total
    assert key_order(ctx.lab) == {n: ["key2", "key1"] for n in ("cp1", "cp2")}
    assert_no_secret_lost(ctx, "secretbox:key1", "secretbox:key2")
    refused = harden(ctx.state, *ctx.argv("retire", "--break-lock"), timeout=600)
    assert refused.returncode == 4 and "under keys other than key2" in refused.stdout, \
        refused.stdout[-3000:]
    ctx.run("rewrite", "--break-lock")
    ctx.done.append("promote")
    assert_no_secret_lost(ctx, "secretbox:key2")
    assert_stored_under(ctx, "secretbox:key2")


@pytest.mark.timeout(900)
def test_retire_killed_after_the_first_control_plane_then_rolled_back_and_run_again(kill_lab):
    ctx = kill_lab
    advance_to(ctx, "retire")
    killed = run_and_kill(ctx, ctx.argv("retire"), lambda: keys_are(ctx, "cp1", ["key2"]),
                          "key1 removed on cp1")
    assert keys_are(ctx, "cp2", ["key2", "key1"])
    assert_no_secret_lost(ctx, "secretbox:key2")
    rollback(ctx, killed)
    assert key_order(ctx.lab) == {n: ["key2", "key1"] for n in ("cp1", "cp2")}
    assert_no_secret_lost(ctx, "secretbox:key2")
    retired = ctx.run("retire", "-e", "harden_etcd_snapshot=true", "--format", "json")
    ctx.done.append("retire")
    assert key_order(ctx.lab) == {n: ["key2"] for n in ("cp1", "cp2")}
    assert_no_secret_lost(ctx, "secretbox:key2")
    assert_stored_under(ctx, "secretbox:key2")
    assert_snapshot_taken(ctx, json.loads(retired.stdout)["run_id"], retired.stdout)


def assert_snapshot_taken(ctx: KillLab, run_id: str, output: str) -> None:
    """Issue 12 item 7: before the old keys went, etcd was saved on the first control plane
    (0600, path on the task line), and the file is a snapshot etcdctl reads back."""
    path = f"/var/lib/harden/etcd-snapshots/etcd-{run_id}.db"
    assert f"etcd snapshot: {path} (" in output, output[-3000:]
    local = ctx.lab.node_root("cp1") / path.lstrip("/")
    assert local.stat().st_mode & 0o777 == 0o600 and local.stat().st_uid == 0
    status = subprocess.run(["etcdctl", "snapshot", "status", str(local), "-w", "json"],
                            capture_output=True, text=True, env={"ETCDCTL_API": "3",
                                                                  "PATH": "/usr/bin:/bin"})
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["totalKey"] >= len(ctx.original)
    assert not (ctx.lab.node_root("cp2") / path.lstrip("/")).exists()


def rollback(ctx: KillLab, run_id: str) -> None:
    """`harden rollback` of the killed run: takes its lock over, puts each node back."""
    undone = harden(ctx.state, "rollback", "-i", str(ctx.lab.inventory), run_id, timeout=600)
    assert undone.returncode == 0, undone.stdout[-3000:] + undone.stderr[-2000:]
    assert "took over the lock" in undone.stdout + undone.stderr
