"""File checks judge what a component opening the path meets: a symlink's target (the kubelet and
the components use os.Stat, which follows links), and a symlinked PKI directory is descended into.
Each test builds a node tree, runs the real probe script over it and evaluates the catalogue."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harden.cis.catalogue import load_catalogue
from harden.cis.evaluate import evaluate_host
from harden.cis.probe import Facts, build_probe_script, parse_probe_output

NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def put(root: Path, path: str, text: str = "x\n", mode: int = 0o600) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)
    return target


def link(root: Path, path: str, to: str) -> Path:
    """A relative symlink, so it resolves inside the test tree as an absolute one does on a node."""
    where = root / path.lstrip("/")
    where.parent.mkdir(parents=True, exist_ok=True)
    where.symlink_to(to)
    return where


def probe(root: Path) -> Facts:
    done = subprocess.run(["sh", "-c", build_probe_script(str(root))], capture_output=True, text=True,
                          env=dict(os.environ, PATH="/usr/bin:/bin"), timeout=60)
    assert done.returncode == 0, done.stderr
    return parse_probe_output(done.stdout)


def verdicts(root: Path, catalogue) -> dict:
    return {r.id: r for r in evaluate_host("node", probe(root), catalogue, "control-plane")}


MANIFESTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def test_symlinked_manifest_is_judged_by_its_target_and_the_link_is_shown(tmp_path, catalogue):
    put(tmp_path, "/srv/manifests/kube-apiserver.yaml", "kind: Pod\n", 0o600)
    link(tmp_path, "/etc/kubernetes/manifests/kube-apiserver.yaml", "../../../srv/manifests/kube-apiserver.yaml")
    result = verdicts(tmp_path, catalogue)["1.1.1"]
    assert result.status == "PASS", result.actual       # the link's own 777 does not count
    assert result.actual == ("/etc/kubernetes/manifests/kube-apiserver.yaml -> "
                             "../../../srv/manifests/kube-apiserver.yaml: 600")


def test_symlink_to_a_loose_file_fails_the_mode_check(tmp_path, catalogue):
    put(tmp_path, "/srv/scheduler.yaml", "kind: Pod\n", 0o644)
    link(tmp_path, "/etc/kubernetes/manifests/kube-scheduler.yaml", "../../../srv/scheduler.yaml")
    result = verdicts(tmp_path, catalogue)["1.1.5"]
    assert result.status == "FAIL"
    assert result.actual == "/etc/kubernetes/manifests/kube-scheduler.yaml -> ../../../srv/scheduler.yaml: 644"


@needs_root
def test_symlink_to_a_file_owned_by_another_user_fails_the_owner_check(tmp_path, catalogue):
    target = put(tmp_path, "/srv/admin.conf", "kind: Config\n", 0o600)
    os.chown(target, NOBODY, NOBODY)
    link(tmp_path, "/etc/kubernetes/admin.conf", "../../srv/admin.conf")
    result = verdicts(tmp_path, catalogue)["1.1.14"]
    assert result.status == "FAIL"
    assert "/etc/kubernetes/admin.conf -> ../../srv/admin.conf: nobody:" in result.actual


def test_dangling_symlink_counts_as_missing_and_says_where_it_leads(tmp_path, catalogue):
    link(tmp_path, "/etc/kubernetes/scheduler.conf", "../../srv/gone.conf")
    result = verdicts(tmp_path, catalogue)["1.1.15"]
    assert result.status == "FAIL"
    assert result.actual == "not found: /etc/kubernetes/scheduler.conf -> ../../srv/gone.conf (leads nowhere)"


def _symlinked_pki(root: Path) -> None:
    for name, mode in (("ca.crt", 0o644), ("ca.key", 0o600), ("etcd/peer.key", 0o600)):
        put(root, f"/srv/pki/{name}", "pem\n", mode)
    link(root, "/etc/kubernetes/pki", "../../srv/pki")


def test_symlinked_pki_directory_is_descended_into(tmp_path, catalogue):
    _symlinked_pki(tmp_path)
    put(tmp_path, "/srv/pki/sa.key", "pem\n", 0o644)
    results = verdicts(tmp_path, catalogue)
    assert results["1.1.21"].status == "WARN"      # CIS Manual: a failing test is WARN
    assert results["1.1.21"].actual == "1 of 3 files fail: /etc/kubernetes/pki/sa.key: 644"
    assert results["1.1.20"].status == "PASS"
    assert results["1.1.20"].actual == "/etc/kubernetes/pki/ca.crt: 644"


@needs_root
def test_non_root_key_inside_a_symlinked_pki_directory_fails_the_owner_check(tmp_path, catalogue):
    _symlinked_pki(tmp_path)
    os.chown(tmp_path / "srv/pki/etcd/peer.key", NOBODY, NOBODY)
    result = verdicts(tmp_path, catalogue)["1.1.19"]
    assert result.status == "FAIL"
    assert "/etc/kubernetes/pki/etcd/peer.key: nobody:" in result.actual


def test_symlinked_key_inside_the_pki_directory_is_a_key(tmp_path, catalogue):
    put(tmp_path, "/etc/kubernetes/pki/ca.crt", "pem\n", 0o644)
    put(tmp_path, "/srv/keys/apiserver.key", "pem\n", 0o640)
    link(tmp_path, "/etc/kubernetes/pki/apiserver.key", "../../../srv/keys/apiserver.key")
    result = verdicts(tmp_path, catalogue)["1.1.21"]
    assert result.status == "WARN"                  # CIS Manual: a failing test is WARN
    assert result.actual == "/etc/kubernetes/pki/apiserver.key -> ../../../srv/keys/apiserver.key: 640"


def test_links_looping_inside_the_pki_directory_end_the_walk(tmp_path, catalogue):
    _symlinked_pki(tmp_path)
    link(tmp_path, "/srv/pki/again", ".")                  # a link back to its own directory
    link(tmp_path, "/srv/pki/self.key", "self.key")        # a link to itself: leads nowhere
    facts = probe(tmp_path)
    assert "/etc/kubernetes/pki/again/ca.key" not in facts.stats     # links below the root are not followed
    assert facts.dangling["/etc/kubernetes/pki/self.key"] == "self.key"
    result = {r.id: r for r in evaluate_host("node", facts, catalogue, "control-plane")}["1.1.21"]
    assert result.status == "PASS" and result.actual.startswith("all 2 files pass")
