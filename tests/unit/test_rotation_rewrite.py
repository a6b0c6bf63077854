"""The rewrite phase's shell, run locally against a scripted `kubectl` (the lab has no object
store): a failed `get` must fail the task, never hide behind an empty `replace`."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harden.playbook import load_playbook
from harden.templating import render_value

REPO = Path(__file__).resolve().parents[2]
ITEMS = '{"apiVersion": "v1", "items": [{"kind": "Secret"}], "kind": "List"}'
EMPTY = '{\n    "apiVersion": "v1",\n    "items": [],\n    "kind": "List"\n}'


def rewrite_script(resources=None) -> str:
    playbook = load_playbook(str(REPO / "playbooks" / "rotate-encryption-key.yml"))
    task, = [t for p in playbook.plays for t in p.tasks if t.module == "command"]
    variables = {} if resources is None else {"encryption_resources": resources}
    return render_value(task.args, variables)["cmd"]


def run(tmp_path: Path, get_output: str, get_rc: int = 0, replace_fails: int = 0,
        resources=None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """`kubectl get` prints get_output / exits get_rc; `replace` fails `replace_fails` times."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls"
    (bin_dir / "kubectl").write_text(f"""#!/bin/sh
echo "$* KUBECONFIG=$KUBECONFIG" >> {log}
case "$1" in
  get) printf '%s\\n' '{get_output}'; exit {get_rc} ;;
  replace)
    n=$(cat {tmp_path}/fails 2>/dev/null || echo 0)
    cat > {tmp_path}/replaced
    if [ "$n" -lt {replace_fails} ]; then echo $((n + 1)) > {tmp_path}/fails; exit 1; fi ;;
esac
""")
    (bin_dir / "sleep").write_text("#!/bin/sh\n:\n")
    for tool in ("kubectl", "sleep"):
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", rewrite_script(resources)], capture_output=True,
                          text=True, env=env, timeout=30)
    calls = log.read_text().splitlines() if log.exists() else []
    return done, calls


def test_objects_are_replaced_with_what_get_returned(tmp_path):
    done, calls = run(tmp_path, ITEMS)
    assert done.returncode == 0 and done.stdout == "rewrote secrets\n"
    assert calls == ["get secrets --all-namespaces -o json KUBECONFIG=/etc/kubernetes/admin.conf",
                     "replace -f - KUBECONFIG=/etc/kubernetes/admin.conf"]
    assert (tmp_path / "replaced").read_text() == ITEMS


def test_a_failed_get_fails_the_task_and_replaces_nothing(tmp_path):
    done, calls = run(tmp_path, "", get_rc=1)
    assert done.returncode == 1 and "failed 3 times" in done.stderr
    assert not any(c.startswith("replace") for c in calls)


def test_conflicts_are_retried_with_a_fresh_get(tmp_path):
    done, calls = run(tmp_path, ITEMS, replace_fails=2)
    assert done.returncode == 0
    assert [c.split()[0] for c in calls] == ["get", "replace"] * 3


def test_three_failed_replaces_fail_the_task(tmp_path):
    done, _ = run(tmp_path, ITEMS, replace_fails=3)
    assert done.returncode == 1 and "rewriting secrets failed 3 times" in done.stderr


def test_no_objects_is_not_an_error(tmp_path):
    done, calls = run(tmp_path, EMPTY)
    assert done.returncode == 0 and [c.split()[0] for c in calls] == ["get"]


def test_every_listed_resource_is_rewritten(tmp_path):
    resources = ["secrets", "configmaps"]
    done, calls = run(tmp_path, ITEMS, resources=resources)
    assert done.stdout == "rewrote secrets\nrewrote configmaps\n"
    assert [c.split()[1] for c in calls if c.startswith("get")] == resources
