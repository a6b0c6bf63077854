"""`service`, `command`, `assert`: actions rather than states."""

from __future__ import annotations

import pytest

from harden.errors import InputError
from harden.apply.facts import Facts
from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, plan


def test_command_creates_is_idempotent_and_not_check_safe():
    assert get_module("command").check_mode_safe is False
    facts = make_facts(file_state("/etc/done", b""))
    assert plan("command", {"cmd": "touch /etc/done", "creates": "/etc/done"}, facts) == []
    changes = plan("command", {"cmd": "touch /etc/done", "creates": "/etc/done"},
                   make_facts(absent=["/etc/done"]))
    assert changes[0].script == "(\nexec touch /etc/done\n)"


def test_command_quotes_every_word_and_shell_keeps_the_text():
    facts = make_facts()
    command = plan("command", {"cmd": "echo 'a b' > $HOME/f"}, facts)[0].script
    assert command == "(\nexec echo 'a b' '>' '$HOME/f'\n)"
    assert plan("shell", {"cmd": "echo 'a b' > $HOME/f"}, facts)[0].script == \
        "(\necho 'a b' > $HOME/f\n)"
    assert plan("command", {"argv": ["ls", "-l", "a b"], "chdir": "/tmp"}, facts)[0].script \
        == "cd /tmp && (\nexec ls -l 'a b'\n)"


def test_command_removes_runs_only_while_the_path_exists():
    args = {"cmd": "rm /etc/flag", "removes": "/etc/flag"}
    assert plan("command", args, make_facts(absent=["/etc/flag"])) == []
    assert plan("command", args, make_facts(file_state("/etc/flag", b"")))


def test_assert_passes_and_fails_with_message():
    variables = {"n": 3, "key": "abc"}
    assert plan("assert", {"that": ["n > 2", "key | length == 3"]}, Facts(), variables) == []
    with pytest.raises(TaskFailed, match="assertion failed: n > 5"):
        plan("assert", {"that": ["n > 2", "n > 5"]}, Facts(), variables)
    with pytest.raises(TaskFailed, match="^too small$"):
        plan("assert", {"that": "n > 5", "fail_msg": "too small"}, Facts(), variables)
    with pytest.raises(InputError, match="undefined"):
        plan("assert", {"that": "missing_var > 1"}, Facts(), variables)


def test_a_command_known_to_rewrite_files_backs_them_up_first():
    """pam-auth-update (data/command_writes.yaml) rewrites /etc/pam.d/common-*: the command's
    script backs them up before it runs, so a rollback restores them; other commands do not."""
    from support.modules import make_facts, plan
    script = plan("command", {"cmd": "/usr/sbin/pam-auth-update --package"},
                  make_facts())[0].script
    assert script.startswith("hb_backup /etc/pam.d/common-account\n")
    assert "hb_backup /var/cache/debconf/config.dat\n" in script   # the profiles chosen
    assert "hb_backup /var/lib/pam/seen\n" in script and script.endswith(
        "exec /usr/sbin/pam-auth-update --package\n)")
    assert "hb_backup" not in plan("shell", {"cmd": "echo hi"}, make_facts())[0].script


def test_a_module_on_the_command_path_without_a_command_line_has_no_known_writes():
    """etcd_snapshot runs through the command path with only `path`: no program, so nothing
    to back up (it once failed the retire phase with an internal KeyError)."""
    from harden.apply.modules.command import known_writes
    assert known_writes({"path": "/var/lib/harden/snap.db"}) == []
    assert known_writes({"cmd": "pam-auth-update --package", "argv": None})
