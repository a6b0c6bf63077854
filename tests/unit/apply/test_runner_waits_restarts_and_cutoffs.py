"""Review findings on the runner: a second wait on the same manifest, restarts recorded only
once reached, and a multi-play run cut off after its first play. Scripts really run with the
local `sh` through the stand-in session of test_runner."""

from __future__ import annotations

import json
import os
import secrets
import signal

import pytest

from harden.apply.rollback import read_node_run
from harden.node import markers
from harden.ssh.transport import Unreachable
from support.local_node import NODE_DIRS, Env, ShellSession


@pytest.fixture
def env(tmp_path):
    made = Env(tmp_path)
    (made.root("h1") / "manifests").mkdir()       # copy makes no directory (as Ansible's)
    return made


# --- 1. a second change to the same manifest -------------------------------------------------

def manifest(argv: list[str], config_hash: str) -> str:
    """A static pod whose argv stays the same when only the annotation changes."""
    command = "".join(f"    - '{a}'\n" for a in argv)
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n"
            f"    config-hash: '{config_hash}'\nspec:\n  containers:\n  - name: web\n"
            f"    command:\n{command}")


TWO_CHANGES = """
- hosts: h1
  tasks:
    - name: manifest v1
      copy: {dest: "{{ root }}/manifests/web.yaml", content: "{{ v1 }}"}
    - name: the kubelet starts the pod
      shell: {cmd: "{{ start }}"}
      changed_when: false
    - name: wait one
      wait_for_static_pod: &wait
        name: web
        manifest: "{{ root }}/manifests/web.yaml"
        successes: 1
        interval: 0.1
        timeout: 2
    - name: manifest v2
      copy: {dest: "{{ root }}/manifests/web.yaml", content: "{{ v2 }}"}
%s
    - name: wait two
      wait_for_static_pod: *wait
"""

RESTART = """
    - name: the kubelet restarts the pod
      shell: {cmd: "kill $(tail -n 1 {{ pids }}); {{ start }}"}
      changed_when: false
"""


@pytest.fixture
def pod(env):
    """A stand-in pod process (unique argv) that commands start; killed by pid at the end."""
    argv = ["sleep", f"3000.{secrets.randbelow(10**6):06d}"]
    pids = env.tmp / "pod.pids"
    start = f"{' '.join(argv)} >/dev/null 2>&1 & echo $! >> {pids}"
    try:
        yield {"v1": manifest(argv, "1"), "v2": manifest(argv, "2"), "start": start,
               "pids": str(pids)}
    finally:
        for pid in pids.read_text().split() if pids.exists() else []:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_second_wait_on_the_same_manifest_does_not_accept_the_pod_of_the_first(env, pod):
    result, out = env.apply(TWO_CHANGES % "", extra=pod)
    statuses = {t.task: t.status for t in result.tasks}
    assert statuses["wait one"] == "ok"           # started after write one: the new pod
    assert statuses["wait two"] == "failed" and result.exit_code == 4
    message = next(t.message for t in result.tasks if t.task == "wait two")
    assert "only the process from before the change runs" in message


def test_a_pod_restarted_after_the_second_change_passes_the_second_wait(env, pod):
    result, _ = env.apply(TWO_CHANGES % RESTART, extra=pod)
    assert result.exit_code == 0
    assert [t.status for t in result.tasks if t.task.startswith("wait")] == ["ok", "ok"]


# --- 2. restarts are recorded once the write reached them ------------------------------------

SERVICE_AFTER = """
- hosts: h1
  tasks:
    - name: first
      copy: {dest: "{{ root }}/etc/app.conf", content: "a = 9\\n"}
%s
    - name: restart it
      service: {name: fake-svc, state: restarted}
    - name: gate
      assert: {that: "false"}
"""

BROKEN_WRITE = """
    - name: impossible
      copy: {dest: "{{ root }}/etc/app.conf/below-a-file", content: "x\\n"}
"""


@pytest.fixture
def systemctl(env, monkeypatch):
    """A systemctl on PATH that logs the actions it is asked for and answers queries about a
    running, enabled unit (this machine runs no systemd)."""
    bin_dir = env.tmp / "bin"
    bin_dir.mkdir()
    log = env.tmp / "systemctl.log"
    (bin_dir / "systemctl").write_text(
        "#!/bin/sh\ncase $1 in\n"
        "  show) printf 'LoadState=loaded\\nActiveState=active\\nUnitFileState=enabled\\n';;\n"
        "  is-enabled) echo enabled;;\n"
        f"  *) echo \"$*\" >> {log};;\nesac\n")
    os.chmod(bin_dir / "systemctl", 0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def node_record(env, run_id: str) -> dict:
    return json.loads((env.node_dir("h1", 1) / f"{run_id}.json").read_text())


def test_a_write_failing_before_the_service_step_restarts_nothing_on_rollback(env, systemctl):
    result, _ = env.apply(SERVICE_AFTER % BROKEN_WRITE)
    assert result.hosts["h1"].rolled_back == 1
    assert (env.root("h1") / "etc" / "app.conf").read_text() == "a = 1\n"
    assert not systemctl.exists()                  # neither the run nor the rollback
    assert node_record(env, result.run_id)["restarts"] == []


def test_a_service_step_reached_is_repeated_by_the_rollback(env, systemctl):
    result, _ = env.apply(SERVICE_AFTER % "")
    assert result.hosts["h1"].rolled_back == 1
    assert systemctl.read_text().splitlines() == ["restart fake-svc", "restart fake-svc"]
    assert [r["name"] for r in node_record(env, result.run_id)["restarts"]] == ["fake-svc"]


# --- 3. a multi-play run cut off after its first play -----------------------------------------

TWO_PLAYS = """
- name: one
  hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/app.conf", content: "from play one\\n"}
- name: two
  hosts: h1
  tasks:
    - copy: {dest: "{{ root }}/etc/two.conf", content: "from play two\\n"}
"""


class LostAtSecondCommit(ShellSession):
    """The connection drops when the second node record is about to be written: the exec
    carrying it (the play's last write batch rides with its commit) runs up to the record,
    and no further."""

    commits = 0

    def run(self, command, *, become=None, stdin=None, timeout=None):
        if stdin and b"HARDEN_RECORD" in stdin:
            self.commits += 1
            if self.commits == 2:
                writes, marker, _ = stdin.partition(f"echo '{markers.COMMIT}'".encode())
                if marker:
                    super().run(command, become=become, stdin=writes, timeout=timeout)
                raise Unreachable(self.host, "connection lost")
        return super().run(command, become=become, stdin=stdin, timeout=timeout)


class LossyEnv(Env):
    def connect(self, spec):
        session = LostAtSecondCommit(spec.host, self.log, self.root(spec.host))
        self.sessions[spec.host] = session
        return session


def test_a_run_cut_off_in_its_second_play_reads_as_unfinished_on_the_node(tmp_path):
    lossy = LossyEnv(tmp_path)
    result, _ = lossy.apply(TWO_PLAYS)
    assert result.hosts["h1"].unreachable == 1
    assert (lossy.root("h1") / "etc" / "two.conf").exists()          # written, not committed
    session = ShellSession("h1", [], per_host_node_dirs=True)
    node_run = read_node_run(session, result.run_id,
                             backup_root=str(tmp_path / NODE_DIRS[0]),
                             journal_root=str(tmp_path / NODE_DIRS[1]))
    assert node_run.interrupted and node_run.after is None
    assert {e.path for e in node_run.entries} == {str(lossy.root("h1") / "etc" / p)
                                                  for p in ("app.conf", "two.conf")}
    _, out = Env.apply(lossy, "- hosts: h1\n  tasks: []\n")
    assert any(f"run {result.run_id} did not finish" in m for _, m in out.warnings)


def test_a_multi_play_run_that_finishes_is_committed_once_per_play(env):
    result, out = env.apply(TWO_PLAYS)
    assert result.exit_code == 0
    record = node_record(env, result.run_id)
    assert record["status"] == "committed"
    assert [t["play"] for t in record["tasks"]] == ["one", "two"]
    after = (env.node_dir("h1", 0) / result.run_id / "after-index").read_text()
    assert str(env.root("h1") / "etc" / "two.conf") in after
    _, again = env.apply("- hosts: h1\n  tasks: []\n")
    assert not any("did not finish" in m for _, m in again.warnings)


STOP_THEN_FAIL = """
- hosts: h1
  tasks:
    - name: first
      copy: {dest: "{{ root }}/etc/app.conf", content: "a = 9\\n"}
    - name: stop it
      systemd: {name: fake-svc, state: stopped, enabled: false}
    - name: gate
      assert: {that: "false"}
"""


def test_a_rollback_undoes_service_state_and_enablement(env, systemctl):
    """The run stopped and disabled a running, enabled unit; its rollback starts and
    enables it again, in the run's order."""
    result, _ = env.apply(STOP_THEN_FAIL)
    assert result.hosts["h1"].rolled_back == 1
    assert systemctl.read_text().splitlines() == ["disable fake-svc", "stop fake-svc",
                                                  "enable fake-svc", "start fake-svc"]
    assert [(r["name"], r["verb"]) for r in node_record(env, result.run_id)["restarts"]] == \
        [("fake-svc", "enable"), ("fake-svc", "start")]
