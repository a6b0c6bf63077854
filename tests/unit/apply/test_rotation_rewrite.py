"""The rewrite phase's shell, run locally against a scripted `kubectl` (the lab has no object
store): it covers what the config encrypts, a failed `get` fails the task (never hidden behind
an empty `replace`), and the marker that lets `retire` go ahead is written only on success."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harden.apply.playbook import load_playbook
from harden.apply.templating import render_value
from support.paths import REPO

ITEMS = '{\n    "apiVersion": "v1",\n    "items": [\n        {"kind": "Secret", "spec": {"items": []}}\n    ],\n    "kind": "List"\n}'
FINGERPRINT = "f" * 64


def rewrite_script(marker: Path, resources: list[str]) -> str:
    playbook = load_playbook(str(REPO / "playbooks" / "rotate-encryption-key.yml"))
    task, = [t for p in playbook.plays for t in p.tasks
             if t.module == "shell" and "kubectl" in t.args["cmd"]]
    variables = {"rewrite_marker": str(marker),
                 "rotation_target": {"resources": resources,
                                     "current_fingerprint": FINGERPRINT}}
    return render_value(task.args, variables)["cmd"]


def run(tmp_path: Path, names: str = "secret/a", get_rc: int = 0, replace_fails: int = 0,
        resources=("secrets",)) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`kubectl get -o name` prints `names`; `get -o json` prints ITEMS; both exit get_rc;
    `replace` fails `replace_fails` times, then succeeds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    (tmp_path / "items.json").write_text(ITEMS)
    (bin_dir / "kubectl").write_text(f"""#!/bin/sh
echo "$* KUBECONFIG=$KUBECONFIG" >> {log}
case "$1 $5" in
  "get name") printf '%s' '{names}'; exit {get_rc} ;;
  "get json") cat {tmp_path}/items.json; exit {get_rc} ;;
  replace*)
    n=$(cat {tmp_path}/fails 2>/dev/null || echo 0)
    cat > {tmp_path}/replaced
    if [ "$n" -lt {replace_fails} ]; then echo $((n + 1)) > {tmp_path}/fails; exit 1; fi ;;
esac
""")
    (bin_dir / "sleep").write_text("#!/bin/sh\n:\n")
    for tool in ("kubectl", "sleep"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", rewrite_script(tmp_path / "rot" / "marker",
                                                      list(resources))],
                          capture_output=True, text=True, env=env, timeout=30)
    calls = log.read_text().splitlines() if log.exists() else []
    return done, calls


def marker(tmp_path: Path) -> str | None:
    path = tmp_path / "rot" / "marker"
    return path.read_text() if path.exists() else None


def test_objects_are_replaced_with_what_get_returned_and_the_marker_written(tmp_path):
    done, calls = run(tmp_path)
    assert done.returncode == 0 and done.stdout == "rewrote secrets\n", done.stderr
    assert calls == [
        "get secrets --all-namespaces -o name KUBECONFIG=/etc/kubernetes/admin.conf",
        "get secrets --all-namespaces -o json KUBECONFIG=/etc/kubernetes/admin.conf",
        "replace -f - KUBECONFIG=/etc/kubernetes/admin.conf"]
    assert (tmp_path / "replaced").read_text() == ITEMS      # an inner "items": [] is no list end
    assert marker(tmp_path) == FINGERPRINT + "\n"
    assert oct((tmp_path / "rot").stat().st_mode & 0o777) == "0o700"


def test_a_failed_get_fails_the_task_replaces_nothing_and_writes_no_marker(tmp_path):
    done, calls = run(tmp_path, get_rc=1)
    assert done.returncode == 1 and "failed 3 times" in done.stderr
    assert not any(c.startswith("replace") for c in calls) and marker(tmp_path) is None


def test_conflicts_are_retried_with_a_fresh_get(tmp_path):
    done, calls = run(tmp_path, replace_fails=2)
    assert done.returncode == 0
    assert [c.split()[0] for c in calls if "-o json" in c or c.startswith("replace")] == \
        ["get", "replace"] * 3


def test_three_failed_replaces_fail_the_task(tmp_path):
    done, _ = run(tmp_path, replace_fails=3)
    assert done.returncode == 1 and "rewriting secrets failed 3 times" in done.stderr
    assert marker(tmp_path) is None


def test_no_objects_is_not_an_error(tmp_path):
    done, calls = run(tmp_path, names="")
    assert done.returncode == 0 and [c.split()[0] for c in calls] == ["get"]
    assert marker(tmp_path) == FINGERPRINT + "\n"


def test_every_resource_the_config_encrypts_is_rewritten(tmp_path):
    resources = ["secrets", "configmaps"]
    done, calls = run(tmp_path, resources=resources)
    assert done.stdout == "rewrote secrets\nrewrote configmaps\n"
    assert [c.split()[1] for c in calls if "-o json" in c] == resources


def test_a_wildcard_resource_is_refused_before_anything_is_rewritten(tmp_path):
    done, calls = run(tmp_path, resources=["secrets", "*.apps"])
    assert done.returncode == 1 and "'*.apps' (a wildcard)" in done.stderr
    assert calls == [] and marker(tmp_path) is None
