"""Does a change leave `harden check` verdicts alone? A git ref's reports against this tree.

Speed work on the probe or a transport must not change a single verdict. This starts one lab per
profile, runs `harden check --format json` with the code of a base ref (default `main`, extracted
with `git archive` into a temp dir) and with this working tree, over each transport, and compares
the reports with only the run id taken out; it also compares every node's probe facts as each
version gathers and parses them (finer than the report: a stat no check reads yet still shows).
Exit 0 when every pair is identical, 1 otherwise (the differences printed). Needs root, like the
lab.

usage: bench/same_report.py [--base REF] [--nodes N] [--profiles kubeadm,weak]
                            [--transports paramiko,openssh] [--apply PLAYBOOK]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harden.lab import cluster  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="git ref to compare with (default main)")
    parser.add_argument("--nodes", type=int, default=3,
                        help="lab size, one control plane per three nodes (default 3)")
    parser.add_argument("--profiles", default="kubeadm,weak",
                        help="lab profiles, comma-separated (default kubeadm,weak)")
    parser.add_argument("--transports", default="paramiko,openssh")
    parser.add_argument("--apply", metavar="PLAYBOOK", default=None,
                        help="apply this playbook (e.g. playbooks/site.yml) to each lab first, "
                             "so the files hardening adds (audit policy, encryption config) "
                             "are probed too")
    return parser.parse_args(argv)


def extract(ref: str, into: Path) -> Path:
    """The tree of `ref` (only harden/, which is all `harden check` runs)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "harden"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def report(code: Path, inventory: Path, transport: str, out: Path) -> dict:
    """One check with the harden package found under `code`; the report without its run id."""
    argv = [sys.executable, "-c", "import sys; from harden.cli import main; sys.exit(main())",
            "check", "-i", str(inventory), "--format", "json", "-o", str(out),
            "--transport", transport]
    done = subprocess.run(argv, cwd=str(code), capture_output=True, text=True,
                          env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin",
                               "HARDEN_STATE_DIR": str(out.parent / "state")})
    if done.returncode not in (0, 2):
        raise SystemExit(f"check with {code} failed ({done.returncode}): {done.stderr[-500:]}")
    data = json.loads(out.read_text())
    data.pop("run_id", None)
    return data


FACTS = """
import dataclasses, json, sys
from harden.cis.probe import gather_facts
from harden.ssh.settings import resolve_targets
from harden.ssh.transport import connect
hosts, specs = resolve_targets([sys.argv[1]], None, warn=lambda line: None)
out = {}
for host in hosts:
    with connect(specs[host.name]) as session:
        out[host.name] = dataclasses.asdict(gather_facts(session, host.name))
print(json.dumps(out, sort_keys=True,
                 default=lambda o: sorted(o) if isinstance(o, (set, frozenset)) else repr(o)))
"""


def facts(code: Path, inventory: Path) -> dict:
    """Every node's Facts as the probe of `code` gathers and parses them: finer than the report
    (a stat no check reads yet still shows)."""
    done = subprocess.run([sys.executable, "-c", FACTS, str(inventory)], cwd=str(code),
                          capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout)


def only_shared(facts_of: dict, other: dict) -> dict:
    """`facts_of` without the Facts fields `other`'s version does not have, where they are
    empty: a field one version added (Facts.unread) differs only when it holds something."""
    return {host: {k: v for k, v in fields.items() if v or k in other.get(host, {})}
            for host, fields in facts_of.items()}


def same(what: str, before: dict, after: dict, detail: str) -> bool:
    if before == after:
        print(f"{what}: identical ({detail})")
        return True
    print(f"{what}: DIFFERENT")
    print("".join(difflib.unified_diff(
        json.dumps(before, indent=1, sort_keys=True).splitlines(True),
        json.dumps(after, indent=1, sort_keys=True).splitlines(True), "before", "after", n=2)))
    return False


def apply(playbook: str, inventory: Path) -> None:
    """Harden the lab first (its own journal in the lab dir, not the user's)."""
    done = subprocess.run([sys.executable, "-m", "harden.cli", "apply", "-i", str(inventory),
                           playbook], cwd=str(REPO), capture_output=True, text=True,
                          env={**os.environ, "HARDEN_STATE_DIR": str(inventory.parent / "state")})
    if done.returncode != 0:
        raise SystemExit(f"apply {playbook} failed ({done.returncode}): {done.stdout[-800:]}")


def compare(profile: str, nodes: int, base: Path, transports: list[str], work: Path,
            playbook: str | None = None) -> bool:
    lab_dir = Path(tempfile.mkdtemp(prefix="hb-same-"))
    control_planes = max(1, nodes // 3)
    try:
        cluster.up(lab_dir, control_planes=control_planes, workers=nodes - control_planes,
                   profile=profile)
        cluster.wait_ready(lab_dir, timeout=60)
        inventory = lab_dir / "inventory.ini"
        if playbook:
            apply(playbook, inventory)
        before, after = facts(base, inventory), facts(REPO, inventory)
        ok = [same(f"{profile}, facts", before, only_shared(after, before), f"{nodes} nodes")]
        for transport in transports:
            after = report(REPO, inventory, transport, work / "after.json")
            ok.append(same(f"{profile}, report over {transport}",
                           report(base, inventory, transport, work / "before.json"), after,
                           f"{len(after.get('results', []))} results"))
        return all(ok)
    finally:
        cluster.down(lab_dir)
        shutil.rmtree(lab_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="hb-base-") as tmp:
        (Path(tmp) / "code").mkdir()
        base = extract(args.base, Path(tmp) / "code")
        work = Path(tmp) / "reports"
        work.mkdir()
        ok = [compare(p, args.nodes, base, args.transports.split(","), work, args.apply)
              for p in args.profiles.split(",")]
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
