"""Rollback planning: what is restored first, what is removed last, which restarts follow."""

from __future__ import annotations

from harden.runs.journal import BackupEntry
from harden.apply.rollback import NodeRun, parse_probe, restarts_for, restore_order


def entry(kind: str, path: str, sha: str = "-") -> BackupEntry:
    return BackupEntry(kind, "600" if kind != "absent" else "-", "0", "0", sha, path)


def test_manifests_come_back_first_and_created_paths_go_deepest_first():
    entries = [entry("file", "/etc/kubernetes/audit.yaml", "a"),
               entry("dir", "/etc/kubernetes"),
               entry("file", "/etc/kubernetes/manifests/kube-apiserver.yaml", "b"),
               entry("absent", "/etc/kubernetes/new"),
               entry("absent", "/etc/kubernetes/new/deeper/file"),
               entry("absent", "/etc/kubernetes/new/deeper"),
               entry("file", "/etc/kubernetes/manifests/.hidden", "c")]
    existed, created = restore_order(entries)
    assert [e.path for e in existed] == ["/etc/kubernetes/manifests/kube-apiserver.yaml",
                                         "/etc/kubernetes/audit.yaml",
                                         "/etc/kubernetes/manifests/.hidden",
                                         "/etc/kubernetes"]
    assert [e.path for e in created] == ["/etc/kubernetes/new/deeper/file",
                                         "/etc/kubernetes/new/deeper", "/etc/kubernetes/new"]


def test_kubelet_files_bring_a_kubelet_restart_and_dropins_a_daemon_reload():
    assert restarts_for(["/etc/kubernetes/audit.yaml"]) == []
    [restart] = restarts_for(["/var/lib/kubelet/config.yaml"])
    assert (restart.name, restart.verb, restart.daemon_reload) == ("kubelet", "restart", False)
    [restart] = restarts_for(["/etc/systemd/system/kubelet.service.d/20-x.conf"],
                             [{"name": "kubelet", "verb": "restart"}])
    assert restart.daemon_reload and restart.command().splitlines() == [
        "systemctl daemon-reload", "systemctl restart kubelet"]


def test_changed_since_compares_with_what_the_run_left():
    probe = "\n".join([
        "@@harden-rb index", "file\t600\t0\t0\told\t/a", "absent\t-\t-\t-\t-\t/b",
        "file\t644\t0\t0\told\t/c",
        "@@harden-rb after", "file\t600\t0\t0\tnew\t/a", "file\t644\t0\t0\tnew\t/b",
        "file\t644\t0\t0\tnew\t/c",
        "@@harden-rb record",
        "@@harden-rb current", "file\t600\t0\t0\tnew\t/a", "file\t644\t0\t0\tedited\t/b",
        "file\t600\t0\t0\tnew\t/c"])
    run = parse_probe("r1", probe)
    assert isinstance(run, NodeRun) and run.interrupted
    assert run.changed_since() == ["/b", "/c"]          # content of /b, mode of /c
    assert parse_probe("r1", "@@harden-rb index\n@@harden-rb after\n") is None
