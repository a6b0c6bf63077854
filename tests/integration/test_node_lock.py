"""One writer per node, on a real lab node: a second `apply`, a `rollback` or a `prune` started
while an apply holds cp1 is refused with the holder named and writes nothing; a killed apply
keeps its lock until `harden rollback` of that very run ends it."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.lab_cli import APISERVER, harden
from support.rotation import NEW, OLD, PLAYBOOKS, ROTATE, key_order, rotate

pytestmark = pytest.mark.lab

# Persisting to kubeadm-config would write (and back up) before the manifest: these tests
# watch the manifest write, so they keep to node files.
LAB_VARS = ("-e", "harden_wait_interval=0.5", "-e", "harden_kubeadm_persist=false")


HOLD_LIMIT = 600                   # tenths of a second a hold waits for its release at most


def release_file(playbook: Path) -> Path:
    """The file whose creation ends the hold of `playbook` (/tmp is the machine's on a node)."""
    return playbook.with_suffix(".release")


def release(playbook: Path) -> None:
    release_file(playbook).touch()


def flag_play(flag: str, value: str, released_by: Path) -> str:
    """Sets one kube-apiserver flag, then holds the run (also under --check, where the hold
    reports ok) until the test creates `released_by`: so a second command is sure to find cp1
    locked, and no run waits out a fixed sleep. A hold never released ends after a minute."""
    return f"""
- hosts: control_plane
  become: true
  tasks:
    - name: set --{flag}
      static_pod:
        manifest: {APISERVER}
        set: {{{flag}: "{value}"}}
    - name: hold
      shell: {{cmd: "i=0; while [ ! -e {released_by} ] && [ $i -lt {HOLD_LIMIT} ]; \
        do sleep 0.1; i=$((i+1)); done"}}
      check_mode: false
      changed_when: false
"""


def pods_healthy(lab, timeout: float = 90) -> bool:
    """Every static pod of cp1 running and ready, as the lab kubelet records it (a file read:
    no SSH round trip that a loaded machine could time out)."""
    state_file = lab.node_root("cp1") / "var/lib/kubelet/harden-lab-pods.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pods = json.loads(state_file.read_text())["pods"]
        except (OSError, ValueError):
            pods = {}
        if pods and all(p["state"] == "running" and p["ready"] for p in pods.values()):
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="module")
def lab(lab_factory):
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True) as lab:
        yield lab


HOURS = itertools.count(3)


@pytest.fixture
def fresh(tmp_path):
    """A playbook that changes cp1's kube-apiserver manifest whatever ran before (a new
    --event-ttl each time), or sets --profiling (`fresh("profiling")`)."""
    def make(kind: str = "ttl") -> Path:
        flag, value = ("profiling", "false") if kind == "profiling" else \
            ("event-ttl", f"{next(HOURS)}h0m0s")
        path = tmp_path / f"{flag}-{value}.yml"
        path.write_text(flag_play(flag, value, release_file(path)))
        return path
    return make


def lock_of(lab) -> Path:
    return lab.node_root("cp1") / "var/lib/harden/lock"


def digest(lab) -> str:
    return hashlib.sha256((lab.node_root("cp1") / APISERVER.lstrip("/")).read_bytes()).hexdigest()


def backups(lab) -> set[str]:
    root = lab.node_root("cp1") / "var/lib/harden/backups"
    return set(os.listdir(root)) if root.exists() else set()


def start_apply(lab, state_dir: Path, playbook: Path, *extra: str) -> subprocess.Popen:
    """An apply in the background, returned once it holds cp1's lock and wrote its change
    (a flag_play then holds the node until `release(playbook)`)."""
    existing = backups(lab)
    process = subprocess.Popen(
        [sys.executable, "-m", "harden.cli", "apply", "-i", str(lab.inventory), str(playbook),
         "--format", "json", *LAB_VARS, *extra], env={**os.environ, "HARDEN_STATE_DIR": str(state_dir)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        new = backups(lab) - existing
        if new and os.path.islink(lock_of(lab)) and \
                (lab.node_root("cp1") / "var/lib/harden/backups" / new.pop() / "after-partial"
                 ).exists():
            return process
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the background apply never wrote: " + process.communicate()[1])


def holder_run(lab) -> str:
    return os.readlink(lock_of(lab)).split(" ")[1]


def finish(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=280)
    assert process.returncode == 0, stdout[-3000:] + stderr
    return json.loads(stdout)


def test_a_second_writer_a_rollback_and_a_prune_are_refused_while_an_apply_holds_the_node(
        lab, fresh, tmp_path):
    """Two held applies: while the first (its own playbook) holds cp1, an apply of another
    playbook is refused; while the second holds it, an apply of the same playbook, a rollback of
    the first run and a prune are. Each refusal names the holder and writes nothing."""
    same = fresh()
    earlier = None
    for first, second in ((fresh(), fresh("profiling")), (same, same)):
        held = backups(lab)
        first_run = start_apply(lab, tmp_path, first)
        holder = holder_run(lab)
        during = digest(lab)
        refused = harden(tmp_path, "apply", "-i", str(lab.inventory), str(second), *LAB_VARS)
        assert refused.returncode == 4, refused.stdout + refused.stderr
        assert f"locked by run {holder} (apply)" in refused.stdout + refused.stderr
        assert "nothing was changed on any host" in refused.stdout + refused.stderr
        if earlier is not None:              # a finished run to undo, and backups to drop
            rollback = harden(tmp_path, "rollback", "-i", str(lab.inventory), earlier)
            assert rollback.returncode == 4 and "locked" in rollback.stdout
            assert f"locked by run {holder} (apply)" in rollback.stdout
            prune = harden(tmp_path, "prune", "-i", str(lab.inventory), "--keep", "1")
            assert prune.returncode == 4 and f"locked by run {holder} (apply)" in prune.stdout
        assert digest(lab) == during                   # the refused runs wrote nothing
        assert held <= backups(lab)                    # nothing restored or pruned
        release(first)
        assert finish(first_run)["run_id"] == holder
        assert not os.path.lexists(lock_of(lab))
        check = harden(tmp_path, "apply", "-i", str(lab.inventory), str(first), "--check",
                       *LAB_VARS)
        assert check.returncode == 0, check.stdout + check.stderr      # nothing pending
        earlier = holder
    assert harden(tmp_path, "prune", "-i", str(lab.inventory), "--keep", "1").returncode == 0
    assert pods_healthy(lab)


def test_a_killed_apply_keeps_the_node_locked_until_its_rollback(lab, fresh, tmp_path):
    before = (lab.node_root("cp1") / APISERVER.lstrip("/")).read_bytes()
    playbook = fresh()
    process = start_apply(lab, tmp_path, playbook)                # in its health wait
    killed = holder_run(lab)
    process.send_signal(signal.SIGKILL)
    process.wait()
    release(playbook)                        # the hold left on the node ends
    assert os.path.islink(lock_of(lab))
    refused = harden(tmp_path, "apply", "-i", str(lab.inventory), str(fresh()), *LAB_VARS)
    assert refused.returncode == 4
    assert f"locked by run {killed} (apply)" in refused.stdout + refused.stderr
    assert "is recorded as interrupted" in refused.stdout + refused.stderr
    assert f"harden rollback {killed}" in refused.stdout + refused.stderr
    rolled = harden(tmp_path, "rollback", "-i", str(lab.inventory), killed)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert "took over the lock of run " + killed in rolled.stdout
    assert (lab.node_root("cp1") / APISERVER.lstrip("/")).read_bytes() == before
    assert not os.path.lexists(lock_of(lab)) and pods_healthy(lab)


CREATED = "/etc/kubernetes/harden-test-created-by-run"   # copy makes no directory


def file_and_flag_play() -> str:
    """Creates a file (removed last by a rollback, after the health wait) and changes a flag."""
    return f"""
- hosts: control_plane
  become: true
  tasks:
    - name: a file of the run
      copy: {{dest: {CREATED}, content: "created\\n"}}
    - name: set --event-ttl
      static_pod:
        manifest: {APISERVER}
        set: {{event-ttl: "{next(HOURS)}h0m0s"}}
"""


def manifest(lab) -> bytes:
    return (lab.node_root("cp1") / APISERVER.lstrip("/")).read_bytes()


def test_a_rollback_killed_mid_restore_finishes_when_run_again(lab, tmp_path):
    before = manifest(lab)
    playbook = tmp_path / "file-and-flag.yml"
    playbook.write_text(file_and_flag_play())
    done = harden(tmp_path, "apply", "-i", str(lab.inventory), str(playbook), "--format",
                  "json", *LAB_VARS)
    assert done.returncode == 0, done.stdout + done.stderr
    run = json.loads(done.stdout)["run_id"]
    created = lab.node_root("cp1") / CREATED.lstrip("/")
    assert manifest(lab) != before and created.exists()
    process = subprocess.Popen([sys.executable, "-m", "harden.cli", "rollback", "-i",
                                str(lab.inventory), run],
                               env={**os.environ, "HARDEN_STATE_DIR": str(tmp_path)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and manifest(lab) != before:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)            # manifest restored, in the health wait
    process.wait()
    assert manifest(lab) == before and created.exists(), "not killed mid-restore"
    listing = json.loads(harden(tmp_path, "runs", "--json").stdout)
    assert listing[0]["playbook"] == f"rollback {run}" and listing[0]["interrupted"]

    resumed = harden(tmp_path, "rollback", "-i", str(lab.inventory), run)      # no --force
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "rolled_back" in resumed.stdout and "took over the lock" in resumed.stdout
    assert manifest(lab) == before and not created.exists()
    assert not os.path.lexists(lock_of(lab)) and pods_healthy(lab)


def test_resolve_closes_a_killed_run_without_touching_the_node(lab, fresh, tmp_path):
    playbook = fresh()
    process = start_apply(lab, tmp_path, playbook)
    killed = holder_run(lab)
    process.send_signal(signal.SIGKILL)
    process.wait()
    release(playbook)                        # the hold left on the node ends
    left = manifest(lab)
    resolved = harden(tmp_path, "runs", "--resolve", killed)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    row = next(r for r in json.loads(harden(tmp_path, "runs", "--json").stdout)
               if r["id"] == killed)
    assert row["resolved"] and not row["interrupted"]
    assert "resolved" in harden(tmp_path, "runs").stdout
    assert manifest(lab) == left and killed in backups(lab)        # the node as it was
    after = fresh()
    release(after)                           # the run that takes the lock over holds nothing
    refused = harden(tmp_path, "apply", "-i", str(lab.inventory), str(after), *LAB_VARS)
    assert refused.returncode == 4 and "was resolved" in refused.stdout + refused.stderr
    taken = harden(tmp_path, "apply", "-i", str(lab.inventory), str(after), "--break-lock",
                   *LAB_VARS)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    assert f"took over the lock of run {killed}" in taken.stdout + taken.stderr
    assert f"run {killed} did not finish" not in taken.stdout + taken.stderr
    pruned = harden(tmp_path, "prune", "-i", str(lab.inventory), "--keep", "1")
    assert pruned.returncode == 0 and killed not in backups(lab)
    assert "interrupted and resolved" in pruned.stdout
    assert harden(tmp_path, "runs", "--resolve", killed).returncode == 1        # once only


def test_the_key_in_use_is_never_dropped_after_a_killed_stage(lab, tmp_path):
    """Issue 8, point 2: stage killed, stage re-run, promote, retire, then every command the
    output suggests, with --force too: key2, which the API server writes with, stays."""
    old_key = tmp_path / "key.yml"
    old_key.write_text(f"encryption_key: {OLD}\n")
    new_key = tmp_path / "new-key.yml"
    new_key.write_text(f"new_encryption_key_name: key2\nnew_encryption_key: {NEW}\n")
    for path in (old_key, new_key):
        path.chmod(0o600)
    for phase in ("prepare", "enable"):
        done = harden(tmp_path, "apply", "-i", str(lab.inventory),
                      str(PLAYBOOKS / "encryption-at-rest.yml"), "-e", f"@{old_key}",
                      "-e", f"encryption_phase={phase}", *LAB_VARS)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    staging = start_apply(lab, tmp_path, Path(ROTATE), "-e", f"@{new_key}",
                          "-e", "rotation_phase=stage")
    killed = holder_run(lab)
    staging.send_signal(signal.SIGKILL)
    staging.wait()
    outputs = []
    for phase, extra in (("stage", ("--break-lock",)), ("promote", ()),
                         ("retire", ("-e", "objects_rewritten=true"))):
        done = rotate(lab, tmp_path, new_key, phase, *extra)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, (phase, done.stdout[-3000:] + done.stderr)
    assert key_order(lab) == {"cp1": ["key2"]}
    assert f"harden rollback {killed}" in outputs[-1]                 # what it suggests
    for extra in ((), ("--force",), ("--force", "--break-lock")):
        refused = harden(tmp_path, "rollback", "-i", str(lab.inventory), killed, *extra)
        assert refused.returncode == 4, (extra, refused.stdout + refused.stderr)
        assert "secretbox key 'key2'" in refused.stdout and "--force does not" in refused.stdout
        assert key_order(lab) == {"cp1": ["key2"]}, extra
    assert harden(tmp_path, "runs", "--resolve", killed).returncode == 0
    assert key_order(lab) == {"cp1": ["key2"]} and pods_healthy(lab)
    assert all(OLD not in text and NEW not in text for text in outputs)


def test_bad_input_and_an_unreachable_later_host_change_nothing(lab, fresh, tmp_path):
    """Issue 8, point 6: a bad run variable is exit 1 before any host is contacted; a host of
    a later serial batch that cannot be reached stops the run before cp1 is touched."""
    before, held = manifest(lab), backups(lab)
    bad = harden(tmp_path, "apply", "-i", str(lab.inventory), str(fresh()),
                 "-e", "harden_wait_interval=abc")
    assert bad.returncode == 1 and "-e harden_wait_interval: 'abc'" in bad.stderr, bad.stderr
    inventory = tmp_path / "with-ghost.ini"          # ghost: after cp1, nothing listens
    inventory.write_text("".join(
        line + ("ghost ansible_host=127.0.0.1 ansible_port=9\n" if line.startswith("cp1 ")
                else "") for line in lab.inventory.read_text().splitlines(keepends=True)))
    serial = tmp_path / "serial.yml"
    serial.write_text(fresh().read_text().replace("  become: true\n",
                                                  "  become: true\n  serial: 1\n"))
    stopped = harden(tmp_path, "apply", "-i", str(inventory), str(serial), "--timeout", "2",
                     *LAB_VARS)
    assert stopped.returncode == 4, stopped.stdout + stopped.stderr
    assert "preflight failed on ghost" in stopped.stdout + stopped.stderr
    assert manifest(lab) == before and backups(lab) == held
    assert not os.path.lexists(lock_of(lab))
