"""mount (ansible.posix.mount), facts in -> changes out: the fstab rewritten as Ansible rewrites
it (fields, order, escaping, untouched lines), mount/remount/umount only where Ansible runs
them, each with the step a rollback runs, and nothing to do on a second plan."""

from __future__ import annotations

import pytest

from harden.apply.modules.base import TaskFailed
from harden.apply.modules.mount import set_mount, unset_mount
from harden.apply.rollback import Restart
from support.modules import file_state, make_facts, plan, plan_twice

FSTAB = "# static file system information\nUUID=ab12 / ext4 errors=remount-ro 0 1\n"
PROC = "proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n"
HIDEPID = {"path": "/proc", "src": "proc", "fstype": "proc", "state": "mounted",
           "opts": "rw,nosuid,nodev,noexec,relatime,hidepid=2"}


def facts_with(fstab: str | None, mounts: str = PROC, dirs=("/proc", "/data")):
    facts = make_facts(*([file_state("/etc/fstab", fstab.encode(), 0o644)] if fstab is not None
                         else []), *[file_state(d, kind="directory") for d in dirs],
                       absent=[] if fstab is not None else ["/etc/fstab"])
    facts.mount_table = {"M": mounts}
    return facts


def test_mounted_appends_the_entry_and_remounts_a_mounted_path_once():
    facts = facts_with(FSTAB)
    first, second = plan_twice("mount", HIDEPID, facts)
    assert [c.summary for c in first] == ["update /etc/fstab", "remount /proc"]
    assert first[0].after.content.decode() == \
        FSTAB + "proc /proc proc rw,nosuid,nodev,noexec,relatime,hidepid=2 0 0\n"
    assert first[1].script == "mount -o remount /proc"
    assert Restart(*first[1].undo).command() == \
        "mount -o remount,rw,nosuid,nodev,noexec,relatime /proc"
    assert second == []


def test_mounted_with_the_entry_in_place_does_nothing_whatever_the_live_options():
    line = "proc /proc proc rw,nosuid,nodev,noexec,relatime,hidepid=2 0 0\n"
    assert plan("mount", HIDEPID, facts_with(FSTAB + line)) == []


def test_mounted_mounts_an_unmounted_path_and_the_rollback_unmounts_it():
    args = {"path": "/data", "src": "tmpfs", "fstype": "tmpfs", "opts": "size=1m",
            "state": "mounted", "fstab": "/etc/fstab.lab"}
    facts = facts_with(None, mounts=PROC)
    facts.files["/etc/fstab.lab"] = None
    facts.with_content.add("/etc/fstab.lab")
    first, second = plan_twice("mount", args, facts)
    assert [c.summary for c in first] == ["create /etc/fstab.lab", "mount /data"]
    assert first[0].after.mode == 0o644
    assert first[1].script == "mount -T /etc/fstab.lab /data"
    assert Restart(*first[1].undo).command() == "umount /data"
    assert second == []


def test_mounted_creates_a_missing_mount_point_first():
    facts = facts_with(FSTAB, dirs=())
    facts.files["/srv/m"] = None
    changes = plan("mount", {**HIDEPID, "path": "/srv/m", "src": "tmpfs", "fstype": "tmpfs"},
                   facts)
    assert [c.summary for c in changes] == ["update /etc/fstab", "create /srv/m", "mount /srv/m"]


def test_present_edits_only_fstab_and_rewrites_a_short_line_as_ansible_does():
    facts = facts_with("tmpfs /data tmpfs defaults\n")
    changes = plan("mount", {"path": "/data", "src": "tmpfs", "fstype": "tmpfs",
                             "state": "present"}, facts)
    assert [c.summary for c in changes] == ["update /etc/fstab"]
    assert changes[0].after.content == b"tmpfs /data tmpfs defaults 0 0\n"


def test_fstab_lines_are_matched_and_written_with_ansibles_escaping():
    entry = {"src": "//srv/a\\040b", "name": "/mnt/a\\040b", "fstype": "cifs",
             "opts": "defaults", "dump": "0", "passno": "0"}
    text = "# keep\n\n//srv/x /mnt/a\\040b cifs ro 0 0 # note\n/dev/sdb /other ext4 ro 0 2"
    assert set_mount(text, entry) == \
        "# keep\n\n//srv/a\\040b /mnt/a\\040b cifs defaults 0 0\n/dev/sdb /other ext4 ro 0 2\n"
    assert set_mount("//srv/a\\040b /mnt/a\\040b cifs defaults 0 0\n", entry) == \
        "//srv/a\\040b /mnt/a\\040b cifs defaults 0 0\n"
    assert unset_mount("a /x t o 0 0\nb /mnt/a\\040b t o 0 0\n", entry) == "a /x t o 0 0\n"


def test_boot_false_adds_noauto():
    changes = plan("mount", {"path": "/data", "src": "tmpfs", "fstype": "tmpfs",
                             "state": "present", "boot": False}, facts_with(""))
    assert changes[0].after.content == b"tmpfs /data tmpfs defaults,noauto 0 0\n"


def test_remounted_is_a_change_every_time_with_its_options():
    changes = plan("mount", {"path": "/proc", "state": "remounted", "opts": "hidepid=2"},
                   facts_with(FSTAB))
    assert [c.script for c in changes] == ["mount -o remount,hidepid=2 /proc"]
    assert changes[0].undo[1] == "remount"


def test_unmounted_and_absent_undo_with_the_old_mount():
    mounts = PROC + "tmpfs /data tmpfs rw,size=1024k 0 0\n"
    changes = plan("mount", {"path": "/data", "state": "unmounted"}, facts_with(FSTAB, mounts))
    assert [c.script for c in changes] == ["umount /data"]
    assert Restart(*changes[0].undo).command() == "mount -t tmpfs -o rw,size=1024k tmpfs /data"
    assert plan("mount", {"path": "/data", "state": "unmounted"}, facts_with(FSTAB)) == []
    line = "tmpfs /data tmpfs size=1m 0 0\n"
    changes = plan("mount", {"path": "/data", "state": "absent"}, facts_with(FSTAB + line, mounts))
    assert [c.summary for c in changes] == ["update /etc/fstab", "umount /data", "remove /data"]
    assert changes[0].after.content.decode() == FSTAB
    assert plan("mount", {"path": "/data", "state": "absent"}, facts_with(FSTAB, mounts)) == []


def test_present_and_mounted_need_src_and_fstype():
    with pytest.raises(TaskFailed, match="missing: fstype"):
        plan("mount", {"path": "/data", "src": "tmpfs", "state": "mounted"}, facts_with(FSTAB))
