"""`file` module: facts in → changes out."""

from __future__ import annotations

import pytest

from harden.apply.facts import Facts
from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, plan, plan_twice

KEY = "/etc/kubernetes/pki/ca.key"


def test_noop_when_mode_and_owner_already_right():
    facts = make_facts(file_state(KEY, mode=0o600))
    assert plan("file", {"path": KEY, "mode": "0600", "owner": "root", "group": "root"},
                facts) == []


def test_mode_max_only_removes_bits():
    assert plan("file", {"path": KEY, "mode_max": "0600"},
                make_facts(file_state(KEY, mode=0o400))) == []
    changes = plan("file", {"path": KEY, "mode_max": "0600"},
                   make_facts(file_state(KEY, mode=0o644)))
    assert [c.summary for c in changes] == [f"{KEY}: mode 0644 -> 0600"]
    assert "hb_chmod" in changes[0].script and changes[0].after.mode == 0o600


def test_mode_and_owner_change_and_idempotence():
    facts = make_facts(file_state(KEY, mode=0o644, owner="kube", group="kube"))
    first, second = plan_twice("file", {"path": KEY, "mode": "0600", "owner": "root",
                                        "group": "root"}, facts)
    assert len(first) == 1
    assert "-mode 0644\n+mode 0600\n" in first[0].diff
    assert "-owner kube:kube\n+owner root:root\n" in first[0].diff
    assert second == []


def test_glob_fixes_only_what_differs():
    facts = Facts()
    facts.globs[("/etc/kubernetes/*.conf", False)] = ["/etc/kubernetes/admin.conf",
                                                      "/etc/kubernetes/kubelet.conf"]
    facts.files["/etc/kubernetes/admin.conf"] = file_state("/etc/kubernetes/admin.conf",
                                                           None, 0o600)
    facts.files["/etc/kubernetes/kubelet.conf"] = file_state("/etc/kubernetes/kubelet.conf",
                                                             None, 0o644)
    changes = plan("file", {"path": "/etc/kubernetes/*.conf", "mode_max": "0600"}, facts)
    assert [c.path for c in changes] == ["/etc/kubernetes/kubelet.conf"]


def test_recurse_applies_modes_to_files_only():
    facts = Facts()
    root = "/etc/kubernetes/pki"
    facts.globs[(root, True)] = [root, f"{root}/etcd", f"{root}/etcd/ca.key"]
    facts.files[root] = file_state(root, kind="directory", mode=0o755)
    facts.files[f"{root}/etcd"] = file_state(f"{root}/etcd", kind="directory", mode=0o755,
                                             owner="etcd")
    facts.files[f"{root}/etcd/ca.key"] = file_state(f"{root}/etcd/ca.key", None, 0o640)
    changes = plan("file", {"path": root, "recurse": True, "mode": "0600", "owner": "root"},
                   facts)
    assert [c.summary for c in changes] == [
        f"{root}/etcd: owner etcd:root -> root:root",
        f"{root}/etcd/ca.key: mode 0640 -> 0600"]


def test_directory_is_created_then_noop():
    facts = make_facts(absent=["/etc/kubernetes/enc"])
    first, second = plan_twice("file", {"path": "/etc/kubernetes/enc", "state": "directory",
                                        "mode": "0700"}, facts)
    assert [c.summary for c in first] == ["create directory /etc/kubernetes/enc (0700 root:root)"]
    assert "hb_mkdir /etc/kubernetes/enc 0700" in first[0].script
    assert second == []


def test_missing_path_fails_unless_missing_ok():
    facts = make_facts(absent=[KEY])
    with pytest.raises(TaskFailed, match="does not exist"):
        plan("file", {"path": KEY, "mode": "0600"}, facts)
    assert plan("file", {"path": KEY, "mode": "0600", "missing_ok": True}, facts) == []


def test_directory_state_on_a_file_fails():
    with pytest.raises(TaskFailed, match="not a directory"):
        plan("file", {"path": KEY, "state": "directory"}, make_facts(file_state(KEY)))


def test_argument_errors_name_the_choices():
    from harden.errors import InputError
    with pytest.raises(InputError, match="no argument 'perms'; valid: group, match, "
                                         "missing_ok, mode, mode_max, owner, path, recurse"):
        plan("file", {"path": KEY, "perms": "0600"}, Facts())
    with pytest.raises(InputError, match="octal mode"):
        plan("file", {"path": KEY, "mode": 0o170000}, Facts())
    with pytest.raises(InputError, match="must be one of file, directory"):
        plan("file", {"path": KEY, "state": "absent"}, Facts())
