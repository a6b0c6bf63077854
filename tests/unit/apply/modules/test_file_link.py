"""`file state: link` as Ansible's file module: an existing link is re-pointed (with or without
`force`), mode/owner/group go to the link's target (`follow: true`), nothing is set on a target
that does not exist, and a re-pointed link comes back on rollback."""

from __future__ import annotations

import subprocess

from harden.apply.facts import FILE, GLOB, LINK, FactRequest
from harden.apply.rollback import restore_script
from harden.runs.journal import parse_index
from support.modules import apply_local, file_state, gather_local, make_facts, plan, plan_twice


def linked(*states, absent=(), **links):
    facts = make_facts(*states, absent=absent)
    facts.links.update({"/etc/" + k: v for k, v in links.items()})
    return facts


def test_an_existing_link_is_re_pointed_without_force_then_noop():
    facts = linked(file_state("/etc/old"), file_state("/etc/new", mode=0o640),
                   file_state("/etc/l"), l="/etc/old")
    first, second = plan_twice("file", {"path": "/etc/l", "state": "link", "src": "/etc/new"},
                               facts)
    assert [c.summary for c in first] == ["link /etc/l -> /etc/new"]
    assert first[0].script.startswith("hb_backup_link /etc/l; ")
    assert "mv -fT -- /etc/.l.harden-link /etc/l; hb_after_real /etc/l" in first[0].script
    assert "-link -> /etc/old\n+link -> /etc/new" in first[0].diff
    assert facts.file("/etc/l").mode == 0o640 and second == []


def test_mode_and_owner_go_to_the_target_of_a_new_link_then_noop():
    facts = linked(file_state("/etc/t", mode=0o644, owner="kube"), absent=["/etc/l"], l=None)
    args = {"path": "/etc/l", "state": "link", "src": "/etc/t", "mode": "0600",
            "owner": "root"}
    first, second = plan_twice("file", args, facts)
    assert [c.summary for c in first] == [
        "link /etc/l -> /etc/t", "/etc/t: mode 0644 -> 0600, owner kube:root -> root:root"]
    assert second == []


def test_a_right_link_with_a_loose_target_only_fixes_the_target():
    facts = linked(file_state("/etc/t", mode=0o644), file_state("/etc/l", mode=0o644),
                   l="/etc/t")
    changes = plan("file", {"path": "/etc/l", "state": "link", "src": "/etc/t",
                            "mode": "0600"}, facts)
    assert [c.script for c in changes] == ["hb_chmod /etc/t 0600"]


def test_a_forced_link_to_a_missing_target_sets_no_mode():
    facts = linked(absent=["/etc/l", "/etc/gone"], l=None)
    changes = plan("file", {"path": "/etc/l", "state": "link", "src": "gone", "force": True,
                            "mode": "0600", "owner": "root"}, facts)
    assert [c.summary for c in changes] == ["link /etc/l -> gone"]


def test_without_src_an_existing_link_keeps_its_target_and_gets_the_mode():
    facts = linked(file_state("/etc/l", mode=0o644), l="/etc/t")
    changes = plan("file", {"path": "/etc/l", "state": "link", "mode": "0600"}, facts)
    assert [c.script for c in changes] == ["hb_chmod /etc/l 0600"]


def test_a_re_pointed_link_points_back_after_rollback(tmp_path):
    old, new, link = tmp_path / "old", tmp_path / "new", tmp_path / "link"
    old.write_text("old\n")
    new.write_text("new\n")
    link.symlink_to(old)
    args = {"path": str(link), "src": str(new), "state": "link"}
    facts = gather_local([FactRequest(FILE, str(link)), FactRequest(LINK, str(link)),
                          FactRequest(GLOB, str(link), recurse=True), FactRequest(FILE, str(new))])
    backups = tmp_path / "backups"
    apply_local(plan("file", args, facts), "r1", backups)
    assert link.readlink() == new
    entries = parse_index((backups / "r1" / "index").read_text())
    assert [(e.kind, e.sha256, e.path) for e in entries] == [("link", str(old), str(link))]
    undo = subprocess.run(["sh", "-s"], capture_output=True,
                          input=restore_script("r1", entries, str(backups)).encode())
    assert undo.returncode == 0, undo.stderr
    assert link.readlink() == old and (old.read_text(), new.read_text()) == ("old\n", "new\n")
