"""The apply prelude's backup helpers (harden.apply.modules.base.APPLY_PRELUDE), run by the
local `sh` against a temporary root with every program they start traced: which programs a
change costs, and that the backup is complete and durable before the path changes.

A wrapper per program on PATH logs its name, its arguments and the mode of a watched file at
that moment, then runs the real program."""

from __future__ import annotations

import grp
import hashlib
import inspect
import os
import pwd
import shlex
import shutil
import stat
import subprocess

import pytest

from harden.apply.facts import FileState
from harden.apply.modules import user as user_module
from harden.apply.modules.base import (Change, TaskFailed, apply_script, plan_metadata,
                                       plan_write, write_snippet)
from harden.apply.rollback import restore_script
from harden.runs.journal import parse_index

RUN = "20260101T000000Z-abc123"
PROGRAMS = ("readlink", "awk", "mkdir", "cp", "sync", "sha256sum", "stat", "chmod", "chown",
            "chgrp", "mv", "rm", "base64", "cut", "dirname", "basename", "cat", "wc", "touch")


@pytest.fixture
def node(tmp_path):
    """A root with one config file (0644), a traced PATH, and where the run's backups go."""
    (tmp_path / "etc").mkdir()
    conf = tmp_path / "etc" / "app.conf"
    conf.write_text("a = 1\n")
    os.chmod(conf, 0o644)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real_stat = shutil.which("stat")
    for name in PROGRAMS:
        real = shutil.which(name)
        wrapper = bin_dir / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f"{{ printf '%s' {name}; for a; do printf ' %s' \"$a\"; done\n"
            f"  [ -z \"$WATCH\" ] || printf ' @%s' \"$({real_stat} -c %a -- \"$WATCH\")\"\n"
            "  echo; } >> \"$TRACE\"\n"
            f"exec {real} \"$@\"\n")
        wrapper.chmod(0o755)
    return tmp_path


def run(node, *snippets: str, watch=None) -> list[str]:
    """Run one apply script of `snippets` (umask 022); the programs it started, in order."""
    done = run_script(node, *snippets, watch=watch)
    assert done.returncode == 0, done.stderr.decode()
    return (node / "trace").read_text().splitlines()


def run_script(node, *snippets: str, watch=None) -> subprocess.CompletedProcess:
    """Run one apply script of `snippets` (umask 022), whatever its exit status."""
    trace = node / "trace"
    trace.write_text("")
    script = apply_script([Change(summary="", script=s) for s in snippets], RUN,
                          str(node / "backups"))
    env = dict(os.environ, PATH=f"{node / 'bin'}:{os.environ['PATH']}", TRACE=str(trace),
               WATCH=str(watch or ""))
    return subprocess.run(["sh", "-c", "umask 022; exec sh -s"], input=script.encode(),
                          capture_output=True, env=env, timeout=60)


def names(trace: list[str]) -> list[str]:
    return [line.split()[0] for line in trace]


def lines_of(node, name: str) -> list[list[str]]:
    return [line.split("\t") for line in (node / "backups" / RUN / name).read_text().splitlines()]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_first_chmod_starts_no_resolver_no_awk_and_syncs_once_before_the_change(node):
    conf = node / "etc" / "app.conf"
    trace = run(node, f"hb_chmod {shlex.quote(str(conf))} 0600", watch=conf)
    assert names(trace) == ["mkdir", "chmod",                  # the run's dir, locked down
                            "mkdir", "cp", "sha256sum", "stat", "sync",    # the backup
                            "chmod",                                       # the change
                            "cp",                          # its after copy (mode: the one given)
                            "sync"]                                        # on exit
    backup_sync, last_sync = [line for line in trace if line.startswith("sync ")]
    run_dir = node / "backups" / RUN
    assert f"{run_dir}/index" in backup_sync.split() and \
        f"{run_dir}/files{conf}" in backup_sync.split()
    assert backup_sync.endswith("@644")             # durable while the original is untouched
    assert last_sync.split()[2] == f"{run_dir}/after-partial" and last_sync.endswith("@600")
    uid, gid = str(conf.stat().st_uid), str(conf.stat().st_gid)
    assert lines_of(node, "index") == [["file", "644", uid, gid, sha(b"a = 1\n"), str(conf)]]
    assert lines_of(node, "after-partial") == [["file", "600", uid, gid, sha(b"a = 1\n"),
                                                str(conf)]]
    assert stat.S_IMODE((run_dir / "files" / str(conf).lstrip("/")).stat().st_mode) == 0o644
    for private in (run_dir, run_dir / "files" / str(conf.parent).lstrip("/"),
                    run_dir / "after" / str(conf.parent).lstrip("/")):
        assert stat.S_IMODE(private.stat().st_mode) == 0o700, private
    for private in ("index", "after-partial"):
        assert stat.S_IMODE((run_dir / private).stat().st_mode) == 0o600


def test_a_path_indexed_by_an_earlier_exec_of_the_run_is_not_backed_up_again(node):
    conf = node / "etc" / "app.conf"
    q = shlex.quote(str(conf))
    run(node, f"hb_chmod {q} 0600")
    trace = run(node, write_snippet(str(conf), b"a = 2\n", None, None, None),
                f"hb_chmod {q} 0640")
    assert names(trace).count("cut") == 1 and "awk" not in names(trace)
    assert not [line for line in trace if line.startswith("cp ") and "/files/" in line]
    uid, gid = str(conf.stat().st_uid), str(conf.stat().st_gid)
    assert lines_of(node, "index") == [["file", "644", uid, gid, sha(b"a = 1\n"), str(conf)]]
    assert (node / "backups" / RUN / "files" / str(conf).lstrip("/")).read_text() == "a = 1\n"
    assert lines_of(node, "after-partial")[-1] == ["file", "640", uid, gid, sha(b"a = 2\n"),
                                                   str(conf)]


def test_a_write_syncs_backup_and_new_content_before_the_rename_and_is_not_hashed_again(node):
    conf = node / "etc" / "app.conf"
    trace = run(node, write_snippet(str(conf), b"a = 2\n", "0600", None, None))
    order = names(trace)
    assert "sha256sum" in order and order.count("sha256sum") == 1      # the original's only
    assert "readlink" not in order and "dirname" not in order and "basename" not in order
    first_sync = next(line.split() for line in trace if line.startswith("sync "))
    tmp = f"{conf.parent}/.{conf.name}.harden-tmp"
    run_dir = node / "backups" / RUN
    assert {f"{run_dir}/index", f"{run_dir}/files{conf}", tmp} <= set(first_sync)
    assert order.index("sync") < order.index("mv")
    assert order[-1] == "sync" and trace[-1].split()[-2:] == [f"{run_dir}/after-partial",
                                                              str(conf.parent)]
    assert conf.read_text() == "a = 2\n" and stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert lines_of(node, "after-partial")[-1][4] == sha(b"a = 2\n")


def test_paths_through_a_link_resolve_as_readlink_does_and_plain_ones_without_it(node):
    real = node / "real"
    real.mkdir()
    (real / "f").write_text("x\n")
    (node / "link").symlink_to(real)
    odd = f"{node}/etc/../real/f"
    trace = run(node, f"hb_chmod {shlex.quote(str(node / 'link' / 'f'))} 0600",
                f"hb_chmod {shlex.quote(odd)} 0640",
                f"hb_chmod {shlex.quote(str(node / 'etc' / 'app.conf'))} 0600",
                f"hb_chmod {shlex.quote(f'{node}/./etc//app.conf/')} 0640")
    assert names(trace).count("readlink") == 3      # the link, `..`, `./`; not the plain path
    assert [e.path for e in parse_index((node / "backups" / RUN / "index").read_text())] == \
        [str(real / "f"), str(node / "etc" / "app.conf")]
    assert stat.S_IMODE((real / "f").stat().st_mode) == 0o640
    assert stat.S_IMODE((node / "etc" / "app.conf").stat().st_mode) == 0o640
    assert (node / "link").is_symlink()


def test_the_helpers_leave_the_node_umask_to_the_changes_after_them(node):
    made = node / "etc" / "made"
    run(node, write_snippet(str(node / "etc" / "new" / "f"), b"x\n", None, None, None),
        f"hb_chmod {shlex.quote(str(node / 'etc' / 'app.conf'))} 0600",
        f": > {shlex.quote(str(made))}")
    assert stat.S_IMODE(made.stat().st_mode) == 0o644
    assert stat.S_IMODE((node / "etc" / "new").stat().st_mode) == 0o755
    assert stat.S_IMODE((node / "etc" / "new" / "f").stat().st_mode) == 0o644


def _other_account() -> tuple[str, str, int, int]:
    user = next(p for p in pwd.getpwall() if p.pw_uid != 0)
    group = next(g for g in grp.getgrall() if g.gr_gid != 0)
    return user.pw_name, group.gr_name, user.pw_uid, group.gr_gid


@pytest.mark.parametrize("existing, mode, owner, group, want_mode, want_ids", [
    (True, None, None, None, 0o640, ("keep", "keep")),
    (True, "u+x", None, None, 0o740, ("keep", "keep")),
    (True, "0600", "user", None, 0o600, ("user", "keep")),
    (True, None, None, "group", 0o640, ("keep", "group")),
    (True, "0604", "user", "group", 0o604, ("user", "group")),
    (False, None, None, None, 0o644, (0, 0)),
    (False, "0600", "user", None, 0o600, ("user", 0)),
    (False, "g+w", None, "group", 0o664, (0, "group")),
])
def test_write_keeps_or_sets_mode_owner_and_group_as_asked(node, existing, mode, owner, group,
                                                           want_mode, want_ids):
    user, group_name, uid, gid = _other_account()
    path = node / "etc" / "target"
    if existing:
        path.write_text("old\n")
        os.chown(path, 0, gid)
        os.chmod(path, 0o640)
    run(node, write_snippet(str(path), b"new\n", mode, user if owner else None,
                            group_name if group else None))
    ids = {"keep": None, "user": uid, "group": gid}
    want_uid = 0 if want_ids[0] == "keep" else ids.get(want_ids[0], want_ids[0])
    want_gid = gid if want_ids[1] == "keep" else ids.get(want_ids[1], want_ids[1])
    assert path.read_text() == "new\n"
    assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_uid, path.stat().st_gid) == \
        (want_mode, want_uid, want_gid)
    assert lines_of(node, "after-partial")[-1][1:5] == [f"{want_mode:o}", str(want_uid),
                                                        str(want_gid), sha(b"new\n")]


def test_a_rollback_never_restores_a_backup_copy_that_is_not_the_one_indexed(node):
    """The syncs batched around a backup rely on this: a copy torn by a crash is refused."""
    conf = node / "etc" / "app.conf"
    run(node, write_snippet(str(conf), b"a = 2\n", None, None, None))
    (node / "backups" / RUN / "files" / str(conf).lstrip("/")).write_text("a =")
    entries = parse_index((node / "backups" / RUN / "index").read_text())
    undo = subprocess.run(["sh", "-s"], capture_output=True, timeout=60,
                          input=restore_script(RUN, entries, str(node / "backups")).encode())
    assert undo.returncode == 3 and b"does not match its recorded sha256" in undo.stderr
    assert conf.read_text() == "a = 2\n"
    assert not list(conf.parent.glob(".*harden-restore"))


@pytest.mark.parametrize("mode, want, looked_up", [("0600", 0o600, False), ("640", 0o640, False),
                                                   ("0000", 0, False), ("u+x", 0o744, True),
                                                   ("2750", 0o2750, True)])
def test_a_chmod_records_the_mode_the_file_really_has(node, mode, want, looked_up):
    """A plain octal mode right after the backup is recorded without a `stat`; a symbolic or
    special one is looked up. Either way the line is what the file now is."""
    conf = node / "etc" / "app.conf"
    trace = run(node, f"hb_chmod {shlex.quote(str(conf))} {mode}")
    assert stat.S_IMODE(conf.stat().st_mode) == want
    assert lines_of(node, "after-partial") == [[
        "file", f"{want:o}", str(conf.stat().st_uid), str(conf.stat().st_gid),
        sha(b"a = 1\n"), str(conf)]]
    assert names(trace).count("stat") == (2 if looked_up else 1)


def test_a_tree_looped_over_then_one_of_its_paths_written_is_indexed_once(node):
    """hb_under (the skel copy of a new home) runs its helper in the script's shell: a later
    write of a path it backed up in the same exec adds no second index line or copy."""
    skel, home = node / "skel", node / "home" / "u"
    (skel / "sub").mkdir(parents=True)
    (skel / ".bashrc").write_text("skel\n")
    (skel / "sub" / "f").write_text("f\n")
    h = shlex.quote(str(home))
    run(node, f"hb_mkdirs {shlex.quote(str(home.parent))}; hb_backup {h}\n"
              f"hb_under hb_backup {shlex.quote(str(skel))} {h}\ncp -a {skel} {h}",
        write_snippet(str(home / ".bashrc"), b"mine\n", None, None, None),
        f"hb_chmod {shlex.quote(str(home / 'sub' / 'f'))} 0600")
    paths = [line[5] for line in lines_of(node, "index")]
    assert sorted(paths) == sorted([str(home.parent), str(home), str(home / ".bashrc"),
                                    str(home / "sub"), str(home / "sub" / "f")])
    assert all(line[0] == "absent" for line in lines_of(node, "index"))
    assert not (node / "backups" / RUN / "files" / str(home).lstrip("/")).exists()
    assert not (node / "backups" / RUN / "under.list").exists()


def test_no_helper_of_the_user_module_runs_in_a_pipeline():
    """The home's scripts loop with hb_under, never `| while` (a subshell loses $hb_seen)."""
    assert "| while" not in inspect.getsource(user_module)
    assert "hb_under hb_backup /etc/skel" in inspect.getsource(user_module)


@pytest.mark.parametrize("path", ["/etc/a\n/etc/b", "/etc/a\tb"])
def test_a_change_of_a_path_with_a_newline_or_tab_fails_naming_it(path):
    with pytest.raises(TaskFailed, match="tab or newline") as failed:
        plan_write(path, b"x\n", None, None, None, None, False)
    assert repr(path) in str(failed.value)
    with pytest.raises(TaskFailed, match="tab or newline"):
        Change(summary="", script="", link=("/etc/l", path))


def test_an_index_line_wrapped_by_a_newline_does_not_pass_for_another_path(node):
    """The wrapped part of a line (no tab) is no path of the index: the path it names is
    still backed up before its change."""
    run_dir = node / "backups" / RUN
    run_dir.mkdir(parents=True)
    other = node / "etc" / "b"
    other.write_text("b\n")
    (run_dir / "index").write_text(f"absent\t-\t-\t-\t-\t{node}/etc/a\n{other}\n")
    run(node, f"hb_chmod {shlex.quote(str(other))} 0600")
    assert lines_of(node, "index")[-1] == ["file", "644", str(other.stat().st_uid),
                                           str(other.stat().st_gid), sha(b"b\n"), str(other)]


def test_a_path_resolving_to_one_with_a_newline_is_refused_on_the_node(node):
    target = node / "etc" / "x\ny"
    target.write_text("t\n")
    link = node / "etc" / "lnk"
    link.symlink_to(target)
    done = run_script(node, f"hb_chmod {shlex.quote(str(link))} 0600")
    assert done.returncode != 0 and b"tab or newline" in done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    index = node / "backups" / RUN / "index"
    assert not index.exists() or index.read_text() == ""


def test_a_stray_backup_copy_without_its_index_line_is_replaced(node):
    """A SIGKILL between the copy and its index line leaves a copy that is no backup: the
    next exec backs the path up again (line and copy) before changing it."""
    conf = node / "etc" / "app.conf"
    stray = node / "backups" / RUN / "files" / str(conf).lstrip("/")
    stray.parent.mkdir(parents=True)
    stray.write_text("a =")
    run(node, f"hb_chmod {shlex.quote(str(conf))} 0600")
    assert lines_of(node, "index") == [["file", "644", str(conf.stat().st_uid),
                                        str(conf.stat().st_gid), sha(b"a = 1\n"), str(conf)]]
    assert stray.read_text() == "a = 1\n"


@pytest.mark.parametrize("existing", [True, False])
def test_a_write_with_a_setuid_mode_and_an_owner_keeps_the_setuid_bit(node, existing):
    """Owner and group are set before the mode (as Ansible does): a chown clears setuid."""
    user, group_name, uid, gid = _other_account()
    path = node / "etc" / "tool"
    if existing:
        path.write_text("old\n")
    run(node, write_snippet(str(path), b"new\n", "4755", user, group_name))
    assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_uid, path.stat().st_gid) == \
        (0o4755, uid, gid)


def test_a_kept_setuid_mode_survives_a_write_keeping_owner_and_group(node):
    path = node / "etc" / "tool"
    path.write_text("old\n")
    os.chmod(path, 0o4755)
    run(node, write_snippet(str(path), b"new\n", None, None, None))
    assert stat.S_IMODE(path.stat().st_mode) == 0o4755


def test_a_chmod_and_chown_of_one_path_chown_first_so_a_setuid_mode_stays(node):
    user, group_name, uid, gid = _other_account()
    conf = node / "etc" / "app.conf"
    state = FileState(str(conf), "file", 0o644, "root", "root", b"a = 1\n")
    [change] = plan_metadata(state, 0o4755, user, group_name)
    assert change.script.index("hb_chown") < change.script.index("hb_chmod")
    run(node, change.script)
    assert (stat.S_IMODE(conf.stat().st_mode), conf.stat().st_uid, conf.stat().st_gid) == \
        (0o4755, uid, gid)
    assert lines_of(node, "after-partial")[-1][1:4] == ["4755", str(uid), str(gid)]
