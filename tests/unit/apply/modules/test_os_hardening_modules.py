"""The module arguments and modules dev-sec's os_hardening role uses, as facts in -> changes
out: symbolic modes, file force, apt purge, dnf/yum, package_facts, setup, sysctl's Ansible
arguments, selinux, copy remote_src (each also as a no-op); mount: test_mount.py."""

from __future__ import annotations

import pytest

from harden.apply.facts import Facts
from harden.apply.modules.base import TaskFailed, parse_mode
from harden.apply.modules.package_facts import dpkg_packages
from harden.errors import InputError
from support.modules import file_state, make_facts, plan, plan_twice
from tests.unit.apply.modules.test_sysctl import sysctl_facts

SYSCTL_FILE = "/etc/sysctl.d/90-dev-sec.conf"


@pytest.mark.parametrize("mode, before, after", [
    ("og-rwx", 0o755, 0o700), ("u=rw,g=r,o=", 0o777, 0o640), ("a+x", 0o644, 0o755),
    ("u+s", 0o755, 0o4755), ("g-s", 0o2755, 0o755), ("a-s", 0o6755, 0o755),
    ("go-w", 0o777, 0o755), ("+x", 0o600, 0o711), ("u=rwX,g=rX,o=", 0o644, 0o640),
    ("u=rwX,g=rX,o=", 0o744, 0o750), ("g=u", 0o700, 0o770), ("u=rw,u+x", 0o000, 0o700)])
def test_symbolic_modes_apply_to_the_current_mode_as_ansible_does(mode, before, after):
    assert parse_mode(mode, before) == after


def test_symbolic_mode_X_counts_a_directory_as_executable():
    assert parse_mode("a+X", 0o644, directory=True) == 0o755


@pytest.mark.parametrize("bad", ["ug+q", "x+r", "ua+r", "rw", "0999"])
def test_a_mode_that_is_neither_octal_nor_symbolic_is_refused_at_load(bad):
    with pytest.raises(InputError, match="octal mode like .* or a symbolic one"):
        plan("file", {"path": "/etc/x", "mode": bad}, Facts())


def test_file_symbolic_mode_changes_only_what_differs_then_noop():
    facts = make_facts(file_state("/usr/bin/su", b"x", 0o4755),
                       file_state("/usr/bin/ok", b"x", 0o755))
    first, second = plan_twice("file", {"path": "/usr/bin/su", "mode": "a-s"}, facts)
    assert first[0].script == "hb_chmod /usr/bin/su 0755" and second == []
    assert plan("file", {"path": "/usr/bin/ok", "mode": "a-s"}, facts) == []


def test_cron_style_og_rwx_on_a_directory():
    facts = make_facts(file_state("/etc/cron.d", None, 0o755, kind="directory"))
    first, second = plan_twice("file", {"path": "/etc/cron.d", "mode": "og-rwx",
                                        "state": "directory"}, facts)
    assert "mode 0755 -> 0700" in first[0].summary and second == []


def test_copy_symbolic_mode_of_a_new_file_starts_from_0644():
    changes = plan("copy", {"dest": "/etc/new", "content": "x", "mode": "u=rw,g=r,o="},
                   make_facts(absent=["/etc/new"]))
    assert changes[0].after.mode == 0o640 and "hb_write /etc/new 0640 " in changes[0].script


def link_facts(*states, absent=()):
    facts = make_facts(*states, absent=absent)
    facts.links["/etc/pam.d/system-auth"] = None
    facts.globs[("/etc/pam.d/system-auth", True)] = ["/etc/pam.d/system-auth"]
    return facts


def test_link_with_force_replaces_a_file_backed_up_then_noop():
    facts = link_facts(file_state("/etc/pam.d/system-auth", b"old"),
                       file_state("/etc/pam.d/system-auth-local", b"new"))
    args = {"path": "/etc/pam.d/system-auth", "src": "/etc/pam.d/system-auth-local",
            "state": "link", "force": True}
    first, second = plan_twice("file", args, facts)
    assert first[0].script.startswith("hb_backup /etc/pam.d/system-auth; rm -f -- ")
    assert "mv -fT -- /etc/pam.d/.system-auth.harden-link /etc/pam.d/system-auth" in \
        first[0].script
    assert "-file 0600 root:root" in first[0].diff and second == []
    with pytest.raises(TaskFailed, match="refusing to convert from file to symlink"):
        plan("file", {**args, "force": False}, link_facts(
            file_state("/etc/pam.d/system-auth"), file_state("/etc/pam.d/system-auth-local")))


def test_link_to_a_missing_src_needs_force():
    facts = link_facts(absent=["/etc/pam.d/system-auth", "/etc/pam.d/gone"])
    args = {"path": "/etc/pam.d/system-auth", "src": "gone", "state": "link"}
    with pytest.raises(TaskFailed, match="src file does not exist, use 'force=yes'.*"
                                         "/etc/pam.d/gone"):
        plan("file", args, facts)
    assert plan("file", {**args, "force": True}, facts)[0].summary == \
        "link /etc/pam.d/system-auth -> gone"


def dpkg(name, installed=True, config_files=False, candidate="1.0"):
    return {"dpkg": True, "installed": installed, "version": "1.0" if installed else None,
            "candidate": candidate, "config_files": config_files}


def test_apt_purge_removes_with_config_and_purges_config_only_packages():
    facts = Facts()
    facts.packages.update({"telnet": dpkg("telnet"), "rsh": dpkg("rsh", False, True),
                           "gone": dpkg("gone", False)})
    changes = plan("apt", {"name": ["telnet", "rsh", "gone"], "state": "absent",
                           "purge": True}, facts)
    assert [c.summary for c in changes] == ["remove --purge telnet, rsh"]
    assert "apt-get -q -y -o Dpkg::Options::=--force-confold remove --purge -- telnet rsh" in \
        changes[0].script
    assert [c.summary for c in plan("apt", {"name": ["telnet", "rsh"], "state": "absent"},
                                    facts)] == ["remove telnet"]
    facts.packages.update({"telnet": dpkg("telnet", False), "rsh": dpkg("rsh", False)})
    assert plan("apt", {"name": ["telnet", "rsh"], "state": "absent", "purge": True},
                facts) == []


def test_package_has_no_purge():
    with pytest.raises(InputError, match="no argument 'purge'"):
        plan("package", {"name": "x", "state": "absent", "purge": True}, Facts())


@pytest.mark.parametrize("module", ["dnf", "yum"])
def test_dnf_fails_as_ansible_on_a_node_without_rpm(module):
    facts = Facts()
    facts.rpms["sssd-client"] = {"rpm": False}
    with pytest.raises(TaskFailed, match="Could not detect which major revision of dnf"):
        plan(module, {"name": "sssd-client", "state": "present"}, facts)


def test_dnf_judges_from_rpm_then_noop():
    facts = Facts()
    facts.rpms.update({"telnet": {"rpm": True, "installed": True, "version": "1-1"},
                       "sssd-client": {"rpm": True, "installed": False, "version": None}})
    assert [c.script for c in plan("dnf", {"name": ["telnet", "rsh"][:1], "state": "absent"},
                                   facts)] == ["dnf -y -q remove -- telnet"]
    assert [c.summary for c in plan("dnf", {"name": "sssd-client"}, facts)] == \
        ["install sssd-client"]
    assert plan("dnf", {"name": "telnet", "state": "present"}, facts) == []
    with pytest.raises(InputError, match="'state' must be one of"):
        plan("dnf", {"name": "telnet", "state": "latest"}, facts)


DPKG_OUT = ("ARCH\tamd64\nlibc6\t2.36-9\tamd64\tii \tlibs\nlibc6\t2.36-9\ti386\tii \tlibs\n"
            "tzdata\t2024a\tall\tii \tlocalization\nrsh\t0.17\tamd64\trc \tnet\n")


def test_package_facts_are_ansibles_apt_structure():
    packages = dpkg_packages(DPKG_OUT)
    assert packages == {
        "libc6": [{"name": "libc6", "version": "2.36-9", "arch": "amd64", "category": "libs",
                   "source": "apt"}],
        "libc6:i386": [{"name": "libc6:i386", "version": "2.36-9", "arch": "i386",
                        "category": "libs", "source": "apt"}],
        "tzdata": [{"name": "tzdata", "version": "2024a", "arch": "all",
                    "category": "localization", "source": "apt"}]}


def test_package_facts_registers_facts_and_changes_nothing():
    facts = Facts()
    facts.probes["dpkg"] = DPKG_OUT
    assert plan("package_facts", {"manager": "auto"}, facts) == []
    facts.probes["dpkg"] = "none\n"
    with pytest.raises(TaskFailed, match="Could not auto detect a usable package manager"):
        plan("package_facts", {"manager": "auto"}, facts)
    with pytest.raises(TaskFailed, match="dpkg only"):
        plan("package_facts", {"manager": ["rpm"]}, facts)


HOST = ("@@harden-hostfact os_release\n"
        "TkFNRT0iRGViaWFuIEdOVS9MaW51eCIKSUQ9ZGViaWFuClZFUlNJT05fSUQ9IjEyIgo=\n"
        "@@harden-hostfact uname_s\nTGludXgK\n")


def test_setup_task_returns_the_gathered_facts_filtered():
    from harden.apply.modules import get_module
    facts = Facts()
    facts.probes["host"] = HOST
    module = get_module("setup")
    assert plan("setup", {}, facts) == []
    every = module.result(module.validate({}), facts, [])["ansible_facts"]
    assert every["ansible_distribution"] == "Debian" and every["ansible_system"] == "Linux"
    some = module.result(module.validate({"filter": "ansible_distribution*"}), facts, [])
    assert set(some["ansible_facts"]) >= {"ansible_distribution",
                                          "ansible_distribution_major_version"}
    assert "ansible_system" not in some["ansible_facts"]
    with pytest.raises(TaskFailed, match="Bad subset 'nonsense'"):
        plan("setup", {"gather_subset": ["nonsense"]}, facts)


def test_sysctl_ansible_arguments_write_ansibles_file_then_noop():
    facts = sysctl_facts(file_state(SYSCTL_FILE, b"# mine\nvm.x = 1\nkernel.panic = 0\n",
                                    0o644), sysctls={"kernel.panic": "0"})
    args = {"name": "kernel.panic", "value": "10", "sysctl_set": True, "reload": True,
            "sysctl_file": SYSCTL_FILE, "state": "present", "ignoreerrors": True}
    first, second = plan_twice("sysctl", args, facts)
    assert first[0].after.content == b"# mine\nvm.x=1\nkernel.panic=10\n"
    assert first[1].summary == "sysctl kernel.panic: 0 -> 10" and second == []


def test_sysctl_ignoreerrors_skips_a_missing_key_unless_sysctl_set():
    facts = sysctl_facts(absent=[SYSCTL_FILE], sysctls={"net.no.such": None})
    args = {"key": "net.no.such", "val": 1, "sysctl_file": SYSCTL_FILE, "ignoreerrors": True}
    assert [c.summary for c in plan("sysctl", args, facts)] == [f"create {SYSCTL_FILE}"]
    with pytest.raises(TaskFailed, match="does not exist on this host"):
        plan("sysctl", {**args, "sysctl_set": True}, facts)


def test_sysctl_state_absent_drops_the_key_and_leaves_the_running_value():
    facts = sysctl_facts(file_state(SYSCTL_FILE, b"a=1\nkernel.panic=0\n", 0o644))
    first, second = plan_twice("sysctl", {"name": "kernel.panic", "state": "absent",
                                          "sysctl_file": SYSCTL_FILE}, facts)
    assert [c.after.content for c in first] == [b"a=1\n"] and second == []


def selinux_facts(probe: str, config: bytes | None = b"SELINUX=permissive\n"
                                                     b"SELINUXTYPE=targeted\n") -> Facts:
    facts = make_facts(*([file_state("/etc/selinux/config", config, 0o644)] if config
                         else []), absent=[] if config else ["/etc/selinux/config"])
    facts.probes["selinux"] = probe
    return facts


def test_selinux_fails_as_ansible_without_the_python_bindings():
    with pytest.raises(TaskFailed, match=r"required Python library \(libselinux-python\)"):
        plan("selinux", {"policy": "targeted", "state": "enforcing"},
             selinux_facts("ENFORCE \n"))


def test_selinux_sets_config_and_running_mode_then_noop():
    facts = selinux_facts("PY /usr/bin/python3\nENFORCE Permissive\n")
    changes = plan("selinux", {"policy": "targeted", "state": "enforcing"}, facts)
    assert changes[0].after.content == b"SELINUX=enforcing\nSELINUXTYPE=targeted\n"
    assert changes[1].script == "setenforce 1"
    done = selinux_facts("PY /usr/bin/python3\nENFORCE Enforcing\n",
                         b"SELINUX=enforcing\nSELINUXTYPE=targeted\n")
    assert plan("selinux", {"policy": "targeted", "state": "enforcing"}, done) == []
    with pytest.raises(TaskFailed, match="Policy is required"):
        plan("selinux", {"state": "enforcing"}, done)
    with pytest.raises(TaskFailed, match="Unable to find file /etc/selinux/config"):
        plan("selinux", {"state": "disabled"}, selinux_facts("PY /usr/bin/python3\n", None))


def test_copy_remote_src_copies_the_nodes_file_then_noop():
    facts = make_facts(file_state("/etc/login.defs", b"UMASK 027\n", 0o644),
                       absent=["/etc/login.defs.orig"])
    args = {"src": "/etc/login.defs", "dest": "/etc/login.defs.orig", "remote_src": True,
            "mode": "0600"}
    first, second = plan_twice("copy", args, facts)
    assert first[0].after.content == b"UMASK 027\n" and first[0].after.mode == 0o600
    assert second == []
    with pytest.raises(TaskFailed, match="Source /etc/nope not found"):
        plan("copy", {**args, "src": "/etc/nope"}, make_facts(absent=["/etc/nope",
                                                                        "/etc/login.defs.orig"]))


def test_mode_max_takes_only_an_octal_mode():
    with pytest.raises(TaskFailed, match="mode_max takes an octal mode"):
        plan("file", {"path": "/etc/x", "mode_max": "go-rwx"}, make_facts(file_state("/etc/x")))
    assert plan("file", {"path": "/etc/x", "mode_max": "0600"},
                make_facts(file_state("/etc/x", mode=0o644)))[0].after.mode == 0o600


def test_a_file_forced_into_a_link_comes_back_on_rollback(tmp_path):
    """Applied and rolled back locally: the link replaces the file, the rollback removes the
    link and restores the file (never writing through the link into its target)."""
    import subprocess
    from harden.apply.facts import FILE, GLOB, LINK, FactRequest
    from harden.apply.rollback import restore_script
    from harden.runs.journal import parse_index
    from support.modules import apply_local, gather_local
    auth, local = tmp_path / "system-auth", tmp_path / "system-auth-local"
    auth.write_text("old\n")
    local.write_text("new\n")
    args = {"path": str(auth), "src": str(local), "state": "link", "force": True}
    facts = gather_local([FactRequest(FILE, str(auth)), FactRequest(LINK, str(auth)),
                          FactRequest(GLOB, str(auth), recurse=True),
                          FactRequest(FILE, str(local))])
    backups = tmp_path / "backups"
    apply_local(plan("file", args, facts), "r1", backups)
    assert auth.is_symlink() and auth.read_text() == "new\n"
    entries = parse_index((backups / "r1" / "index").read_text())
    undo = subprocess.run(["sh", "-s"], capture_output=True,
                          input=restore_script("r1", entries, str(backups)).encode())
    assert undo.returncode == 0, undo.stderr
    assert not auth.is_symlink() and auth.read_text() == "old\n"
    assert local.read_text() == "new\n"
