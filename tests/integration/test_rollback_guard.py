"""`harden rollback` of encryption-key phases on a 2-control-plane lab: undoing `promote` is
safe, undoing `stage` (or the run that created the encryption config) afterwards is refused as it
would drop a key the API servers have written with, and a conflict diff of the encryption
config never shows a key, even for a retire run given no key at all. Every node is judged on its
own, so two nodes prove what three did (a third cost a third more restarts in every phase)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from support.lab_cli import harden
from support.rotation import ENC, LAB_VARS, NEW, OLD, PLAYBOOKS, key_order, rotate

pytestmark = pytest.mark.lab


def key_file(tmp_path: Path, name: str, content: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content))
    path.chmod(0o600)
    return path


def run_id(done) -> str:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    return json.loads(done.stdout)["run_id"]


@pytest.mark.timeout(600)          # 234-284 s on a loaded 2-core machine
def test_rollback_never_drops_a_key_and_never_shows_one(lab_factory, tmp_path):
    enable_vars = key_file(tmp_path, "enable.yml", {"encryption_key": OLD})
    new_key = key_file(tmp_path, "new-key.yml", {"new_encryption_key_name": "key2",
                                                 "new_encryption_key": NEW})
    name_only = key_file(tmp_path, "name-only.yml", {"new_encryption_key_name": "key2"})
    outputs = []

    def rollback(run: str):
        done = harden(tmp_path, "rollback", "-i", str(lab.inventory), run)
        outputs.append(done.stdout + done.stderr)
        return done

    with lab_factory.running(control_planes=2, workers=0, wait_ready=True) as lab:
        enable_runs = []
        for phase in ("prepare", "enable"):
            done = harden(tmp_path, "apply", "-i", str(lab.inventory),
                          str(PLAYBOOKS / "encryption-at-rest.yml"), "-e", f"@{enable_vars}",
                          "-e", f"encryption_phase={phase}", "--format", "json", *LAB_VARS)
            outputs.append(done.stdout + done.stderr)
            enable_runs.append(run_id(done))
        prepare_run = enable_runs[0]
        staged = rotate(lab, tmp_path, new_key, "stage", "--format", "json")
        outputs.append(staged.stdout + staged.stderr)
        stage_run = run_id(staged)
        promoted = rotate(lab, tmp_path, new_key, "promote", "--format", "json")
        outputs.append(promoted.stdout + promoted.stderr)
        promote_run = run_id(promoted)

        # Undoing promote only reorders keys: allowed, every node back on the staged file.
        undone = rollback(promote_run)
        assert undone.returncode == 0, undone.stdout[-3000:] + undone.stderr
        assert key_order(lab) == {node: ["key1", "key2"] for node in lab.nodes}

        # Nothing changed since stage, yet undoing it would drop key2 (and undoing the run
        # that created the config, key1): refused everywhere.
        for run, key in ((stage_run, "key2"), (prepare_run, "key1")):
            refused = rollback(run)
            assert refused.returncode == 4, refused.stdout[-3000:]
            assert refused.stdout.count("refused") == len(lab.nodes), refused.stdout
            assert f"secretbox key '{key}'" in refused.stdout
            assert "rotate-encryption-key.yml" in refused.stdout
            assert key_order(lab) == {node: ["key1", "key2"] for node in lab.nodes}

        # Retire without the key (it is not needed), then an edit on every node: the
        # conflict diff of the config is a marker only.
        outputs.append(rotate(lab, tmp_path, new_key, "promote").stdout)
        retired = rotate(lab, tmp_path, name_only, "retire", "-e", "objects_rewritten=true",
                         "--format", "json")
        outputs.append(retired.stdout + retired.stderr)
        retire_run = run_id(retired)
        assert key_order(lab) == {node: ["key2"] for node in lab.nodes}
        for node in lab.nodes:
            record = json.loads((lab.node_root(node) / "var/lib/harden/journal" /
                                 f"{retire_run}.json").read_text())
            assert "/" + ENC in record["secret_paths"]
            with (lab.node_root(node) / ENC).open("a") as config:
                config.write("# edited by hand\n")
        conflict = rollback(retire_run)
        assert conflict.returncode == 4 and "changed since the run" in conflict.stdout
        assert "redacted" in conflict.stdout
        assert key_order(lab) == {node: ["key2"] for node in lab.nodes}

    for secret in (OLD, NEW):
        assert all(secret not in text for text in outputs)
