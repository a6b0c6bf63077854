"""slurp, find and package/apt: registered results in Ansible's shape from facts, and changes
judged from dpkg (mount: test_mount.py)."""

from __future__ import annotations

import base64
import time

import pytest

from harden.apply.facts import Facts
from harden.apply.modules import get_module
from harden.apply.modules.base import PlanContext, TaskFailed
from support.modules import file_state, make_facts, plan


def result(module: str, args: dict, facts: Facts) -> dict:
    mod = get_module(module)
    checked = mod.validate(args)
    return mod.result(checked, facts, mod.plan(checked, facts, PlanContext()))


def test_slurp_registers_base64_content():
    facts = make_facts(file_state("/etc/hostname", b"node1\n"))
    got = result("slurp", {"path": "/etc/hostname"}, facts)
    assert base64.b64decode(got["content"]) == b"node1\n" and got["encoding"] == "base64"
    with pytest.raises(TaskFailed, match="file not found"):
        plan("slurp", {"src": "/etc/none"}, make_facts(absent=["/etc/none"]))


def entry(rel: str, kind: str = "f", size: int = 10, age: float = 0) -> dict:
    return {"path": f"/etc/k/{rel}", "kind": kind, "mode": 0o600, "uid": 0, "gid": 0,
            "pw_name": "root", "gr_name": "root", "size": size, "mtime": time.time() - age}


def test_find_chooses_like_ansible():
    facts = Facts()
    facts.listings[("/etc/k", True)] = [entry("a.conf"), entry("pki", "d"), entry(".h.conf"),
                                        entry("pki/b.conf", age=86400 * 3, size=5000),
                                        entry("l.conf", "l")]
    got = result("find", {"paths": "/etc/k", "patterns": "*.conf", "recurse": True}, facts)
    assert [f["path"] for f in got["files"]] == ["/etc/k/a.conf", "/etc/k/pki/b.conf"]
    assert got["matched"] == 2 and got["examined"] == 5
    old = result("find", {"paths": ["/etc/k"], "recurse": True, "age": "2d"}, facts)
    assert [f["path"] for f in old["files"]] == ["/etc/k/pki/b.conf"]
    big = result("find", {"paths": "/etc/k", "recurse": True, "size": "1k", "hidden": True},
                 facts)
    assert big["matched"] == 1
    links = result("find", {"paths": "/etc/k", "recurse": True, "file_type": "link"}, facts)
    assert links["files"][0]["islnk"] is True


def packages(**found) -> Facts:
    facts = Facts()
    facts.packages.update(found)
    return facts


INSTALLED = {"dpkg": True, "installed": True, "version": "1.0", "candidate": "1.1"}
MISSING = {"dpkg": True, "installed": False, "version": None, "candidate": "2.0"}


def test_packages_are_judged_from_dpkg_and_apt_candidates():
    facts = packages(bash=INSTALLED, cowsay=MISSING)
    assert plan("package", {"name": "bash"}, facts) == []
    assert plan("apt", {"name": ["bash"], "state": "latest"}, facts)[0].summary == \
        "install bash 1.1"
    changes = plan("apt", {"pkg": "cowsay,bash", "state": "absent"}, facts)
    assert [c.summary for c in changes] == ["remove bash"]
    assert "apt-get" in plan("package", {"name": "cowsay"}, facts)[0].script
    with pytest.raises(TaskFailed, match="No package matching 'ghost'"):
        plan("package", {"name": "ghost"}, packages(ghost={**MISSING, "candidate": None}))


def test_find_sees_what_earlier_tasks_removed_or_created():
    facts = make_facts(file_state("/etc/k/a.conf"), absent=["/etc/k/new.conf"])
    facts.listings[("/etc/k", False)] = [entry("a.conf")]
    facts.links.update({"/etc/k/a.conf": None})
    facts.globs[("/etc/k/a.conf", True)] = ["/etc/k/a.conf"]
    for change in plan("file", {"path": "/etc/k/a.conf", "state": "absent"}, facts) + \
            plan("copy", {"dest": "/etc/k/new.conf", "content": "x"}, facts):
        change.record_in(facts)
    got = result("find", {"paths": "/etc/k", "patterns": "*.conf"}, facts)
    assert [f["path"] for f in got["files"]] == ["/etc/k/new.conf"]
