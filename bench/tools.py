"""The contenders: how each one is started against a lab, and what it needs around the run.

Every tool gets the same forks, the same key, the same known_hosts and strict host-key checking,
so the only differences left are the tools themselves.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

BENCH_DIR = Path(__file__).resolve().parent
ANSIBLE_DIR = BENCH_DIR / "ansible"
ANSIBLE_VENV = BENCH_DIR / ".venv-ansible"
ANSIBLE_REQUIREMENT = "ansible-core"


@dataclass
class Lab:
    """What a tool needs to reach a running lab."""

    dir: Path
    addresses: dict[str, str]            # node name -> address

    @property
    def key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def inventory(self) -> Path:
        return self.dir / "inventory.ini"

    def sshd_logs(self) -> dict[str, Path]:
        return {name: self.dir / "nodes" / name / "sshd.log" for name in self.addresses}


@dataclass
class Invocation:
    """One run of a tool: argv, its environment and stdin, and what to undo afterwards."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    stdin: bytes | None = None
    cleanup: Callable[[], None] = lambda: None


@dataclass
class Tool:
    name: str
    key: str                      # what `--tools` calls it
    invocation: Callable[[Lab, int], Invocation]
    ok_codes: tuple[int, ...] = (0,)
    is_ansible: bool = False
    costly: bool = False          # so slow that it runs only on small labs by default


def openssh_options(lab: Lab) -> list[str]:
    """Strict, non-interactive, one key: what the lab inventory gives every other tool too."""
    return ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={lab.known_hosts}", "-o", "IdentitiesOnly=yes",
            "-i", str(lab.key), "-l", "root"]


def _addresses_stdin(lab: Lab) -> bytes:
    return "".join(f"{address}\n" for address in lab.addresses.values()).encode()


def openssh_floor(lab: Lab, forks: int) -> Invocation:
    """xargs -P: no interpreter at all on the controller, one `ssh ADDR true` per node."""
    argv = ["xargs", "-P", str(forks), "-I{}", "ssh", *openssh_options(lab), "{}", "true"]
    return Invocation(argv, stdin=_addresses_stdin(lab))


def openssh_probe(lab: Lab, forks: int) -> Invocation:
    """harden's own probe script, sent over plain OpenSSH: the node-side cost of the audit with
    no Python on the controller, so `harden check` minus this is parsing, evaluation and report.
    As `harden check` does on a lab (one cluster), the first node asks section 5 for the
    cluster and the others leave it to it (harden.cis.cluster_reads)."""
    from harden.cis.probe import build_probe_script

    scripts = [_script_file(build_probe_script(ask_cluster=ask)) for ask in (True, False)]
    ssh = " ".join(["exec", "ssh", *(_sh_quote(a) for a in openssh_options(lab)),
                    '"$1"', "/bin/sh", "-s", '<', '"$2"'])
    lines = "".join(f"{address} {scripts[0 if n == 0 else 1]}\n"
                    for n, address in enumerate(lab.addresses.values()))
    argv = ["xargs", "-P", str(forks), "-L", "1", "sh", "-c", ssh, "sh"]
    return Invocation(argv, stdin=lines.encode(),
                      cleanup=lambda: [os.unlink(script) for script in scripts])


def _script_file(text: str) -> str:
    fd, path = tempfile.mkstemp(prefix="harden-bench-probe-", suffix=".sh")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def _sh_quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def paramiko_floor(lab: Lab, forks: int) -> Invocation:
    argv = [sys.executable, str(BENCH_DIR / "floor_paramiko.py"), str(lab.key),
            str(lab.known_hosts), str(forks), *lab.addresses.values()]
    return Invocation(argv)


def harden_check(lab: Lab, forks: int, transport: str = "paramiko") -> Invocation:
    """The full CIS audit with its JSON report (rendering and writing it is part of the cost).
    The report goes to a file in the lab dir, overwritten by each run: `-o /dev/null` would not
    do, harden writes reports through a temp file renamed over the target."""
    argv = [str(Path(sys.executable).with_name("harden")), "check", "-i", str(lab.inventory),
            "--format", "json", "-o", str(lab.dir / f"harden-report-{transport}.json"),
            "-f", str(forks), "--transport", transport]
    return Invocation(argv)


def harden_check_openssh(lab: Lab, forks: int) -> Invocation:
    """The same audit over the OpenSSH transport: one ssh ControlMaster per node, the probe
    as one exec through it (so next to the OpenSSH floor, which pays one login + one exec)."""
    return harden_check(lab, forks, transport="openssh")


def ansible_playbook(pipelining: bool, playbook: str = "audit.yml"
                     ) -> Callable[[Lab, int], Invocation]:
    """ansible-playbook on bench/ansible/PLAYBOOK with a fresh ControlPath dir per run, so no
    run inherits another's persistent SSH masters; the masters it leaves are closed afterwards."""
    def invocation(lab: Lab, forks: int) -> Invocation:
        control_dir = Path(tempfile.mkdtemp(prefix="hb-cp-"))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ANSIBLE_DIR / "ansible.cfg"),
                   ANSIBLE_HOME=str(control_dir / "home"),
                   ANSIBLE_SSH_CONTROL_PATH_DIR=str(control_dir),
                   ANSIBLE_PIPELINING="True" if pipelining else "False")
        argv = [str(ANSIBLE_VENV / "bin" / "ansible-playbook"), "-i", str(lab.inventory),
                "-f", str(forks), str(ANSIBLE_DIR / playbook)]
        return Invocation(argv, env=env, cleanup=lambda: close_control_masters(control_dir))
    return invocation


def close_control_masters(control_dir: Path) -> None:
    """Ask each persistent ssh master Ansible left behind to exit (by its socket, so only ours)."""
    for socket_path in control_dir.iterdir():
        if socket_path.is_socket():
            subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "bench"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10,
                           check=False)
    shutil.rmtree(control_dir, ignore_errors=True)


def harden_apply(lab: Lab, forks: int) -> Invocation:
    """`harden apply` of bench/ansible/site.yml: preflight and node locks, one fact exec per
    play, batched writes with backups, commit; its journal in the lab dir."""
    argv = [str(Path(sys.executable).with_name("harden")), "apply", "-i", str(lab.inventory),
            "-f", str(forks), "--format", "json", str(ANSIBLE_DIR / "site.yml")]
    env = dict(os.environ, HARDEN_STATE_DIR=str(lab.dir / "harden-state"))
    return Invocation(argv, env=env)


APPLY_TOOLS = [
    Tool("harden apply", "harden-apply", harden_apply),
    Tool("ansible-playbook apply, pipelining", "ansible-apply",
         ansible_playbook(True, "site.yml"),
         is_ansible=True),
]
APPLY_HARDEN = APPLY_TOOLS[0].name

TOOLS = [
    Tool("OpenSSH floor (ssh + true)", "floor", openssh_floor),
    Tool("paramiko floor (connect + true)", "paramiko-floor", paramiko_floor),
    Tool("OpenSSH + harden probe script", "probe", openssh_probe),
    Tool("harden check", "harden", harden_check, ok_codes=(0, 2)),
    Tool("harden check, openssh transport", "harden-openssh", harden_check_openssh,
         ok_codes=(0, 2)),
    Tool("ansible-playbook, pipelining", "ansible", ansible_playbook(pipelining=True),
         is_ansible=True),
    Tool("ansible-playbook, defaults", "ansible-defaults", ansible_playbook(pipelining=False),
         is_ansible=True, costly=True),
]
FLOOR, HARDEN = TOOLS[0].name, TOOLS[3].name


def ensure_ansible(log: Callable[[str], None]) -> str:
    """Create bench/.venv-ansible with ansible-core on first use and return its version.

    A separate venv keeps ansible-core out of harden's dependencies. The `.gitignore` of `*`
    inside it (what `python -m venv` writes itself from Python 3.13 on) keeps it out of git.
    """
    playbook = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not playbook.exists():
        log(f"creating {ANSIBLE_VENV} with {ANSIBLE_REQUIREMENT} (first run only)")
        subprocess.run([_base_python(), "-m", "venv", str(ANSIBLE_VENV)], check=True)
        (ANSIBLE_VENV / ".gitignore").write_text("*\n")
        subprocess.run([str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", ANSIBLE_REQUIREMENT],
                       check=True)
    out = subprocess.run([str(playbook), "--version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0].strip()


def _base_python() -> str:
    """The interpreter the project venv was made from, so the Ansible venv does not nest in it."""
    return getattr(sys, "_base_executable", sys.executable)
