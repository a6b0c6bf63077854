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
    with pytest.raises(InputError, match="no argument 'perms'; valid: access_time, follow, force, group, "
                                         "keep_owners, match, missing_ok, mode, mode_max, "
                                         "modification_time, owner, path, recurse, src"):
        plan("file", {"path": KEY, "perms": "0600"}, Facts())
    with pytest.raises(InputError, match="octal mode"):
        plan("file", {"path": KEY, "mode": 0o170000}, Facts())
    with pytest.raises(InputError, match="must be one of file, directory, absent, touch, link"):
        plan("file", {"path": KEY, "state": "hard"}, Facts())


def with_links(facts: Facts, **links) -> Facts:
    facts.links.update({"/etc/" + k: v for k, v in links.items()})
    return facts


def test_absent_removes_a_file_backed_up_and_later_tasks_see_it_gone():
    facts = with_links(make_facts(file_state("/etc/x")), x=None)
    facts.globs[("/etc/x", True)] = ["/etc/x"]
    changes = plan("file", {"path": "/etc/x", "state": "absent"}, facts)
    assert changes[0].script == "hb_backup /etc/x; rm -f -- /etc/x; hb_after /etc/x"
    changes[0].record_in(facts)
    assert facts.file("/etc/x") is None
    assert plan("file", {"path": "/etc/x", "state": "absent"}, facts) == []


def test_absent_refuses_what_a_rollback_could_not_restore():
    tree = with_links(make_facts(file_state("/etc/d", kind="directory"),
                                 file_state("/etc/d/f")), d=None, l="/etc/t")
    tree.globs[("/etc/d", True)] = ["/etc/d", "/etc/d/f"]
    with pytest.raises(TaskFailed, match="directory with 1 entries"):
        plan("file", {"path": "/etc/d", "state": "absent"}, tree)
    with pytest.raises(TaskFailed, match="is a symlink"):
        plan("file", {"path": "/etc/l", "state": "absent"}, tree)


def test_touch_creates_once_and_preserved_times_make_it_idempotent():
    facts = with_links(make_facts(absent=["/etc/t"]), t=None)
    args = {"path": "/etc/t", "state": "touch", "mode": "0600",
            "modification_time": "preserve", "access_time": "preserve"}
    assert plan_twice("file", args, facts)[1] == []
    again = with_links(make_facts(file_state("/etc/t", mode=0o600)), t=None)
    assert plan("file", {**args, "access_time": "now"}, again)[0].summary == "touch /etc/t"


def test_link_is_made_where_nothing_is_and_without_force_never_replaces_a_file():
    facts = with_links(make_facts(file_state("/etc/t"), absent=["/etc/l"]), l=None)
    changes = plan("file", {"path": "/etc/l", "state": "link", "src": "/etc/t"}, facts)
    assert changes[0].script == "hb_backup /etc/l; ln -s -- /etc/t /etc/l; hb_after /etc/l"
    changes[0].record_in(facts)
    assert plan("file", {"path": "/etc/l", "state": "link", "src": "/etc/t"}, facts) == []
    with pytest.raises(TaskFailed, match="refusing to convert from file to symlink"):
        plan("file", {"path": "/etc/f", "state": "link", "src": "/etc/t"},
             with_links(make_facts(file_state("/etc/f"), file_state("/etc/t")), f=None))


def test_keep_owners_leaves_a_rootless_components_files_to_it():
    """kubeadm's rootless control plane: sa.key belongs to kubeadm-kcm; chown root would stop
    the controller manager at its next start. Modes still tighten."""
    facts = make_facts(file_state("/etc/kubernetes/pki/sa.key", b"k", 0o644, "root",
                                  "kubeadm-sa-key-readers"),
                       file_state("/etc/kubernetes/pki/kcm.key", b"k", 0o604, "kubeadm-kcm",
                                  "kubeadm-kcm"),
                       file_state("/etc/kubernetes/pki/ca.key", b"k", 0o600, "alice", "alice"))
    facts.globs[("/etc/kubernetes/pki", True)] = ["/etc/kubernetes/pki/ca.key",
                                                  "/etc/kubernetes/pki/kcm.key",
                                                  "/etc/kubernetes/pki/sa.key"]
    changes = plan("file", {"path": "/etc/kubernetes/pki", "recurse": True, "owner": "root",
                            "group": "root", "mode_max": "0600",
                            "keep_owners": ["kubeadm-kcm", "kubeadm-sa-key-readers"]}, facts)
    summaries = [c.summary for c in changes]
    # shared through its group: only the world bit goes
    assert any("sa.key" in s and "mode 0644 -> 0640" in s for s in summaries), summaries
    assert any("kcm.key" in s and "mode 0604 -> 0600" in s for s in summaries), summaries
    assert not any(("sa.key" in s or "kcm.key" in s) and "owner" in s for s in summaries)
    assert any("ca.key" in s and "owner" in s for s in summaries), summaries
