"""user, group, getent and pam_limits as facts in -> changes out: the shadow-utils command
Ansible's module would run for what differs, nothing when nothing differs, and the limits file
bytes community.general.pam_limits writes."""

from __future__ import annotations

import pytest

from harden.apply.facts import Facts
from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed
from harden.errors import InputError
from support.modules import file_state, make_facts, plan

PASSWD = (b"root:x:0:0:root:/root:/bin/bash\ngames:x:5:60:games:/usr/games:/bin/sh\n"
          b"ops:x:2000:2000:ops:/home/ops:/bin/bash\n")
SHADOW = (b"root:*:19000:0:99999:7:::\ngames:*:19000:0:99999:7:::\n"
          b"ops:$6$salt$hash:19000:0:99999:7:::\n")
GROUP = b"root:x:0:\ngames:x:60:\nops:x:2000:\nwheel:x:10:ops\naudit:x:11:\n"
LIMITS = "/etc/security/limits.conf"


def accounts(limits: bytes | None = None) -> Facts:
    states = [file_state("/etc/passwd", PASSWD, 0o644), file_state("/etc/shadow", SHADOW, 0o640),
              file_state("/etc/group", GROUP, 0o644), file_state("/etc/gshadow", b"", 0o640),
              file_state("/etc/login.defs", b"UMASK 022\n", 0o644),
              file_state("/home/ops", None, 0o750, kind="directory"),
              file_state("/etc/security", None, 0o755, kind="directory")]
    if limits is not None:
        states.append(file_state(LIMITS, limits, 0o644))
    return make_facts(*states, absent=[] if limits is not None else [LIMITS])


def commands(changes) -> list[str]:
    return [line for c in changes for line in c.script.splitlines()
            if line.split(" ", 1)[0] in ("useradd", "usermod", "userdel", "chage", "groupadd",
                                         "groupmod", "groupdel")]


def test_user_already_as_asked_plans_nothing():
    args = {"name": "ops", "shell": "/bin/bash", "comment": "ops", "groups": ["wheel"],
            "password_expire_max": 99999, "password_expire_warn": 7}
    assert plan("user", args, accounts()) == []


def test_user_differences_become_one_usermod_and_one_chage():
    changes = plan("user", {"name": "games", "shell": "/usr/sbin/nologin", "password": "!",
                            "createhome": False, "password_expire_max": 90}, accounts())
    assert commands(changes) == ["usermod -s /usr/sbin/nologin -p '!' games",
                                 "chage -M 90 games"]
    assert changes[0].secret and changes[0].diff == ""
    assert "hb_backup" in changes[0].script and "hb_after" in changes[0].script


def test_user_groups_replace_or_append_as_ansible():
    assert commands(plan("user", {"name": "ops", "groups": "audit"}, accounts())) == \
        ["usermod -G audit ops"]
    assert commands(plan("user", {"name": "ops", "groups": ["audit"], "append": True},
                         accounts())) == ["usermod -a -G audit ops"]
    assert plan("user", {"name": "ops", "groups": ["wheel"], "append": True}, accounts()) == []
    with pytest.raises(TaskFailed, match="Group nosuch does not exist"):
        plan("user", {"name": "ops", "groups": ["nosuch"]}, accounts())


def test_user_primary_group_as_ansible_and_a_missing_group_fails():
    assert commands(plan("user", {"name": "ops", "group": "audit"}, accounts())) == \
        ["usermod -g 11 ops"]
    assert plan("user", {"name": "ops", "group": "ops"}, accounts()) == []
    created = commands(plan("user", {"name": "etcd", "group": "audit", "system": True,
                                     "shell": "/sbin/nologin", "create_home": False},
                            accounts()))
    assert created == ["useradd -g audit -s /sbin/nologin -M -r etcd"]
    with pytest.raises(TaskFailed, match="Group etcd does not exist"):
        plan("user", {"name": "ops", "group": "etcd"}, accounts())
    with pytest.raises(TaskFailed, match="Group etcd does not exist"):
        plan("user", {"name": "etcd", "group": "etcd"}, accounts())


def test_user_lock_unlock_and_new_and_removed_users():
    assert commands(plan("user", {"name": "ops", "password_lock": True}, accounts())) == \
        ["usermod -L ops"]
    created = commands(plan("user", {"name": "svc", "uid": 2950, "system": True,
                                     "create_home": False, "shell": "/bin/false"}, accounts()))
    assert created == ["useradd -u 2950 -s /bin/false -M -r svc"]
    assert commands(plan("user", {"name": "ops", "state": "absent"}, accounts())) == \
        ["userdel ops"]
    assert plan("user", {"name": "nobody-here", "state": "absent"}, accounts()) == []


def test_user_refuses_arguments_it_does_not_model_at_load():
    with pytest.raises(InputError, match="has no argument 'ssh_key_file'"):
        get_module("user").validate({"name": "x", "ssh_key_file": "k"}, "site.yml", 4)


def test_group_add_change_remove_and_noop():
    assert commands(plan("group", {"name": "audit", "gid": 11}, accounts())) == []
    assert commands(plan("group", {"name": "audit", "gid": 12}, accounts())) == \
        ["groupmod -g 12 audit"]
    assert commands(plan("group", {"name": "new", "system": True}, accounts())) == \
        ["groupadd -r new"]
    assert commands(plan("group", {"name": "audit", "state": "absent"}, accounts())) == \
        ["groupdel audit"]


def test_getent_shapes_facts_as_ansible():
    module, facts = get_module("getent"), accounts()
    args = module.validate({"database": "passwd"})
    tree = module.result(args, facts, [])["ansible_facts"]["getent_passwd"]
    assert tree["games"] == ["x", "5", "60", "games", "/usr/games", "/bin/sh"]
    by_id = module.validate({"database": "group", "key": "2000"})
    assert module.result(by_id, facts, [])["ansible_facts"] == {"getent_group":
                                                                {"ops": ["x", "2000", ""]}}
    missing = module.validate({"database": "passwd", "key": "nobody", "fail_key": False})
    assert module.result(missing, facts, [])["ansible_facts"] == {"getent_passwd":
                                                                  {"nobody": None}}
    with pytest.raises(TaskFailed, match="could not be found"):
        module.plan(module.validate({"database": "passwd", "key": "nobody"}), facts, None)
    with pytest.raises(InputError, match="'hosts' is not supported"):
        module.validate({"database": "hosts"}, "site.yml", 3)


def test_pam_limits_appends_rewrites_and_keeps_bytes_like_ansible():
    args = {"domain": "*", "limit_type": "hard", "limit_item": "core", "value": 0,
            "comment": "no cores", "dest": LIMITS}
    new = plan("pam_limits", args, accounts())
    assert new[0].after.content == b"*\thard\tcore\t0\t#no cores\n" and new[0].after.mode == 0o644
    text = b"# header\n*  hard  core  unlimited # old\nops soft nofile 1024\n"
    changed = plan("pam_limits", {**args, "comment": ""}, accounts(text))
    assert changed[0].after.content == \
        b"# header\n*\thard\tcore\t0\t# old\n\nops soft nofile 1024\n"     # Ansible's bytes
    same = b"*\thard\tcore\t0\n"
    assert plan("pam_limits", {**args, "comment": ""}, accounts(same)) == []
    bigger = plan("pam_limits", {"domain": "ops", "limit_type": "soft", "limit_item": "nofile",
                                 "value": "512", "use_max": True}, accounts(text))
    assert bigger == []


def test_pam_limits_refuses_bad_values_at_load():
    with pytest.raises(InputError, match="must be 'unlimited'"):
        get_module("pam_limits").validate({"domain": "*", "limit_type": "hard",
                                           "limit_item": "core", "value": "lots"}, "x.yml", 2)
    with pytest.raises(InputError, match="cannot both"):
        get_module("pam_limits").validate({"domain": "*", "limit_type": "hard",
                                           "limit_item": "core", "value": "1",
                                           "use_max": True, "use_min": True}, "x.yml", 2)
