"""The rewrite's shell (encryption_census with rewrite: true), run locally against a scripted
`ps`, `etcdctl` (key ranges and pages as etcd serves them) and `kubectl` that keep a tiny etcd
in a file: it rewrites only what is off
its primary key, measures again after every pass, retries what conflicted, and fails when
passes run out; progress is printed, values never are. The real thing runs in
tests/integration/test_rotation.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from harden.apply.modules.encryption_census import rewrite_script

PRIMARY = {"secrets": "aescbc:key2", "configmaps": "identity", "nodes": "aescbc:key2",
           "widgets.example.com": "aescbc:key2"}
# where kube-apiserver stores each of them: kubectl names a resource, etcd keys its directory
STORED_IN = {"secrets": "/registry/secrets/", "configmaps": "/registry/configmaps/",
             "nodes": "/registry/minions/", "widgets.example.com": "/registry/example.com/widgets/"}


def fake_node(tmp_path: Path, stored: dict[str, str], conflicts: int = 0) -> dict[str, str]:
    """A fake root with the API server's cmdline, and PATH shims. `stored`: etcd key -> tag."""
    root = tmp_path / "root"
    (root / "proc/4242").mkdir(parents=True)
    (root / "proc/4242/cmdline").write_bytes(
        b"kube-apiserver\0--etcd-servers=https://127.0.0.1:2379\0--etcd-cafile=/ca\0")
    state = tmp_path / "etcd.json"
    state.write_text(json.dumps(stored))
    (tmp_path / "conflicts").write_text(str(conflicts))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shims = {
        "ps": "echo '4242 kube-apiserver --etcd-servers=https://127.0.0.1:2379'",
        "etcdctl": f"exec python3 {tmp_path}/etcd.py \"$@\"",
        "kubectl": f"exec python3 {tmp_path}/kubectl.py \"$@\"",
    }
    for name, body in shims.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    (tmp_path / "etcd.py").write_text(f"""
import base64, json, sys
stored = json.load(open({str(state)!r}))
def value(tag):
    if tag == "identity":
        return b'{{"kind":"Secret","data":{{"password":"hunter2"}}}}'
    kind, key = tag.split(":")
    return f"k8s:enc:{{kind}}:v1:{{key}}:".encode() + bytes(range(40))
args = sys.argv[sys.argv.index("get") + 1:]
start, end = [a for a in args if not a.startswith("-")][:2]
limit = int(next(a for a in args if a.startswith("--limit=")).split("=")[1])
keys = sorted(k for k in stored if start <= k < end)
kvs = [{{"key": base64.b64encode(k.encode()).decode(), "mod_revision": 3,
        "value": base64.b64encode(value(stored[k])).decode()}} for k in keys[:limit]]
page = {{"header": {{"revision": 9}}, "kvs": kvs, "count": len(keys)}}
if len(keys) > limit:
    page["more"] = True
print(json.dumps(page))
""")
    (tmp_path / "kubectl.py").write_text(f"""
import json, sys
args = sys.argv[1:]
open({str(tmp_path / 'calls')!r}, "a").write(" ".join(args) + "\\n")
stored = json.load(open({str(state)!r}))
primary = {PRIMARY!r}
stored_in = {STORED_IN!r}
def resource(key):
    return next(name for name, where in stored_in.items() if key.startswith(where))
if args[0] == "get":
    if args[1] not in stored_in:
        print("error: the server has no resource type " + args[1], file=sys.stderr)
        sys.exit(1)
    print(json.dumps({{"kind": "List", "items": [k for k in stored if resource(k) == args[1]]}}))
elif args[0] == "replace":
    listed = json.loads(sys.stdin.read())["items"]
    left = int(open({str(tmp_path / 'conflicts')!r}).read())
    conflicted = False
    for key in listed:
        if left > 0:
            left -= 1
            conflicted = True
            continue
        stored[key] = primary[resource(key)]
    open({str(tmp_path / 'conflicts')!r}, "w").write(str(left))
    json.dump(stored, open({str(state)!r}, "w"))
    sys.exit(1 if conflicted else 0)
""")
    # two keys a page: every measure adds counts over several pages, as on a large cluster
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HARDEN_CENSUS_ROOT": str(root), "LC_ALL": "C",
            "HARDEN_CENSUS_PAGE": "2"}


def run(tmp_path: Path, stored: dict[str, str], conflicts: int = 0, passes: int = 5):
    env = fake_node(tmp_path, stored, conflicts)
    done = subprocess.run(["sh", "-c", rewrite_script(PRIMARY, passes)], env=env,
                          capture_output=True, text=True, timeout=60)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return done, calls, json.loads((tmp_path / "etcd.json").read_text())


def test_only_resources_off_their_primary_key_are_rewritten_until_none_is_left(tmp_path):
    done, calls, stored = run(tmp_path, {
        "/registry/secrets/a/one": "aescbc:key1", "/registry/secrets/a/two": "aescbc:key2",
        "/registry/configmaps/a/c": "identity"})
    assert done.returncode == 0, done.stderr
    assert set(stored.values()) == {"aescbc:key2", "identity"}
    assert calls == ["get secrets --all-namespaces -o json", "replace -f -"]
    assert "pass 1: 1 of 3 objects not under their primary key; rewriting secrets" in done.stdout
    assert "pass 2: all 3 objects under their primary key" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr


def test_conflicts_are_measured_again_and_retried(tmp_path):
    done, calls, stored = run(tmp_path, {f"/registry/secrets/a/s{i}": "aescbc:key1"
                                         for i in range(3)}, conflicts=2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pass 1: some secrets changed meanwhile (conflict)" in done.stdout
    assert calls.count("replace -f -") == 2
    assert set(stored.values()) == {"aescbc:key2"}


def test_objects_still_off_primary_after_the_last_pass_fail_the_task(tmp_path):
    done, _, stored = run(tmp_path, {"/registry/secrets/a/s": "aescbc:key1"}, conflicts=99,
                          passes=2)
    assert done.returncode == 1
    assert "after 2 passes 1 of 1 objects are still not under their primary key" in done.stderr
    assert stored == {"/registry/secrets/a/s": "aescbc:key1"}


def test_nothing_off_primary_means_no_kubectl_call(tmp_path):
    done, calls, _ = run(tmp_path, {"/registry/secrets/a/s": "aescbc:key2"})
    assert done.returncode == 0 and calls == []


def test_etcd_that_cannot_be_read_fails_the_rewrite_instead_of_counting_nothing(tmp_path):
    env = fake_node(tmp_path, {"/registry/secrets/a/s": "aescbc:key1"})
    shim = Path(env["PATH"].split(":")[0]) / "etcdctl"
    shim.write_text("#!/bin/sh\necho 'Error: context deadline exceeded' >&2\nexit 1\n")
    for tool in ("sh", "awk", "tr", "head", "base64", "cat", "sleep"):   # no curl, no crictl
        (shim.parent / tool).symlink_to(shutil.which(tool))
    env["PATH"] = str(shim.parent)
    done = subprocess.run(["sh", "-c", rewrite_script(PRIMARY, 3)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "etcd could not be read: etcdctl: Error: context deadline exceeded" in done.stderr
    assert "under their primary key" not in done.stdout


def test_resources_stored_under_other_directories_are_rewritten_by_their_names(tmp_path):
    done, calls, stored = run(tmp_path, {
        "/registry/minions/node-1": "identity", "/registry/minions/node-2": "aescbc:key2",
        "/registry/example.com/widgets/ns/w": "aescbc:key1", "/registry/secrets/a/s": "aescbc:key2"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(c for c in calls if c.startswith("get")) == [
        "get nodes --all-namespaces -o json", "get widgets.example.com --all-namespaces -o json"]
    assert set(stored.values()) == {"aescbc:key2"}
    assert "pass 2: all 4 objects under their primary key" in done.stdout


def test_a_resource_kubectl_cannot_get_fails_the_rewrite_instead_of_retrying_it(tmp_path):
    primary = dict(PRIMARY, gadgets="aescbc:key2")
    env = fake_node(tmp_path, {"/registry/secrets/a/s": "aescbc:key1"})
    script = rewrite_script(primary, 3).replace('rewriting $*"', 'rewriting $*"; set -- gadgets')
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "pass 1: kubectl get gadgets failed: nothing of it can be rewritten" in done.stderr
