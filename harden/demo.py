"""`make demo`: the main job on the embedded lab, shown as the commands a user would type.

Each step runs the real `harden` console script in a subprocess, so the demo exercises exactly
what a user gets, and the lab is torn down whatever happens.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

from rich.console import Console
from rich.rule import Rule

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


def run(lab_dir: str, control_planes: int, workers: int) -> None:
    inv = os.path.join(lab_dir, "inventory.ini")
    sudo_inv = os.path.join(lab_dir, "inventory-sudo.ini")
    step("Bring up the lab", ["lab", "up", "--dir", lab_dir, "--control-planes",
                              str(control_planes), "--workers", str(workers)])
    try:
        step("Lab status", ["lab", "status", "--dir", lab_dir])
        step("The inventory as Ansible would see it", ["inventory", "-i", inv, "--graph"])
        step("Reach every node (root, key auth)", ["ping", "-i", inv])
        with open(os.path.join(lab_dir, "become-password")) as fh:
            env = dict(os.environ, HARDEN_BECOME_PASSWORD=fh.read().strip())
        step("Reach every node as a sudo user (become)", ["ping", "-i", sudo_inv], env=env)
    finally:
        step("Tear the lab down", ["lab", "down", "--dir", lab_dir])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, help="where the lab keeps its files")
    parser.add_argument("--control-planes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args(argv)
    run(os.path.abspath(opts.dir), opts.control_planes, opts.workers)


if __name__ == "__main__":
    main()
