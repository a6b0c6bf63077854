"""Review findings on the apply path: symlinks, rollback identity, no_log on failures, errors
while rolling back, backup dedupe, owner arguments. Scripts really run with the local `sh`
against a temporary root, through the stand-in session of test_runner."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile

import pytest

import harden.apply.host_outcome
from harden.apply.output import document
from harden.errors import InputError
from harden.runs.journal import parse_index
from harden.apply.modules import get_module
from harden.apply.modules.base import Change, apply_script, write_snippet
from harden.apply.rollback import RollbackError, read_node_run, restore_script
from harden.apply.rollback_command import rollback_host
from harden.ssh.session import CommandResult
from support.modules import file_state, make_facts, plan
from support.local_node import NODE_DIRS, Env, ShellSession


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def roots(env) -> dict:
    return {"backup_root": str(env.tmp / NODE_DIRS[0]),
            "journal_root": str(env.tmp / NODE_DIRS[1])}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# --- 1. symlinks -----------------------------------------------------------------------------

LINKED = """
- hosts: h1
  tasks:
    - file: {path: "{{ root }}/var/lib/etcd", mode: "0750"}
    - copy: {dest: "{{ root }}/etc/linked.conf", content: "new\\n"}
    - copy: {dest: "{{ root }}/etc/dangling.conf", content: "made\\n"}
"""


def test_symlinks_stay_links_and_their_targets_are_changed_and_restored(env):
    root = env.root("h1")
    (root / "data" / "etcd").mkdir(parents=True)
    os.chmod(root / "data" / "etcd", 0o700)
    (root / "data" / "real.conf").write_text("old\n")
    os.chmod(root / "data" / "real.conf", 0o640)
    (root / "var" / "lib").mkdir(parents=True)
    os.symlink(root / "data" / "etcd", root / "var" / "lib" / "etcd")
    os.symlink(root / "data" / "real.conf", root / "etc" / "linked.conf")
    os.symlink(root / "data" / "missing.conf", root / "etc" / "dangling.conf")
    links = ("var/lib/etcd", "etc/linked.conf", "etc/dangling.conf")
    result, _ = env.apply(LINKED)
    assert result.exit_code == 0
    assert all((root / link).is_symlink() for link in links)
    assert mode(root / "data" / "etcd") == 0o750
    assert (root / "data" / "real.conf").read_text() == "new\n"
    assert mode(root / "data" / "real.conf") == 0o640
    assert (root / "data" / "missing.conf").read_text() == "made\n"
    done = rollback_host(ShellSession("h1", [], per_host_node_dirs=True), "h1", result.run_id, force=False,
                         **roots(env))
    assert done.status == "rolled_back", done.message
    assert all((root / link).is_symlink() for link in links)
    assert mode(root / "data" / "etcd") == 0o700
    assert (root / "data" / "real.conf").read_text() == "old\n"
    assert mode(root / "data" / "real.conf") == 0o640
    assert not (root / "data" / "missing.conf").exists()


# --- 2. the identity of a rollback -----------------------------------------------------------

def test_probe_fails_when_the_backups_are_unreadable_to_the_login():
    base = tempfile.mkdtemp(prefix="harden-unreadable-")
    try:
        os.chmod(base, 0o755)
        run = os.path.join(base, "backups", "r1")
        os.makedirs(run)
        with open(os.path.join(run, "index"), "w") as index:
            index.write(f"absent\t-\t-\t-\t-\t{base}/x\n")
        os.chmod(os.path.join(base, "backups"), 0o700)
        as_root = read_node_run(ShellSession("h1", [], per_host_node_dirs=True), "r1", None,
                                f"{base}/backups", f"{base}/journal")
        assert as_root is not None and [e.path for e in as_root.entries] == [f"{base}/x"]
        with pytest.raises(RollbackError, match="cannot read .*backups as user nobody"):
            read_node_run(NobodySession(), "r1", None, f"{base}/backups", f"{base}/journal")
    finally:
        shutil.rmtree(base)


class NobodySession:
    """Runs commands as the unprivileged user `nobody`, as a login without sudo would."""

    def run(self, command, *, become=None, stdin=None, timeout=None):
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               "sh", "-c", command], input=stdin, capture_output=True,
                              timeout=60)
        return CommandResult(done.returncode, done.stdout, done.stderr)


BECOME_WRITE = """
- hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/app.conf", content: "a = 2\\n"}
      become: true
    - assert: {that: "false"}
"""


def test_automatic_rollback_runs_as_the_writes_did(env):
    result, _ = env.apply(BECOME_WRITE)
    assert result.hosts["h1"].rolled_back == 1
    becomes = env.sessions["h1"].becomes
    # the node lock (as the most privileged write: True), gather (play: None), write (task:
    # True), then probe, restore, commit and the lock's release all as the write
    assert becomes[0] is True and becomes[1] is None
    assert becomes[2:] == [True] * (len(becomes) - 2)
    assert len(becomes) >= 7


def test_manual_rollback_uses_become(env):
    result, _ = env.apply(write_only())
    session = ShellSession("h1", [], per_host_node_dirs=True)
    done = rollback_host(session, "h1", result.run_id, force=False, **roots(env))
    assert done.status == "rolled_back"
    assert session.becomes and set(session.becomes) == {True}


def write_only() -> str:
    return "- hosts: h1\n  tasks:\n    - copy: {dest: \"{{ root }}/etc/app.conf\", " \
           "content: \"a = 2\\n\"}\n"


# --- 3. no_log on a failing task ---------------------------------------------------------------

NO_LOG_FAIL = """
- hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/app.conf", content: "a = 2\\n"}
    - name: guarded
      assert: {that: "false", fail_msg: "token is {{ token }}"}
      no_log: true
"""


def test_a_no_log_failure_keeps_its_message_out_of_warnings_json_and_journal(env):
    secret = "s3cr3t-t0ken-value"
    result, out = env.apply(NO_LOG_FAIL, extra={"token": secret})
    assert result.exit_code == 4 and result.hosts["h1"].rolled_back == 1
    assert not any(secret in message for _, message in out.warnings)
    assert any("task 'guarded': (hidden: no_log)" in message for _, message in out.warnings)
    assert secret not in json.dumps(document(result, True))
    assert secret.encode() not in (env.tmp / "state" / "journal.sqlite").read_bytes()


# --- 4. errors while rolling back ------------------------------------------------------------

FAILS_AFTER_WRITE = """
- hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/app.conf", content: "a = 2\\n"}
    - assert: {that: "false", fail_msg: "the original cause"}
"""


def test_an_unexpected_error_in_the_rollback_keeps_the_cause_and_ends_the_host_row(
        env, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("restore exploded")

    monkeypatch.setattr(harden.apply.host_outcome, "restore_host", broken)
    result, out = env.apply(FAILS_AFTER_WRITE)
    assert result.exit_code == 4
    warning = next(m for _, m in out.warnings if m.startswith("ROLLBACK FAILED"))
    assert "restore exploded" in warning and f"backups are in {env.tmp / NODE_DIRS[0]}/" \
        f"{result.run_id}" in warning
    with sqlite3.connect(env.tmp / "state" / "journal.sqlite") as db:
        status, message = db.execute("SELECT status, message FROM hosts WHERE run_id = ?",
                                     (result.run_id,)).fetchone()
    assert status == "failed"
    assert "the original cause" in message and "rollback failed: restore exploded" in message


# --- 5. one backup per path, however it is spelled -------------------------------------------

def test_a_path_spelled_twice_is_backed_up_once_from_the_original(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    plain, odd = d / "f", d / "a\\tb"          # the second name holds a real backslash
    plain.write_text("pristine\n")
    odd.write_text("pristine odd\n")
    backups = tmp_path / "backups"
    changes = [Change("", write_snippet(str(plain), b"changed\n", None, None, None)),
               Change("", f"hb_chmod '{d}//f' 0600"),
               Change("", write_snippet(str(odd), b"changed odd\n", None, None, None)),
               Change("", f"hb_chmod '{odd}' 0600")]
    done = subprocess.run(["sh", "-s"], input=apply_script(changes, "r1", str(backups)).encode(),
                          capture_output=True)
    assert done.returncode == 0, done.stderr
    entries = parse_index((backups / "r1" / "index").read_text())
    assert [e.path for e in entries] == [str(plain), str(odd)]
    assert (backups / "r1" / "files" / str(plain).lstrip("/")).read_text() == "pristine\n"
    undo = subprocess.run(["sh", "-s"], capture_output=True,
                          input=restore_script("r1", entries, str(backups)).encode())
    assert undo.returncode == 0, undo.stderr
    assert plain.read_text() == "pristine\n" and odd.read_text() == "pristine odd\n"


def test_scripts_name_normalised_paths():
    assert write_snippet("/d//e/./f", b"x", None, None, None).startswith("hb_write /d/e/f ")
    change, = plan("file", {"path": "/d//f", "mode": "0600"},
                   make_facts(file_state("/d//f", mode=0o644)))
    assert change.script == "hb_chmod /d/f 0600"


# --- 6. owner and group arguments ------------------------------------------------------------

@pytest.mark.parametrize("args, named", [({"owner": "root:root"}, "owner"),
                                         ({"group": "0"}, "group"),
                                         ({"owner": 0}, "owner")])
def test_owner_and_group_must_be_single_names(args, named):
    with pytest.raises(InputError, match=f"'{named}'") as caught:
        get_module("file").validate({"path": "/etc/x", **args}, "site.yml", 7)
    assert str(caught.value).startswith("site.yml:7: ")


def test_owner_and_group_by_name_are_a_no_op_when_they_match():
    facts = make_facts(file_state("/etc/x", mode=0o600, owner="root", group="root"))
    assert plan("file", {"path": "/etc/x", "mode": "0600", "owner": "root", "group": "root"},
                facts) == []
