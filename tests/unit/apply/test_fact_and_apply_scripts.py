"""Helpers for the module tests ("facts in → changes out"), plus the local round trip.

The round-trip tests run the real fact script and apply script with the local `sh` on a
temporary tree (no SSH): they prove the node-side shell works, backs up before writing, leaves
no temp file behind and that a second plan over re-gathered facts is empty.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


from harden.apply.facts import FILE, GLOB, FactRequest, Facts, FileState
from harden.apply.modules import get_module
from support.modules import (apply_local, file_state, gather_isolated, gather_local, make_facts, manifest_text, plan)

def test_round_trip_template_and_manifest(tmp_path):
    """Gather → plan → apply → re-gather → plan is empty; backup holds the original."""
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    apiserver = manifests / "kube-apiserver.yaml"
    apiserver.write_bytes(manifest_text("kube-apiserver.yaml"))
    os.chmod(apiserver, 0o600)
    policy = str(tmp_path / "etc/kubernetes/audit dir/policy.yaml")
    Path(policy).parent.mkdir()             # template, as Ansible's, makes no directory
    tasks = [
        ("template", {"src": "audit-policy.yaml.j2", "dest": policy, "mode": "0600"}),
        ("static_pod", {"manifest": str(apiserver),
                        "volumes": [{"name": "audit", "host_path": str(Path(policy).parent),
                                     "type": "DirectoryOrCreate"}],
                        "set": {"audit-policy-file": policy, "profiling": False},
                        "config_hash_files": [policy]}),
    ]
    requests = [r for name, args in tasks
                for r in get_module(name).facts_needed(get_module(name).validate(args))]
    facts = gather_local(requests)
    changes = []
    for name, args in tasks:
        planned = plan(name, args, facts)
        assert planned, name
        for change in planned:
            change.record_in(facts)
        changes += planned
    backups = tmp_path / "backups"
    apply_local(changes, "run-1", backups)

    assert [p.name for p in manifests.iterdir()] == ["kube-apiserver.yaml"]   # no temp left
    assert stat.S_IMODE(apiserver.stat().st_mode) == 0o600
    saved = backups / "run-1" / "files" / str(apiserver).lstrip("/")
    assert saved.read_bytes() == manifest_text("kube-apiserver.yaml")
    index = (backups / "run-1" / "index").read_text().splitlines()
    kinds = {line.split("\t")[5]: line.split("\t")[0] for line in index}
    assert kinds[str(apiserver)] == "file"
    assert kinds[policy] == "absent"
    assert str(Path(policy).parent) not in kinds        # template made no directory
    assert stat.S_IMODE((backups / "run-1").stat().st_mode) == 0o700
    assert "--profiling=false" in apiserver.read_text()
    for path in (backups / "run-1").rglob("*"):          # as documented: dirs 0700, records 0600
        if path.is_dir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for name in ("index", "after-partial"):
        assert stat.S_IMODE((backups / "run-1" / name).stat().st_mode) == 0o600, name

    again = gather_local(requests)
    assert [c for name, args in tasks for c in plan(name, args, again)] == []


def test_round_trip_file_modes_and_glob(tmp_path):
    pki = tmp_path / "pki"
    (pki / "etcd").mkdir(parents=True)
    for name, mode in (("ca.key", 0o644), ("ca.crt", 0o666), ("etcd/peer.key", 0o400)):
        (pki / name).write_text(name)
        os.chmod(pki / name, mode)
    args = {"path": str(pki), "recurse": True, "match": "*.key", "mode_max": "0600"}
    requests = get_module("file").facts_needed(get_module("file").validate(args))
    assert requests[0].kind == GLOB
    facts = gather_local(requests)
    changes = plan("file", args, facts)
    assert [c.path for c in changes] == [str(pki / "ca.key")]   # 0400 key stays 0400
    apply_local(changes, "run-2", tmp_path / "backups")
    assert stat.S_IMODE((pki / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((pki / "etcd/peer.key").stat().st_mode) == 0o400
    assert plan("file", args, gather_local(requests)) == []


def test_fact_script_reports_absent_and_content(tmp_path):
    present = tmp_path / "a.txt"
    present.write_bytes(b"hello\n")
    os.chmod(present, 0o640)
    requests = [get_module("copy").facts_needed({"dest": str(present)})[0],
                get_module("copy").facts_needed({"dest": str(tmp_path / "nope")})[0]]
    facts = gather_local(requests)
    state = facts.file(str(present), content=True)
    assert (state.kind, state.mode, state.owner, state.content) == ("file", 0o640, "root",
                                                                   b"hello\n")
    assert facts.file(str(tmp_path / "nope")) is None
    assert requests[0].kind == FILE


def test_fact_script_glob_with_content(tmp_path):
    """The sysctl module reads every sysctl.d file in the one fact exec of its play."""
    (tmp_path / "10-a.conf").write_bytes(b"kernel.panic = 0\n")
    (tmp_path / "99-b.conf").write_bytes(b"")
    (tmp_path / "README").write_bytes(b"not matched")
    pattern = f"{tmp_path}/*.conf"
    facts = gather_local([FactRequest(GLOB, pattern, content=True)])
    found = {s.path: s.content for s in facts.glob(pattern)}
    assert found == {str(tmp_path / "10-a.conf"): b"kernel.panic = 0\n",
                     str(tmp_path / "99-b.conf"): b""}
    assert facts.file(str(tmp_path / "10-a.conf"), content=True).content == b"kernel.panic = 0\n"


def test_fact_script_sysctl_and_kubelet_without_a_kubelet(tmp_path):
    from harden.apply.facts import KUBELET, SYSCTL, FactRequest
    config = tmp_path / "config.yaml"
    config.write_text("kind: KubeletConfiguration\n")
    requests = [FactRequest(SYSCTL, "kernel.ostype"), FactRequest(SYSCTL, "kernel.no_such_key"),
                FactRequest(KUBELET, str(config), content=True)]
    facts = gather_isolated(requests)
    assert facts.sysctl("kernel.ostype") == "Linux"
    assert facts.sysctl("kernel.no_such_key") is None
    kubelet = facts.kubelet()
    assert kubelet.argv is None and kubelet.config_path == str(config)
    assert facts.file(str(config), content=True).content == b"kind: KubeletConfiguration\n"


def test_requests_merge_and_overlays_keep_content():
    from harden.apply.facts import FactNotGathered, FactRequest, merge_requests
    merged = merge_requests([FactRequest(FILE, "/a"), FactRequest(FILE, "/a", content=True),
                             FactRequest(GLOB, "/b/*"), FactRequest(GLOB, "/b/*", recurse=True)])
    assert [(r.kind, r.target, r.content, r.recurse) for r in merged] == [
        (FILE, "/a", True, False), (GLOB, "/b/*", False, False), (GLOB, "/b/*", False, True)]
    facts = make_facts(file_state("/etc/a", b"bytes", 0o644))
    facts.globs[("/etc/*", False)] = ["/etc/a"]
    facts.set_file("/etc/a", FileState("/etc/a", "file", 0o600, "root", "root"))   # a chmod
    assert facts.file("/etc/a", content=True).content == b"bytes"
    facts.set_file("/etc/b", FileState("/etc/b", "file", 0o600, "root", "root", b""))
    assert [s.path for s in facts.glob("/etc/*")] == ["/etc/a", "/etc/b"]
    try:
        facts.file("/etc/unknown")
    except FactNotGathered as exc:
        assert exc.request.target == "/etc/unknown"
    else:
        raise AssertionError("a fact nobody gathered must be asked for")
    later = Facts()
    later.files["/etc/unknown"] = None
    later.files["/etc/a"] = FileState("/etc/a", "file", 0o644, "root", "root")
    facts.merge(later)
    assert facts.file("/etc/unknown") is None and facts.file("/etc/a").mode == 0o600


def test_one_script_writes_a_manifest_edited_by_several_tasks_once(tmp_path):
    """Three tasks of one play editing kube-apiserver.yaml: the kubelet watching the directory
    must see one new manifest (one restart), the backup still holds the original."""
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    apiserver = manifests / "kube-apiserver.yaml"
    original = manifest_text("kube-apiserver.yaml")
    apiserver.write_bytes(original)
    os.chmod(apiserver, 0o640)
    facts = make_facts(file_state(str(apiserver), original, 0o640))
    changes = []
    for flags in ({"profiling": False}, {"audit-log-maxage": 30}, {"request-timeout": "60s"}):
        planned = plan("static_pod", {"manifest": str(apiserver), "set": flags}, facts)
        for change in planned:
            change.record_in(facts)
        changes += planned
    assert len(changes) == 3
    from harden.apply.modules.base import apply_script
    script = apply_script(changes, "run-9", str(tmp_path / "backups"))
    assert script.count("\nhb_write ") == 1 and script.count("\nhb_backup ") == 2
    apply_local(changes, "run-9", tmp_path / "backups")
    text = apiserver.read_text()
    assert all(f in text for f in ("--profiling=false", "--audit-log-maxage=30",
                                   "--request-timeout=60s"))
    assert stat.S_IMODE(apiserver.stat().st_mode) == 0o640
    backup = tmp_path / "backups" / "run-9" / "files" / str(apiserver).lstrip("/")
    assert backup.read_bytes() == original
