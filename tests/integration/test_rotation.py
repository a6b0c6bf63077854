"""Key rotation on a 2-control-plane lab: the shipped playbook, phase by phase.

What is proved on real nodes: each phase leaves the same key order on every control plane and
every API server running a NEW process (the emulator validates the EncryptionConfiguration at
start, so a healthy new process has loaded the new file); a phase run out of order, or on part
of the control planes, writes nothing anywhere; `harden rollback` of the last phase puts the
previous phase back with healthy API servers; no key ever appears in output or the journal.

Two control planes, not three: every phase restarts the API servers one at a time and judges
each node on its own, so a third only adds restarts (a third more of the test's time). What
needs more than one node still has it: a phase run on part of the control planes, a node
whose file diverges from the other's, a rollback limited to the nodes after the first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import pytest

nacl_bindings = pytest.importorskip("nacl.bindings")

from support.lab_cli import harden
from support.rotation import (ENC, LAB_VARS, NEW, OLD, OTHER, PLAYBOOKS, etcd, key_order, kubectl,
                              rotate, secret_data, stored_prefixes)

pytestmark = pytest.mark.lab

APISERVER = "etc/kubernetes/manifests/kube-apiserver.yaml"
SEEDED = 30


@pytest.fixture(scope="module")
def rotation_lab(lab_factory):
    with lab_factory.running(control_planes=2, workers=0, wait_ready=True,
                             seed_secrets=SEEDED) as lab:
        yield lab


def fingerprint(lab) -> dict[str, str]:
    """Every byte a rotation may touch, per node."""
    return {node: hashlib.sha256((lab.node_root(node) / ENC).read_bytes() +
                                 (lab.node_root(node) / APISERVER).read_bytes()).hexdigest()
            for node in lab.nodes}


def apiserver_pids(lab) -> dict[str, int]:
    report = lab.wait_ready(timeout=60)
    return {row["name"]: row["pods"]["kube-apiserver"]["pid"] for row in report["nodes"]}


def assert_phase_done(lab, done, pids_before, order):
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert key_order(lab) == {node: order for node in lab.nodes}
    pids = apiserver_pids(lab)
    assert all(pids[n] != pids_before[n] for n in lab.nodes), (pids_before, pids)
    return pids


@pytest.mark.timeout(600)
def test_rotation_phases_in_order_and_refusals_write_nothing(rotation_lab, tmp_path):
    lab = rotation_lab
    key_file = tmp_path / "new-key.yml"
    key_file.write_text(f"new_encryption_key_name: key2\nnew_encryption_key: {NEW}\n")
    key_file.chmod(0o600)
    old_key_file = tmp_path / "key.yml"
    old_key_file.write_text(f"encryption_key: {OLD}\n")
    old_key_file.chmod(0o600)

    def encryption(*extra: str):
        return harden(tmp_path, "apply", "-i", str(lab.inventory),
                      str(PLAYBOOKS / "encryption-at-rest.yml"), "-e", f"@{old_key_file}",
                      *LAB_VARS, *extra)

    pids = apiserver_pids(lab)
    prepared = encryption()
    pids = assert_phase_done(lab, prepared, pids, ["key1", "(reads only)"])
    outputs = [prepared.stdout + prepared.stderr]
    refused = rotate(lab, tmp_path, key_file, "stage")            # nothing encrypts yet
    assert refused.returncode == 4 and "phase enable" in refused.stdout, refused.stdout[-2000:]
    enabled = encryption("-e", "encryption_phase=enable")
    outputs.append(enabled.stdout + enabled.stderr)
    pids = assert_phase_done(lab, enabled, pids, ["key1"])
    made = kubectl(lab, "create", "secret", "generic", "under-key1", "--from-literal=k=v")
    assert made.returncode == 0, made.stderr
    data = secret_data(lab)
    # enable ends with the rewrite: what was stored in plaintext is now under key1 too
    assert len(data) >= SEEDED + 1 and stored_prefixes(lab) == {"secretbox:key1": len(data)}

    # Out of order and partial phases: refused in the preflight, nothing written anywhere.
    untouched = fingerprint(lab)
    first_cp = sorted(lab.nodes)[0]
    for phase, extra, why in (
            ("promote", (), "stage it on every control plane first"),
            ("retire", ("-e", "objects_rewritten=true"), "not the first key"),
            ("stage", ("-l", first_cp), "without --limit")):
        refused = rotate(lab, tmp_path, key_file, phase, *extra)
        outputs.append(refused.stdout + refused.stderr)
        assert refused.returncode == 4, (phase, refused.stdout[-2000:])
        assert why in refused.stdout + refused.stderr, (phase, refused.stdout[-2000:])
        assert fingerprint(lab) == untouched, phase

    # One control plane holding another old key: the phase would leave different files.
    odd = sorted(lab.nodes)[1]
    odd_path = lab.node_root(odd) / ENC
    original = odd_path.read_bytes()
    odd_path.write_bytes(original.replace(OLD.encode(), OTHER.encode()))
    diverged = fingerprint(lab)
    refused = rotate(lab, tmp_path, key_file, "stage")
    outputs.append(refused.stdout + refused.stderr)
    assert refused.returncode == 4 and "hold different encryption configs" in refused.stdout
    assert "[['key1', 'key2']]" in refused.stdout                   # key names, never keys
    assert fingerprint(lab) == diverged
    odd_path.write_bytes(original)

    staged = rotate(lab, tmp_path, key_file, "stage")
    outputs.append(staged.stdout + staged.stderr)
    pids = assert_phase_done(lab, staged, pids, ["key1", "key2"])
    staged_bytes = fingerprint(lab)
    again = rotate(lab, tmp_path, key_file, "stage", "--format", "json")
    assert again.returncode == 0, again.stdout[-2000:]
    assert {h: c["changed"] for h, c in json.loads(again.stdout)["hosts"].items()} == \
        {h: 0 for h in lab.nodes}
    assert fingerprint(lab) == staged_bytes != untouched

    # A file edited after its API server started (as a phase cut off before the restart
    # leaves it): the next phase is refused until that server runs the file as it is.
    content = odd_path.read_bytes()
    odd_path.write_bytes(content + b"# edited by hand\n")
    stale = fingerprint(lab)
    refused = rotate(lab, tmp_path, key_file, "promote")
    assert refused.returncode == 4 and "does not run with" in refused.stdout, refused.stdout
    assert fingerprint(lab) == stale
    odd_path.write_bytes(content)

    promoted = rotate(lab, tmp_path, key_file, "promote", "--format", "json")
    outputs.append(promoted.stdout + promoted.stderr)
    pids = assert_phase_done(lab, promoted, pids, ["key2", "key1"])
    promote_run = json.loads(promoted.stdout)["run_id"]

    # promote ends with the rewrite: every secret is under key2, each reads back unchanged
    first = sorted(lab.nodes)[0]
    assert stored_prefixes(lab) == {"secretbox:key2": len(data)}, stored_prefixes(lab)
    assert secret_data(lab) == data

    # The last phase undone on the other control planes only (they write with key1 again):
    # back on the staged file, healthy; the first one is untouched.
    others = sorted(lab.nodes)[1:]
    undone = harden(tmp_path, "rollback", "-i", str(lab.inventory), promote_run,
                    "-l", ",".join(others))
    outputs.append(undone.stdout + undone.stderr)
    assert undone.returncode == 0, undone.stdout[-2000:] + undone.stderr
    assert key_order(lab) == {node: ["key1", "key2"] if node in others else ["key2", "key1"]
                              for node in lab.nodes}
    pids = apiserver_pids(lab)
    promoted = rotate(lab, tmp_path, key_file, "promote")
    assert promoted.returncode == 0, promoted.stdout[-2000:]
    assert key_order(lab) == {node: ["key2", "key1"] for node in lab.nodes}
    new_pids = apiserver_pids(lab)
    assert all(new_pids[n] != pids[n] for n in others) and new_pids[first] == pids[first]
    pids = new_pids

    # Turning encryption "on" again after the rotation leaves the key order alone.
    again = encryption("-e", "encryption_phase=enable")
    assert again.returncode == 0, again.stdout[-2000:]
    assert key_order(lab) == {node: ["key2", "key1"] for node in lab.nodes}

    # An object still under key1 (written as an API server holding key1 first would): retire
    # is refused, naming the count, and writes nothing.
    nonce = os.urandom(24)
    planted_value = b"k8s:enc:secretbox:v1:key1:" + nonce + nacl_bindings.crypto_secretbox(
        json.dumps({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": "planted", "namespace": "default", "uid": "u-1",
                                 "creationTimestamp": "2026-01-01T00:00:00Z"},
                    "data": {"k": base64.b64encode(b"old key").decode()}}).encode(),
        nonce, base64.b64decode(OLD))
    assert etcd(lab, "put", "/registry/secrets/default/planted", stdin=planted_value).returncode == 0
    data["default/planted"] = secret_data(lab)["default/planted"]
    before_rewrite = fingerprint(lab)
    refused = rotate(lab, tmp_path, key_file, "retire")
    outputs.append(refused.stdout + refused.stderr)
    assert refused.returncode == 4 and "holds 1 object(s) under keys other than key2" in \
        refused.stdout, refused.stdout[-2000:]
    assert fingerprint(lab) == before_rewrite

    started = time.monotonic()
    rewrite = rotate(lab, tmp_path, key_file, "rewrite")
    outputs.append(rewrite.stdout + rewrite.stderr)
    assert rewrite.returncode == 0, rewrite.stdout[-2000:]
    print(f"rewrite of {len(data)} secrets took {time.monotonic() - started:.1f}s")
    assert fingerprint(lab) == before_rewrite
    assert stored_prefixes(lab) == {"secretbox:key2": len(data)}

    retired = rotate(lab, tmp_path, key_file, "retire")
    outputs.append(retired.stdout + retired.stderr)
    assert_phase_done(lab, retired, pids, ["key2"])
    assert secret_data(lab) == data
    # Re-running encryption-at-rest (as a drift run would) must not undo the rotation...
    rerun = encryption()
    assert rerun.returncode == 0, rerun.stdout[-2000:]
    assert key_order(lab) == {node: ["key2"] for node in lab.nodes}
    # ...nor give a control plane that lost its file a fresh config with the retired key.
    lost = lab.node_root(odd) / ENC
    kept = lost.read_bytes()
    lost.unlink()
    refused = encryption()
    outputs.append(refused.stdout + refused.stderr)
    assert refused.returncode == 4 and "would hold different encryption configs" in \
        refused.stdout, refused.stdout[-2000:]
    assert f"{odd}: would create one from the key given" in refused.stdout
    assert not lost.exists()
    lost.write_bytes(kept)

    journal = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()
                       and p not in (key_file, old_key_file))
    for secret in (OLD, NEW, OTHER):
        assert all(secret not in text for text in outputs)
        assert secret.encode() not in journal
