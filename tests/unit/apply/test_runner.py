"""Runner logic with a local stand-in for the SSH session: the scripts harden sends really run
(with the local `sh`) against a per-host temporary root, so writes, backups, the node record
and rollbacks are the real ones. SSH itself is covered by tests/integration/test_apply*.py."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
import threading

import pytest

from harden.apply.output import document
from harden.runs.journal import Journal
from harden.apply.rollback_command import rollback_host

from support.local_node import NODE_DIRS, Env, ShellSession, tree, write_play


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def test_first_run_changes_second_changes_nothing_with_few_execs(env):
    result, out = env.apply(write_play(),
                            extra={"fail_on": []})
    assert result.exit_code == 0
    assert {h: s.changed for h, s in result.hosts.items()} == {"h1": 2, "h2": 2, "h3": 2}
    conf = env.root("h2") / "etc" / "app.conf"
    assert conf.read_text() == "a = 2\n" and stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert (env.root("h2") / "etc/created.conf").read_text() == "new\n"
    # the node lock and the play's facts in one exec, then one exec for both tasks' writes,
    # the node record and the lock's release (nothing has to happen between them)
    assert {h: s.exec_count for h, s in env.sessions.items()} == {"h1": 2, "h2": 2, "h3": 2}
    assert [step for step, _, _ in result.execs["h1"]] == [
        "lock, gathering facts", "writing and committing"]
    assert not any(env.node_dir(h, 0).with_name("lock").exists() for h in ("h1", "h2", "h3"))
    env.sessions.clear()
    again, _ = env.apply(write_play(),
                         extra={"fail_on": []})
    assert again.exit_code == 0 and all(s.changed == 0 for s in again.hosts.values())
    # nothing to write: the lock with the facts, and the lock released
    assert {h: s.exec_count for h, s in env.sessions.items()} == {"h1": 2, "h2": 2, "h3": 2}


def test_check_mode_writes_nothing_reports_same_changes_and_exits_2(env):
    before = {h: tree(env.root(h)) for h in ("h1", "h2", "h3")}
    play = write_play()
    check, _ = env.apply(play, check=True, diff=True, extra={"fail_on": []})
    assert check.exit_code == 2
    assert {h: tree(env.root(h)) for h in ("h1", "h2", "h3")} == before
    assert not any(env.node_dir(h, i).exists() for h in ("h1", "h2", "h3") for i in (0, 1))
    changed_in_check = {(t.host, t.task) for t in check.tasks if t.status == "changed"}
    diff = next(t.diff for t in check.tasks if t.task == "config" and t.host == "h1")
    assert "-a = 1\n+a = 2\n" in diff and "-mode 0640\n+mode 0600\n" not in diff
    real, _ = env.apply(play, extra={"fail_on": []})
    assert {(t.host, t.task) for t in real.tasks if t.status == "changed"} == changed_in_check


def test_failure_rolls_back_byte_identical_and_serial_stops_the_rollout(env):
    before = {h: tree(env.root(h)) for h in ("h1", "h2", "h3")}
    result, out = env.apply(write_play(serial=1), extra={"fail_on": ["h1"]})
    assert result.exit_code == 4
    assert result.hosts["h1"].as_dict() == {"ok": 2, "changed": 2, "failed": 1, "skipped": 0,
                                           "rescued": 0, "ignored": 0,
                                           "unreachable": 0, "rolled_back": 1}
    assert "h2" not in result.hosts and out.stops          # never touched
    assert tree(env.root("h1")) == before["h1"]              # content, mode, owner, no new files
    assert tree(env.root("h2")) == before["h2"]
    assert not (env.root("h1") / "handler-ran").exists()
    record = json.loads((env.node_dir("h1", 1) / f"{result.run_id}.json").read_text())
    assert record["status"] == "rolled_back"


def test_max_fail_percentage_exceeded_not_equalled(env):
    play = write_play(serial=2, max_fail_percentage=50)
    result, out = env.apply(play, extra={"fail_on": ["h1"]})    # 1 of 2 = 50%: go on
    assert set(result.hosts) == {"h1", "h2", "h3"} and not out.stops
    result, out = env.apply(play, extra={"fail_on": ["h1", "h2"]})   # 100% > 50%: stop
    assert set(result.hosts) == {"h1", "h2"} and out.stops


def test_any_errors_fatal_stops_every_host(env):
    play = write_play(any_errors_fatal="true")
    result, out = env.apply(play, extra={"fail_on": ["h1", "h2", "h3"]})
    assert result.exit_code == 4 and out.stops
    assert all(s.rolled_back for s in result.hosts.values())


HANDLERS = """
- name: handlers
  hosts: group
  tasks:
    - name: probe
      command:
        cmd: "cat {{ root }}/etc/app.conf"
      check_mode: false
      changed_when: false
      register: probe
    - name: only when probe says a = 1
      copy:
        dest: "{{ root }}/etc/flag"
        content: "seen {{ probe.stdout }}\\n"
      when: "probe.stdout == 'a = 1'"
      notify: [mark, mark]
    - name: unchanged task
      copy:
        dest: "{{ root }}/etc/app.conf"
        content: "a = 1\\n"
      notify: other
      tags: [other]
  handlers:
    - name: mark
      shell:
        cmd: "echo x >> {{ root }}/marks"
    - name: other
      shell:
        cmd: "echo y >> {{ root }}/other"
"""


def test_handlers_run_once_for_changed_tasks_and_register_feeds_when(env):
    result, _ = env.apply(HANDLERS, limit="h1")
    assert (env.root("h1") / "etc" / "flag").read_text() == "seen a = 1\n"
    assert (env.root("h1") / "marks").read_text() == "x\n"       # notified twice, ran once
    assert not (env.root("h1") / "other").exists()                # its task did not change
    statuses = [(t.task, t.status) for t in result.tasks]
    assert statuses == [("probe", "ok"), ("only when probe says a = 1", "changed"),
                        ("unchanged task", "ok"), ("mark", "changed")]
    tagged, _ = env.apply(HANDLERS, limit="h1", tags=["other"])
    assert [(t.task, t.status) for t in tagged.tasks] == [("unchanged task", "ok")]


def test_secret_content_never_reaches_output_or_journal(env):
    secret = "c2VjcmV0LWtleS1kby1ub3QtbGVhaw=="
    play = f"""
- hosts: h1
  tasks:
    - name: key
      copy:
        dest: "{{{{ root }}}}/etc/key"
        content: "{secret}\\n"
        mode: "0600"
        secret: true
"""
    check, _ = env.apply(play, check=True, diff=True)
    real, _ = env.apply(play, diff=True)
    for result in (check, real):
        assert secret not in json.dumps(document(result, True))
    assert secret.encode() not in (env.tmp / "state" / "journal.sqlite").read_bytes()
    record = (env.node_dir("h1", 1) / f"{real.run_id}.json").read_text()
    assert secret not in record and "/etc/key" in record      # listed as a secret path


def test_manual_rollback_refuses_a_file_changed_since_unless_forced(env):
    play = write_play()
    before = tree(env.root("h1"))
    result, _ = env.apply(play, limit="h1", extra={"fail_on": []})
    conf = env.root("h1") / "etc" / "app.conf"
    conf.write_text("a = 3\n")
    session = ShellSession("h1", [], per_host_node_dirs=True)
    kwargs = {"backup_root": str(env.tmp / NODE_DIRS[0]),
              "journal_root": str(env.tmp / NODE_DIRS[1])}
    refused = rollback_host(session, "h1", result.run_id, force=False, **kwargs)
    assert refused.status == "refused" and conf.read_text() == "a = 3\n"
    assert "-a = 2\n+a = 3\n" in refused.diffs[str(conf)]
    done = rollback_host(session, "h1", result.run_id, force=True, **kwargs)
    assert done.status == "rolled_back" and tree(env.root("h1")) == before
    again = rollback_host(session, "h1", result.run_id, force=False, **kwargs)
    assert again.status == "already"


def test_journal_lists_changed_files_and_next_run_warns_of_an_unfinished_one(env):
    result, _ = env.apply(write_play(), limit="h1", extra={"fail_on": []})
    with sqlite3.connect(env.tmp / "state" / "journal.sqlite") as db:
        files = {row[0]: row[1] for row in db.execute(
            "SELECT path, kind FROM files WHERE run_id = ? AND host = 'h1'", (result.run_id,))}
    assert files == {str(env.root("h1") / "etc/app.conf"): "file",
                     str(env.root("h1") / "etc/created.conf"): "absent"}
    killed = env.node_dir("h1", 0) / "20260101T000000Z-dead00"
    killed.mkdir(parents=True)
    (killed / "index").write_text("")
    two_plays = write_play() + write_play().replace("- name: write", "- name: write again")
    _, out = env.apply(two_plays, limit="h1", extra={"fail_on": []})
    told = [m for _, m in out.warnings if "20260101T000000Z-dead00 did not finish" in m]
    assert len(told) == 1                                  # once per run, not once per play


def test_output_document_shape(env):
    result, _ = env.apply(write_play(),
                          extra={"fail_on": ["h3"]}, diff=True)
    doc = document(result, True)
    assert doc["run_id"] == result.run_id and doc["exit_code"] == 4
    assert doc["hosts"]["h3"]["rolled_back"] == 1 and doc["hosts"]["h1"]["failed"] == 0
    assert [t["status"] for t in doc["tasks"]["h1"]] == ["changed", "changed", "ok"]
    assert doc["tasks"]["h3"][-1]["status"] == "failed"
    assert "diff" in doc["tasks"]["h1"][0]


def test_hosts_run_in_parallel_up_to_forks(env, monkeypatch):
    active, peak, lock = [0], [0], threading.Lock()
    original = ShellSession.run

    def slow_run(self, command, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            import time
            time.sleep(0.05)
            return original(self, command, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(ShellSession, "run", slow_run)
    env.apply(write_play(), extra={"fail_on": []})
    assert peak[0] == 3


BATCHED = """
- hosts: h1
  tasks:
    - name: first
      copy:
        dest: "{{ root }}/etc/app.conf"
        content: "a = 9\\n"
    - name: impossible
      copy:
        dest: "{{ root }}/etc/app.conf/below-a-file"
        content: "x\\n"
    - name: never planned
      copy:
        dest: "{{ root }}/etc/late"
        content: "late\\n"
"""


def test_a_write_failing_mid_batch_names_its_task_and_restores_the_batch(env):
    before = tree(env.root("h1"))
    result, _ = env.apply(BATCHED)
    statuses = [(t.task, t.status) for t in result.tasks]
    assert statuses == [("first", "changed"), ("impossible", "failed")]
    assert result.hosts["h1"].rolled_back == 1 and result.exit_code == 4
    assert tree(env.root("h1")) == before


SPLIT_BY_COMMAND = """
- hosts: h1
  tasks:
    - name: one
      copy: {dest: "{{ root }}/etc/one", content: "1\\n"}
    - name: two
      copy: {dest: "{{ root }}/etc/two", content: "2\\n"}
    - name: look
      command: {cmd: "cat {{ root }}/etc/one"}
      register: seen
      changed_when: false
    - name: three
      copy: {dest: "{{ root }}/etc/three", content: "got {{ seen.stdout }}\\n"}
"""


def test_consecutive_writes_share_one_exec_and_a_command_splits_them(env):
    result, _ = env.apply(SPLIT_BY_COMMAND)
    assert (env.root("h1") / "etc" / "three").read_text() == "got 1\n"
    # lock with the facts; one+two; the command; facts for three (its arguments could not
    # be rendered before `seen` existed, so its facts come late); three with the node
    # record and the unlock
    assert env.sessions["h1"].exec_count == 5
    assert [t.status for t in result.tasks] == ["changed", "changed", "ok", "changed"]


def test_no_log_hides_diff_and_message(env):
    play = """
- hosts: h1
  tasks:
    - name: quiet
      copy: {dest: "{{ root }}/etc/q", content: "hush\\n"}
      no_log: true
    - name: fails quietly
      shell: {cmd: "echo the-secret-detail >&2; exit 3"}
      no_log: true
"""
    result, _ = env.apply(play, diff=True)
    quiet, failed = result.tasks
    assert quiet.status == "changed" and quiet.diff == ""
    assert failed.status == "failed" and "the-secret-detail" not in failed.message


def test_bad_input_exits_1_before_any_host_is_contacted(env, tmp_path):
    from click.testing import CliRunner

    from harden.cli import cli

    (tmp_path / "typo.yml").write_text("- hosts: group\n  tasks:\n    - copyy: {dest: /x}\n")
    (tmp_path / "nohosts.yml").write_text("- hosts: nosuchgroup\n  tasks: []\n")
    for name, expected in (("typo.yml", "unknown module or task keyword 'copyy'"),
                           ("nohosts.yml", "nosuchgroup")):
        result = CliRunner().invoke(cli, ["apply", "-i", str(env.tmp / "inventory.ini"),
                                          str(tmp_path / name)],
                                    env={"HARDEN_STATE_DIR": str(tmp_path / "state")})
        assert result.exit_code == 1, result.output
        assert expected in result.output
    assert Journal(tmp_path / "state" / "journal.sqlite").runs() == []    # no run started


def test_a_failure_in_a_later_play_restores_what_earlier_plays_wrote(env):
    play = """
- name: first
  hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/app.conf", content: "from play one\\n"}
- name: second
  hosts: h1
  tasks:
    - assert: {that: "false", fail_msg: "second play refuses"}
"""
    before = tree(env.root("h1"))
    result, _ = env.apply(play)
    assert result.exit_code == 4 and result.hosts["h1"].rolled_back == 1
    assert tree(env.root("h1")) == before
    record = json.loads((env.node_dir("h1", 1) / f"{result.run_id}.json").read_text())
    assert [(t["play"], t["status"]) for t in record["tasks"]] == [("first", "changed"),
                                                                  ("second", "failed")]


def test_a_commit_riding_with_the_writes_records_every_path_as_the_run_left_it(env):
    # play two rewrites play one's file and adds one: the exec carrying play two's commit
    # takes its own paths' states from after-partial and records play one's path again
    result, _ = env.apply("""
- hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/app.conf", content: "one\\n", mode: "0640"}
    - copy: {dest: "{{ root }}/etc/kept.conf", content: "kept\\n", mode: "0600"}
- hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/app.conf", content: "two\\n", mode: "0600"}
    - copy: {dest: "{{ root }}/etc/more.conf", content: "more\\n"}
""")
    assert result.exit_code == 0
    run_dir = env.node_dir("h1", 0) / result.run_id
    after = {}
    for line in (run_dir / "after-index").read_text().splitlines():
        kind, mode, uid, gid, sha, path = line.split("\t")
        after[path] = (kind, mode, sha)
    for name in ("app.conf", "kept.conf", "more.conf"):
        path = env.root("h1") / "etc" / name
        content = path.read_bytes()
        assert after.pop(str(path)) == ("file", f"{stat.S_IMODE(path.stat().st_mode):o}",
                                         hashlib.sha256(content).hexdigest())
        assert (run_dir / "after" / str(path).lstrip("/")).read_bytes() == content
    assert not after                                   # and nothing else


def test_a_host_failing_between_tasks_rolls_back_and_writes_nothing_it_had_queued(env,
                                                                                  monkeypatch):
    # x is written (a command follows it), y only queued when the next task fails with a bug:
    # the rollback undoes x, and y must never reach the node after it
    from harden.apply.modules import debug

    def broken(args, variables):
        raise RuntimeError("a bug in a module")
    monkeypatch.setattr(debug.MODULE, "report", broken)
    result, _ = env.apply("""
- hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/x", content: "x"}
    - command: "true"
    - copy: {dest: "{{ root }}/etc/y", content: "y"}
    - debug: {msg: here}
""")
    assert result.exit_code == 4 and result.hosts["h1"].rolled_back == 1
    assert not (env.root("h1") / "etc/x").exists() and not (env.root("h1") / "etc/y").exists()
    with sqlite3.connect(env.tmp / "state" / "journal.sqlite") as db:
        files = {row[0] for row in db.execute(
            "SELECT path FROM files WHERE run_id = ? AND host = 'h1'", (result.run_id,))}
    assert str(env.root("h1") / "etc/y") not in files


def test_a_directory_made_for_another_owner_is_recorded_with_that_owner(env):
    # the record is what the run left: a later `harden rollback` compares the node with it and
    # would refuse ("changed since") a directory recorded before its chown
    result, _ = env.apply("""
- hosts: h1
  tasks:
    - file: {path: "{{ root }}/etc/d", state: directory, owner: nobody, mode: "0750"}
""")
    assert result.exit_code == 0
    made = env.root("h1") / "etc/d"
    lines = (env.node_dir("h1", 0) / result.run_id / "after-index").read_text().splitlines()
    recorded = [line.split("\t") for line in lines if line.endswith(f"\t{made}")]
    assert [(kind, mode, int(uid)) for kind, mode, uid, *_ in recorded] == \
        [("dir", "750", made.stat().st_uid)] and made.stat().st_uid != 0
