"""`copy` with `remote_src: true` of a directory, by ansible-core's copy module's rules: facts in,
changes out (trailing slash of src, a new tree, a merge into an existing one, `mode` on dest
only, owner/group throughout, `directory_mode` for a missing `dest/`), the no-op second plan,
and a round trip on this machine's own files."""

from __future__ import annotations

import pytest

from harden.apply.facts import FileState, FactRequest, TREE, FILE
from harden.apply.modules.base import TaskFailed
from support.modules import apply_local, gather_local, make_facts, plan, plan_twice

SRC = "/etc/kubernetes"
TREE_ENTRIES = [
    {"rel": "admin.conf", "kind": "f", "mode": 0o600, "owner": "root", "group": "root",
     "sha256": "a" * 64},
    {"rel": "manifests", "kind": "d", "mode": 0o700, "owner": "root", "group": "root",
     "sha256": None},
    {"rel": "manifests/etcd.yaml", "kind": "f", "mode": 0o600, "owner": "root",
     "group": "root", "sha256": "b" * 64},
]


def directory(path: str, mode: int = 0o755, owner: str = "root") -> FileState:
    return FileState(path, "directory", mode, owner, "root")


def facts_with(*states, trees=None, absent=()):
    facts = make_facts(*states, absent=absent)
    facts.trees.update(trees or {})
    return facts


def backup_task(**extra) -> dict:
    return {"src": "/etc/kubernetes/", "dest": "/backup/k8s/kubernetes", "remote_src": True,
            "directory_mode": "0755", "mode": "0640", "owner": "root", "group": "root",
            **extra}


def test_src_with_a_slash_copies_its_contents_into_a_new_dest_with_source_modes():
    facts = facts_with(directory(SRC), directory("/backup/k8s"),
                       absent=["/backup/k8s/kubernetes"],
                       trees={SRC: TREE_ENTRIES, "/backup/k8s/kubernetes": None})
    changes = plan("copy", backup_task(), facts)
    made = {c.path: c.after for c in changes}
    assert made["/backup/k8s/kubernetes/admin.conf"].mode == 0o600      # the source's, not 0640
    assert made["/backup/k8s/kubernetes/manifests"].mode == 0o700
    assert made["/backup/k8s/kubernetes/manifests/etcd.yaml"].kind == "file"
    # `mode` goes to dest itself (the top directory), after it is made with src's mode
    assert changes[-1].path == "/backup/k8s/kubernetes" and "0755 -> 0640" in changes[-1].summary
    assert "cp -- /etc/kubernetes/admin.conf" in changes[1].script


def test_src_without_a_slash_copies_the_directory_itself_below_dest():
    facts = facts_with(directory(SRC), directory("/backup/k8s"),
                       trees={SRC: TREE_ENTRIES})
    facts.files["/backup/k8s/kubernetes"] = None
    facts.trees["/backup/k8s/kubernetes"] = None
    changes = plan("copy", backup_task(src="/etc/kubernetes", dest="/backup/k8s"), facts)
    paths = [c.path for c in changes]
    assert paths[:2] == ["/backup/k8s/kubernetes", "/backup/k8s/kubernetes/admin.conf"]
    # dest existed as a directory, so Ansible's dest is dest/basename(src): mode lands there
    assert paths[-1] == "/backup/k8s/kubernetes"


def test_second_plan_of_an_equal_tree_is_a_no_op():
    copied = [dict(e) for e in TREE_ENTRIES]
    facts = facts_with(directory(SRC), directory("/backup/k8s"),
                       directory("/backup/k8s/kubernetes", 0o640),
                       trees={SRC: TREE_ENTRIES, "/backup/k8s/kubernetes": copied})
    assert plan("copy", backup_task(), facts) == []


def test_merge_rewrites_only_differing_files_and_keeps_extra_entries_and_dir_modes():
    copied = [dict(e) for e in TREE_ENTRIES]
    copied[0].update(sha256="c" * 64, mode=0o644, owner="kube")       # admin.conf differs
    copied[1].update(mode=0o755)                                       # a dir mode: left
    copied.append({"rel": "extra", "kind": "f", "mode": 0o644, "owner": "root",
                   "group": "root", "sha256": "d" * 64})
    facts = facts_with(directory(SRC), directory("/backup/k8s"),
                       directory("/backup/k8s/kubernetes", 0o640),
                       trees={SRC: TREE_ENTRIES, "/backup/k8s/kubernetes": copied})
    changes = plan("copy", backup_task(), facts)
    admin = "/backup/k8s/kubernetes/admin.conf"
    rewrite = next(c for c in changes if c.path == admin and c.rewrites)
    assert rewrite.after.mode == 0o600 and "--reference" in rewrite.script   # src mode, own owner
    chown = [c for c in changes if c.path == admin and not c.rewrites]
    assert chown and "kube:root -> root:root" in chown[0].summary            # owner: throughout
    assert not any(c.path.endswith("/manifests") for c in changes)
    assert not any(c.path.endswith("/extra") for c in changes)


def test_a_file_without_a_sum_on_the_node_is_refused_not_taken_as_unchanged():
    # sha256sum escapes a name with a backslash: the tree fact has no sum for such a file
    unsummed = [dict(e) for e in TREE_ENTRIES]
    unsummed[0]["sha256"] = None
    facts = facts_with(directory(SRC), directory("/backup/k8s"),
                       directory("/backup/k8s/kubernetes", 0o640),
                       trees={SRC: TREE_ENTRIES, "/backup/k8s/kubernetes": unsummed})
    with pytest.raises(TaskFailed, match="cannot compare /etc/kubernetes/admin.conf"):
        plan("copy", backup_task(), facts)


def test_a_missing_file_in_dest_is_copied_and_a_missing_directory_whole():
    facts = facts_with(directory(SRC), directory("/backup/k8s"),
                       directory("/backup/k8s/kubernetes", 0o640),
                       trees={SRC: TREE_ENTRIES, "/backup/k8s/kubernetes": [TREE_ENTRIES[0]]})
    paths = [c.path for c in plan("copy", backup_task(), facts)]
    assert paths == ["/backup/k8s/kubernetes/manifests",
                     "/backup/k8s/kubernetes/manifests/etcd.yaml"]


def test_dest_parent_missing_fails_as_ansible_does():
    facts = facts_with(directory(SRC), absent=["/backup/k8s", "/backup/k8s/kubernetes"],
                       trees={SRC: TREE_ENTRIES, "/backup/k8s/kubernetes": None})
    with pytest.raises(TaskFailed, match="Destination directory /backup/k8s does not exist"):
        plan("copy", backup_task(), facts)


def test_dest_with_a_slash_makes_its_missing_directories_with_directory_mode():
    facts = facts_with(directory(SRC), directory("/"), absent=["/backup", "/backup/k8s"],
                       trees={SRC: TREE_ENTRIES, "/backup/k8s": None})
    changes = plan("copy", backup_task(dest="/backup/k8s/", directory_mode="0750"), facts)
    assert [(c.path, c.after.mode) for c in changes[:2]] == [("/backup", 0o750),
                                                             ("/backup/k8s", 0o750)]


def test_force_false_leaves_an_existing_dest_alone():
    facts = facts_with(directory(SRC), directory("/backup/k8s"),
                       directory("/backup/k8s/kubernetes", 0o700),
                       trees={SRC: TREE_ENTRIES, "/backup/k8s/kubernetes": []})
    assert plan("copy", backup_task(force=False), facts) == []


def test_a_symlink_in_the_source_tree_fails_the_task():
    linked = TREE_ENTRIES + [{"rel": "current.pem", "kind": "l", "mode": 0o777,
                              "owner": "root", "group": "root", "sha256": None}]
    facts = facts_with(directory(SRC), directory("/backup/k8s"), absent=["/backup/k8s/kubernetes"],
                       trees={SRC: linked, "/backup/k8s/kubernetes": None})
    with pytest.raises(TaskFailed, match="current.pem is a symlink"):
        plan("copy", backup_task(), facts)


def test_round_trip_on_real_files_copies_then_is_a_no_op(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.conf").write_text("a\n")
    (src / "a.conf").chmod(0o600)
    (src / "sub" / "b.yaml").write_text("b\n")
    (src / "sub").chmod(0o700)
    dest = tmp_path / "backup" / "copy"
    (tmp_path / "backup").mkdir()
    args = {"src": f"{src}/", "dest": str(dest), "remote_src": True, "mode": "0640"}
    requests = get_requests(args)
    changes = plan("copy", args, gather_local(requests))
    apply_local(changes, "20261206T000000Z-abcdef", tmp_path / "hb")
    assert (dest / "a.conf").read_text() == "a\n" and (dest / "sub" / "b.yaml").exists()
    assert oct((dest / "a.conf").stat().st_mode & 0o7777) == "0o600"
    assert oct((dest / "sub").stat().st_mode & 0o7777) == "0o700"
    assert oct(dest.stat().st_mode & 0o7777) == "0o640"
    assert plan("copy", args, gather_local(requests)) == []
    (src / "a.conf").write_text("changed\n")
    again = plan("copy", args, gather_local(requests))
    assert [c.path for c in again] == [str(dest / "a.conf")]


def get_requests(args: dict) -> list[FactRequest]:
    from harden.apply.modules import get_module
    module = get_module("copy")
    return module.facts_needed(module.validate(args))
