"""`make demo`: the main job on the embedded lab, shown as the commands a user would type.

Each step runs the real `harden` console script in a subprocess, so the demo exercises exactly
what a user gets, and the lab is torn down whatever happens.
"""

from __future__ import annotations

import argparse
import base64
import glob
import json
import os
import shutil
import subprocess
import sys
import time

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from harden.cis.reports.ordering import natural_key

console = Console()


def _harden() -> str:
    """The console script next to this interpreter (the venv's), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "harden")
    return beside if os.path.exists(beside) else (shutil.which("harden") or "harden")


def step(title: str, args: list[str], ok_codes: tuple[int, ...] = (0,), env=None) -> int:
    """Run one harden command, show it and its output, and fail loudly on an unexpected code."""
    console.print(Rule(title))
    console.print(f"[bold]$ harden {' '.join(args)}[/bold]")
    started = time.monotonic()
    code = subprocess.call([_harden(), *args], env=env)
    console.print(f"[dim](exit {code}, {time.monotonic() - started:.1f}s)[/dim]")
    if code not in ok_codes:
        raise SystemExit(f"demo step failed: harden {' '.join(args)} exited {code}")
    return code


def run(lab_dir: str, control_planes: int, workers: int, profile: str = "kubeadm") -> None:
    inv = os.path.join(lab_dir, "inventory.ini")
    sudo_inv = os.path.join(lab_dir, "inventory-sudo.ini")
    reports = os.path.join(lab_dir, "reports")
    os.makedirs(reports, exist_ok=True)
    # Poll health faster than the production default (the lab is quick). The kubelet's sysctls
    # are set live as on a real node: each lab node has its own /proc/sys.
    lab_vars = ["-e", "harden_wait_interval=0.5"]
    env = dict(os.environ, HARDEN_STATE_DIR=os.path.join(lab_dir, "state"))
    step("Bring up the lab", ["lab", "up", "--dir", lab_dir, "--control-planes",
                              str(control_planes), "--workers", str(workers),
                              "--profile", profile])
    try:
        step("Lab status: nodes, services, static pods", ["lab", "status", "--dir", lab_dir])
        step("The inventory as Ansible would see it", ["inventory", "-i", inv, "--graph"])
        with open(os.path.join(lab_dir, "become-password")) as fh:
            sudo_env = dict(env, HARDEN_BECOME_PASSWORD=fh.read().strip())
        step("Reach every node as a sudo user (become)", ["ping", "-i", sudo_inv], env=sudo_env)
        before = os.path.join(reports, "before.json")
        step("CIS check before hardening (one SSH exec per node)",
             ["check", "-i", inv, "--format", "json", "-o", before], ok_codes=(2,), env=env)
        step("What site.yml would change (--check writes nothing)",
             ["apply", "-i", inv, "playbooks/site.yml", "--check", *lab_vars],
             ok_codes=(2,), env=env)
        created = apiserver_pods_created(lab_dir)
        step("Apply site.yml: control planes one at a time, each change health-gated",
             ["apply", "-i", inv, "playbooks/site.yml", *lab_vars], env=env)
        show_restarts(created, apiserver_pods_created(lab_dir))
        step("Apply again: nothing left to change",
             ["apply", "-i", inv, "playbooks/site.yml", *lab_vars], env=env)
        rotate_key(lab_dir, inv, lab_vars, env)
        after = os.path.join(reports, "after.json")
        step("CIS check after hardening", ["check", "-i", inv, "--format", "json", "-o", after],
             ok_codes=(0, 2), env=env)
        html = os.path.join(reports, "report.html")
        step("The same check as a self-contained HTML report",
             ["check", "-i", inv, "--format", "html", "-o", html], ok_codes=(0, 2), env=env)
        step("What changed since the first check (text groups hosts that share a verdict)",
             ["check", "-i", inv, "--compare", before], ok_codes=(0, 2), env=env)
        step("The report, per host", ["check", "-i", inv, "-l", "cp1"], ok_codes=(0, 2), env=env)
        show_comparison(before, after)
        console.print(f"HTML report: [bold]{html}[/bold]")
        step("Run history from the local journal", ["runs"], env=env)
    finally:
        step("Tear the lab down", ["lab", "down", "--dir", lab_dir])


def apiserver_pods_created(lab_dir: str) -> dict[str, int]:
    """Per control plane, how many kube-apiserver pods its lab kubelet has created so far."""
    counts = {}
    for state in sorted(glob.glob(os.path.join(lab_dir, "nodes", "*", "root", "var", "lib",
                                               "kubelet", "harden-lab-pods.json"))):
        node = state.split(os.sep)[-6]
        try:
            with open(state) as fh:
                created = json.load(fh).get("pods_created") or {}
        except (OSError, ValueError):
            continue
        if "kube-apiserver" in created:
            counts[node] = created["kube-apiserver"]
    return counts


def show_restarts(before: dict[str, int], after: dict[str, int]) -> None:
    """site.yml edits kube-apiserver.yaml in three playbooks; it should restart it once."""
    text = ", ".join(f"{node} {after[node] - before.get(node, 0)}" for node in sorted(after))
    console.print(f"kube-apiserver restarts during site.yml (from the lab's pod state): {text}")


def rotate_key(lab_dir: str, inv: str, lab_vars: list[str], env: dict) -> None:
    """Encryption at rest (prepare, enable), then the first two rotation phases: the keys live
    in 0600 vars files (never on a command line) and each phase is checked on every control
    plane before any changes."""
    key_file = write_key_file(os.path.join(lab_dir, "encryption-key.yml"),
                              {"encryption_key": new_key()})
    new_key_file = write_key_file(os.path.join(lab_dir, "new-encryption-key.yml"),
                                  {"new_encryption_key_name": "key2",
                                   "new_encryption_key": new_key()})
    step("Encryption at rest, prepare: every API server can read the key (from a 0600 file)",
         ["apply", "-i", inv, "playbooks/encryption-at-rest.yml", "-e", f"@{key_file}",
          *lab_vars], env=env)
    step("Encryption at rest, enable: now the key encrypts new writes",
         ["apply", "-i", inv, "playbooks/encryption-at-rest.yml", "-e", f"@{key_file}",
          "-e", "encryption_phase=enable", *lab_vars], env=env)
    for phase in ("stage", "promote"):
        step(f"Key rotation, phase {phase} (all control planes checked before any changes)",
             ["apply", "-i", inv, "playbooks/rotate-encryption-key.yml", "-e", f"@{new_key_file}",
              "-e", f"rotation_phase={phase}", *lab_vars], env=env)


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def write_key_file(path: str, variables: dict) -> str:
    """A fresh 0600 file for the fresh lab: a stale file, or a symlink in its place, is
    removed rather than written through or left with its old mode."""
    if os.path.lexists(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(variables, handle)
    return path


def show_comparison(before_path: str, after_path: str) -> None:
    """Scored FAILs per host before and after: the point of the whole exercise, in one table."""
    with open(before_path) as fh:
        before = json.load(fh)
    with open(after_path) as fh:
        after = json.load(fh)
    table = Table(title="Scored CIS failures, before → after")
    for column in ("host", "before", "after", "still failing"):
        table.add_column(column)
    for host in sorted(before["summary"]):
        fails = {side: sorted((r["id"] for r in doc["results"]
                               if r["host"] == host and r["scored"] and r["status"] == "FAIL"),
                              key=natural_key)
                 for side, doc in (("before", before), ("after", after))}
        table.add_row(host, str(len(fails["before"])), str(len(fails["after"])),
                      " ".join(fails["after"]) or "-")
    console.print(Rule("Before and after"))
    console.print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, help="where the lab keeps its files")
    parser.add_argument("--control-planes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", choices=("kubeadm", "weak"), default="kubeadm")
    opts = parser.parse_args(argv)
    run(os.path.abspath(opts.dir), opts.control_planes, opts.workers, opts.profile)


if __name__ == "__main__":
    main()
