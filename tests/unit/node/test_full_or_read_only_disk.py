"""A full or read-only disk while writing or restoring (issue 8, point 7): no `.harden-tmp` /
`.harden-restore` left behind, no partial backup passing for one, the message names the mount
("no space left on <mount>"), and a restore leaves files the run never changed alone.

Each script runs in a private mount namespace (`unshare -m`) where a small tmpfs or a read-only
bind mount stands in for the node's disk; nothing is mounted outside it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harden.apply.modules.base import apply_script, plan_write
from harden.apply.rollback import restore_script
from harden.runs.journal import parse_index

RUN_ID = "20261205T180000Z-abc123"

pytestmark = [pytest.mark.lab,         # like the lab: root and namespaces, so CI must run it
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                 reason="needs root and unshare for a private tmpfs")]


def in_namespace(setup: str, script: str) -> subprocess.CompletedProcess:
    """Run `script` (on stdin, as `sh -s`) after `setup` in a new mount namespace."""
    wrapper = f"mount --make-rprivate / && {setup} && sh -s"
    return subprocess.run(["unshare", "-m", "sh", "-c", wrapper], input=script,
                          capture_output=True, text=True, timeout=60)


def fill(directory: Path) -> str:
    """Shell that fills the filesystem of `directory` to the last byte."""
    return f"(dd if=/dev/zero of={directory}/.filler bs=4k 2>/dev/null || true)"


def write_change(target: Path, size: int = 64 * 1024):
    return plan_write(str(target), b"n" * size, None, "0600", None, None, secret=False)


def test_write_on_a_full_disk_ends_with_the_full_mount_named(tmp_path):
    etc, backups = tmp_path / "etc", tmp_path / "backups"
    etc.mkdir()
    (etc / "kept.yaml").write_text("original\n")
    script = apply_script(write_change(etc / "new.yaml"), RUN_ID, str(backups))
    done = in_namespace(f"mount -t tmpfs -o size=256k tmpfs {etc} && "
                        f"echo original > {etc}/kept.yaml && {fill(etc)}", script)
    assert done.returncode != 0
    assert done.stderr.rstrip().endswith(f"no space left on {etc}")     # last: what is shown


def test_no_temp_file_survives_a_full_disk(tmp_path):
    etc, backups = tmp_path / "etc", tmp_path / "backups"
    etc.mkdir()
    script = apply_script(write_change(etc / "new.yaml"), RUN_ID, str(backups))
    probe = f"\necho; echo LISTING; ls -A {etc}\n"
    done = in_namespace(f"mount -t tmpfs -o size=256k tmpfs {etc} && {fill(etc)}",
                        "sh -s <<'HARDEN_SCRIPT' || true\n" + script + "HARDEN_SCRIPT\n" + probe)
    listing = done.stdout.split("LISTING", 1)[1].split()
    assert listing == [".filler"], done.stdout + done.stderr
    assert f"no space left on {etc}" in done.stderr


def test_a_full_backup_disk_leaves_no_partial_backup(tmp_path):
    etc, backups = tmp_path / "etc", tmp_path / "backups"
    etc.mkdir()
    backups.mkdir()
    target = etc / "kube-apiserver.yaml"
    target.write_bytes(b"o" * 200 * 1024)
    script = apply_script(write_change(target), RUN_ID, str(backups))
    probe = f"\necho LISTING; find {backups} -type f\n"
    done = in_namespace(f"mount -t tmpfs -o size=128k tmpfs {backups}",
                        "sh -s <<'HARDEN_SCRIPT' || true\n" + script + "HARDEN_SCRIPT\n" + probe)
    assert f"no space left on {backups}" in done.stderr
    files = done.stdout.split("LISTING", 1)[1].split()
    assert not [f for f in files if "/files/" in f], files       # no half copy as "backup"
    assert target.read_bytes() == b"o" * 200 * 1024               # never touched
    assert sorted(os.listdir(etc)) == ["kube-apiserver.yaml"]


def test_a_read_only_directory_is_named(tmp_path):
    etc, backups = tmp_path / "etc", tmp_path / "backups"
    etc.mkdir()
    script = apply_script(write_change(etc / "new.yaml"), RUN_ID, str(backups))
    done = in_namespace(f"mount --bind {etc} {etc} && mount -o remount,bind,ro {etc}", script)
    assert done.returncode != 0
    assert f"{etc} is read-only (cannot write in {etc})" in done.stderr


def test_restore_leaves_files_the_run_never_changed_alone_on_a_full_disk(tmp_path):
    """The run backed the manifest up, then failed before writing it: the restore has nothing
    to do for it, so a full disk cannot make it fail (it used to say ROLLBACK FAILED)."""
    etc, backups = tmp_path / "etc", tmp_path / "backups"
    etc.mkdir()
    target = etc / "kube-apiserver.yaml"
    target.write_text("original\n")
    os.chmod(target, 0o600)
    backup_only = apply_script([], RUN_ID, str(backups)) + f"hb_backup {target}\n"
    assert subprocess.run(["sh", "-s"], input=backup_only, text=True).returncode == 0
    entries = parse_index((backups / RUN_ID / "index").read_text())
    assert [e.path for e in entries] == [str(target)]
    restore = restore_script(RUN_ID, entries, str(backups))
    probe = f"\necho LISTING; ls -A {etc}\n"
    done = in_namespace(f"mount --bind {etc} {etc} && mount -o remount,bind,ro {etc}",
                        "sh -s <<'HARDEN_SCRIPT'\n" + restore + "HARDEN_SCRIPT\necho rc=$?\n"
                        + probe)
    assert "rc=0" in done.stdout, done.stderr
    target.write_text("changed by the run\n")
    done = in_namespace(f"mount -t tmpfs -o size=64k tmpfs {etc} && "
                        f"echo changed > {target} && {fill(etc)}",
                        "sh -s <<'HARDEN_SCRIPT'\n" + restore + "HARDEN_SCRIPT\necho rc=$?\n"
                        + probe)
    assert "rc=0" not in done.stdout and f"no space left on {etc}" in done.stderr
    assert done.stdout.split("LISTING", 1)[1].split() == [".filler", "kube-apiserver.yaml"]
