"""A node on this machine: the scripts harden sends really run with the local `sh` against a
temporary root, so writes, backups, node records and rollbacks are the real ones without SSH.
SSH itself is covered by the integration tests on the lab."""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess

from harden.apply.events import Output
from harden.apply.playbook import load_playbook, load_playbooks
from harden.apply.runner import ApplyOptions, Runner
from harden.inventory.loader import load_inventory
from harden.node.paths import lock_path
from harden.runs.journal import Journal
from harden.ssh.session import CommandResult

# Every fake host shares this machine's filesystem, so the node-side state directories (as given
# in ApplyOptions) are moved under each host's own directory.
NODE_DIRS = ("node-backups", "node-journal")


class ShellSession:
    """harden.ssh.session.Session over the local shell; counts execs like the real transport.

    With a `log`, every script is recorded; with `per_host_node_dirs`, NODE_DIRS in scripts
    are moved to `/<host>-node/<dir>` so hosts sharing this machine keep separate records, and
    the node lock `lock` (a path) to `/<host>-node/lock`: one lock per host, as on real nodes
    (a host gives its lock back as soon as its last play commits)."""

    def __init__(self, host: str = "local", log: list | None = None,
                 per_host_node_dirs: bool = False, lock: str | None = None):
        self.host = host
        self.exec_count = 0
        self.becomes: list[bool | None] = []        # the `become` of every exec, in order
        self.log = log
        self.per_host_node_dirs = per_host_node_dirs
        self.lock = lock

    def run(self, command: str, *, become: bool | None = None, stdin: bytes | None = None,
            timeout: float | None = None) -> CommandResult:
        self.exec_count += 1
        self.becomes.append(become)
        stdin = stdin or b""
        if self.per_host_node_dirs:
            for name in NODE_DIRS:
                stdin = stdin.replace(f"/{name}".encode(), f"/{self.host}-node/{name}".encode())
            if self.lock:
                own = f"{os.path.dirname(self.lock)}/{self.host}-node/lock"
                stdin = stdin.replace(self.lock.encode(), own.encode())
        if self.log is not None:
            self.log.append((self.host, stdin))
        done = subprocess.run(["sh", "-c", command], input=stdin, capture_output=True,
                              timeout=timeout or 60)
        return CommandResult(done.returncode, done.stdout, done.stderr)

    def open_tcp(self, host: str, port: int, timeout: float | None = None):
        return socket.create_connection((host, port), timeout=timeout or 5)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


class Collect(Output):
    """An Output that keeps what the runner said."""

    def __init__(self):
        self.lines, self.warnings, self.stops, self.plays = [], [], [], []

    def play_start(self, play, hosts, matched=True):
        self.plays.append((play.name, hosts, matched))

    def task(self, result):
        self.lines.append(result)

    def warning(self, host, message):
        self.warnings.append((host, message))

    def stopped(self, message):
        self.stops.append(message)


class Env:
    """Three hosts h1..h3 with a root each (`root=` inventory variable) and one journal."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.log: list = []
        self.sessions: dict[str, ShellSession] = {}
        self.journal = Journal(tmp_path / "state" / "journal.sqlite")
        for name in ("h1", "h2", "h3"):
            (tmp_path / name / "etc").mkdir(parents=True)
            (tmp_path / name / "etc" / "app.conf").write_text("a = 1\n")
            os.chmod(tmp_path / name / "etc" / "app.conf", 0o640)
        (tmp_path / "inventory.ini").write_text(
            "[group]\n" + "".join(f"{n} root={tmp_path / n}\n" for n in ("h1", "h2", "h3")))

    def root(self, host: str):
        return self.tmp / host

    def node_dir(self, host: str, which: int):
        """The host's backup (0) or journal (1) directory."""
        return self.tmp / f"{host}-node" / NODE_DIRS[which]

    def connect(self, spec):
        session = ShellSession(spec.host, self.log, per_host_node_dirs=True,
                               lock=lock_path(str(self.tmp / NODE_DIRS[0])))
        self.sessions[spec.host] = session
        return session

    def apply(self, playbook: str | list[str], check=False, diff=False, extra=None, tags=None,
              limit=None, check_mode="predict"):
        """Run one playbook, or several (play.yml, play2.yml, ...: ansible-playbook a.yml b.yml)."""
        texts = [playbook] if isinstance(playbook, str) else playbook
        paths = [self.tmp / ("play.yml" if n == 1 else f"play{n}.yml")
                 for n in range(1, len(texts) + 1)]
        for path, text in zip(paths, texts):
            path.write_text(text)
        out = Collect()
        options = ApplyOptions(check=check, check_mode=check_mode, diff=diff, forks=3,
                               extra_vars=extra or {},
                               tags=tags, limit=limit,
                               backup_root=str(self.tmp / NODE_DIRS[0]),
                               journal_root=str(self.tmp / NODE_DIRS[1]))
        runner = Runner(load_inventory([str(self.tmp / "inventory.ini")]),
                        load_playbooks([str(p) for p in paths]), options, out, self.journal,
                        connect=self.connect)
        return runner.run(), out


def run_play(tmp_path, playbook: str, extra: dict, **check):
    """One host h1 whose etc/app.conf holds template syntax; returns (result, output, runner).
    `check`: ApplyOptions' check and check_mode, for a --check run."""
    (tmp_path / "h1" / "etc").mkdir(parents=True)
    (tmp_path / "h1" / "etc" / "app.conf").write_text("{{ secret }}\n")
    (tmp_path / "inventory.ini").write_text(f"h1 root={tmp_path / 'h1'}\n")
    (tmp_path / "play.yml").write_text(playbook)
    options = ApplyOptions(forks=1, extra_vars=extra, backup_root=str(tmp_path / "backups"),
                           journal_root=str(tmp_path / "journal"), **check)
    out = Collect()
    journal = Journal(tmp_path / "journal.sqlite")
    try:
        runner = Runner(load_inventory([str(tmp_path / "inventory.ini")]),
                        load_playbook(str(tmp_path / "play.yml")), options, out, journal,
                        connect=lambda spec: ShellSession(spec.host))
        return runner.run(), out, runner
    finally:
        journal.close()


WRITE = """
- name: write
  hosts: group
{keys}  tasks:
    - name: config
      copy:
        dest: "{{{{ root }}}}/etc/app.conf"
        content: "a = 2\\n"
        mode: "0600"
    - name: new file
      copy:
        dest: "{{{{ root }}}}/etc/created.conf"
        content: "new\\n"
    - name: gate
      assert:
        that: "inventory_hostname not in fail_on"
      notify: never runs
  handlers:
    - name: never runs
      shell:
        cmd: "touch {{{{ root }}}}/handler-ran"
"""


def write_play(**keys) -> str:
    """The WRITE playbook with extra play keywords (serial=1, any_errors_fatal='true', ...)."""
    return WRITE.format(keys="".join(f"  {k}: {v}\n" for k, v in keys.items()))


def tree(root) -> dict:
    """path -> (sha256, mode, uid, gid) of everything under root."""
    out = {}
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(base, name)
            st = os.lstat(path)
            digest = hashlib.sha256(open(path, "rb").read()).hexdigest() \
                if stat.S_ISREG(st.st_mode) else "dir"
            out[os.path.relpath(path, root)] = (digest, stat.S_IMODE(st.st_mode), st.st_uid,
                                                st.st_gid)
    return out
