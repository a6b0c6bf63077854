"""`after-partial`: the state each change of a run left, recorded as the run goes, so that a
manual rollback of a run killed before its commit still refuses to overwrite later edits.
The apply and rollback scripts really run (local `sh`) against a temporary root."""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess

import pytest

from harden.runs.journal import BackupEntry
from harden.apply.modules.base import REDACTED, Change, apply_script, write_snippet
from harden.apply.rollback import parse_probe, probe_script
from harden.apply.rollback_command import rollback_host

from support.local_node import ShellSession

RUN = "20260101T000000Z-abc123"


@pytest.fixture
def node(tmp_path):
    """A root with one existing config file, and the run's state directories."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "app.conf").write_text("a = 1\n")
    os.chmod(tmp_path / "etc" / "app.conf", 0o644)
    return tmp_path


def apply(node, *snippets: str) -> None:
    script = apply_script([Change(summary="", script=s) for s in snippets], RUN,
                          str(node / "backups"))
    done = subprocess.run(["sh", "-s"], input=script.encode(), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def write(path, text: str, mode: str | None = None) -> str:
    return write_snippet(str(path), text.encode(), mode, None, None)


def rollback(node, force: bool = False):
    return rollback_host(ShellSession(), "h1", RUN, force, backup_root=str(node / "backups"),
                         journal_root=str(node / "journal"))


def partial_lines(node) -> list[list[str]]:
    text = (node / "backups" / RUN / "after-partial").read_text()
    return [line.split("\t") for line in text.splitlines()]


def test_each_change_appends_the_state_it_left_and_the_last_line_of_a_path_wins(node):
    conf = node / "etc" / "app.conf"
    apply(node, write(conf, "a = 2\n"), f"hb_chmod {shlex.quote(str(conf))} 0600",
          f"hb_mkdir {shlex.quote(str(node / 'etc' / 'new' / 'sub'))} 0750")
    run_dir = node / "backups" / RUN
    assert stat.S_IMODE((run_dir / "after-partial").stat().st_mode) == 0o600
    lines = partial_lines(node)
    sha = hashlib.sha256(b"a = 2\n").hexdigest()
    uid, gid = str(conf.stat().st_uid), str(conf.stat().st_gid)
    assert [line for line in lines if line[5] == str(conf)] == [
        ["file", "644", uid, gid, sha, str(conf)], ["file", "600", uid, gid, sha, str(conf)]]
    assert ["dir", "755", uid, gid, "-", str(node / "etc" / "new")] in lines
    assert ["dir", "750", uid, gid, "-", str(node / "etc" / "new" / "sub")] in lines
    assert (run_dir / ("after" + str(conf))).read_text() == "a = 2\n"
    probe = parse_probe(RUN, _probe_output(node))
    assert probe.after is None and probe.left[str(conf)].mode == "600"
    assert probe.changed_since() == []


def _probe_output(node) -> str:
    done = subprocess.run(["sh", "-s"], input=probe_script(RUN, str(node / "backups"),
                                                           str(node / "journal")).encode(),
                          capture_output=True, timeout=60)
    return done.stdout.decode()


def test_interrupted_run_refuses_a_path_edited_since_and_force_restores(node):
    conf = node / "etc" / "app.conf"
    apply(node, write(conf, "a = 2\n"))
    conf.write_text("a = 3 # operator\n")
    refused = rollback(node)
    assert refused.status == "refused" and "interrupted run" in refused.message
    assert list(refused.diffs) == [str(conf)]
    assert conf.read_text() == "a = 3 # operator\n"
    done = rollback(node, force=True)
    assert done.status == "rolled_back", done.message
    assert conf.read_text() == "a = 1\n"


def test_interrupted_run_shows_no_content_it_cannot_know_to_be_public(node):
    """The record naming the run's secret files is only written at commit."""
    key = node / "etc" / "app.conf"
    apply(node, write(key, "key = s3cr3t-one\n"))
    key.write_text("key = s3cr3t-two\n")
    os.chmod(key, 0o640)
    diff = rollback(node).diffs[str(key)]
    assert "s3cr3t" not in diff and REDACTED in diff
    assert "-mode/uid/gid 644" in diff and "+mode/uid/gid 640" in diff


def test_an_untouched_interrupted_run_rolls_back_without_force(node):
    conf = node / "etc" / "app.conf"
    apply(node, write(conf, "a = 2\n"), f"hb_mkdir {shlex.quote(str(node / 'etc' / 'd'))} 0700")
    done = rollback(node)
    assert done.status == "rolled_back", done.message
    assert conf.read_text() == "a = 1\n" and not (node / "etc" / "d").exists()


def test_a_path_backed_up_but_not_in_after_partial_is_judged_by_its_backup(node):
    """The run died between the backup and the after-partial line: it may or may not have
    written the path, so a path that differs from its backup needs a person (--force)."""
    conf, other = node / "etc" / "app.conf", node / "etc" / "other.conf"
    other.write_text("b = 1\n")
    apply(node, write(conf, "a = 2\n"), f"hb_backup {shlex.quote(str(other))}")
    other.write_text("b = 2 # operator\n")
    os.chmod(other, 0o600)
    refused = rollback(node)
    assert refused.status == "refused" and list(refused.diffs) == [str(other)]
    assert "-mode/uid/gid 644" in refused.diffs[str(other)]
    assert conf.read_text() == "a = 2\n" and other.read_text() == "b = 2 # operator\n"
    done = rollback(node, force=True)
    assert done.status == "rolled_back", done.message
    assert conf.read_text() == "a = 1\n" and other.read_text() == "b = 1\n"


def test_a_path_backed_up_and_untouched_since_is_no_conflict(node):
    conf, other = node / "etc" / "app.conf", node / "etc" / "other.conf"
    other.write_text("b = 1\n")
    apply(node, write(conf, "a = 2\n"), f"hb_backup {shlex.quote(str(other))}")
    done = rollback(node)
    assert done.status == "rolled_back", done.message
    assert conf.read_text() == "a = 1\n" and other.read_text() == "b = 1\n"


def test_a_committed_run_is_judged_by_its_after_index_only():
    def line(sha: str, path: str) -> str:
        return "\t".join(["file", "644", "0", "0", sha, path])

    probe = "\n".join([
        "@@harden-rb index", line("orig", "/a"), line("orig", "/b"),
        "@@harden-rb after", line("committed", "/a"), line("committed", "/b"),
        "@@harden-rb after-partial", line("partial", "/a"),
        "@@harden-rb record",
        "@@harden-rb current", line("committed", "/a"), line("edited", "/b")])
    run = parse_probe(RUN, probe)
    assert run.changed_since() == ["/b"]
    assert run.left["/a"] == BackupEntry("file", "644", "0", "0", "committed", "/a")


def test_the_last_after_partial_line_of_a_path_decides():
    def line(sha: str) -> str:
        return "\t".join(["file", "600", "0", "0", sha, "/a"])

    probe = "\n".join(["@@harden-rb index", line("orig"),
                       "@@harden-rb after-partial", line("first"), line("second"),
                       "@@harden-rb current", line("second")])
    run = parse_probe(RUN, probe)
    assert run.interrupted and run.changed_since() == []
    assert parse_probe(RUN, probe.replace("current\n" + line("second"),
                                          "current\n" + line("first"))).changed_since() == ["/a"]


def test_a_configmap_key_the_api_cannot_show_now_is_not_changed_since():
    """The API server may be the component the rollback restores: its ConfigMap key ("?" when
    kubectl got no answer) is compared by the restore itself, once the API is back."""
    from harden.apply.rollback import NodeRun
    path = "/configmap:kube-system/kubeadm-config/ClusterConfiguration"
    backup = BackupEntry("cm", "-", "-", "-", "a" * 64, path)
    left = BackupEntry("cm", "-", "-", "-", "b" * 64, path)
    unknown = BackupEntry("cm", "-", "-", "-", "?", path)
    other = BackupEntry("cm", "-", "-", "-", "c" * 64, path)
    assert NodeRun(RUN, [backup], {path: left}, {path: unknown}, None).changed_since() == []
    assert NodeRun(RUN, [backup], {path: left}, {path: other}, None).changed_since() == [path]
    assert NodeRun(RUN, [backup], {path: left}, {path: backup}, None).changed_since() == []
