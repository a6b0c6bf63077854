"""The probe's batched helpers (one process for many paths or flags) report exactly what the
one-at-a-time helpers they replace report, on a fake node tree."""

import os
import subprocess

import pytest

from harden.cis.probe import build_probe_script, parse_probe_output
from harden.node.limits import MAX_FILE_BYTES


def _functions(root) -> str:
    """The probe's prelude and helper functions (up to the process listing), rooted at `root`."""
    full = build_probe_script(str(root))
    return full[:full.index("# boot time from /proc/stat")]


def _run(root, body: str) -> list[str]:
    out = subprocess.run(["sh", "-c", _functions(root) + body], capture_output=True, text=True,
                         check=True).stdout
    return sorted(line for line in out.splitlines() if not line.startswith("HARDEN-PROBE|"))


def test_read_files_gives_the_records_read_file_gives_one_by_one(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "a.yaml").write_text("kind: A\n")
    (etc / "with space.conf").write_text("x=1\n")
    (etc / "pipe|name").write_text("p: 1\n")
    (etc / "big").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    os.symlink("a.yaml", etc / "link.yaml")
    os.mkfifo(etc / "fifo")
    paths = ["/etc/a.yaml", "/etc/with space.conf", "/etc/pipe|name", "/etc/big",
             "/etc/link.yaml", "/etc/fifo", "/etc/missing", "", "/etc/a.yaml", "/etc"]
    quoted = " ".join(f"'{p}'" for p in paths)
    batched = _run(tmp_path, f"read_files {quoted}\nflush_stats\n")
    alone = _run(tmp_path, f"for p in {quoted}; do read_file \"$p\"; done\nflush_stats\n")
    assert _facts(tmp_path, batched) == _facts(tmp_path, alone)
    # the plain files' contents came in one W record (one head, one base64), not one F each
    assert [line[:2] for line in batched].count("W|") == 1
    assert _facts(tmp_path, batched)["contents"]["/etc/with space.conf"] == "x=1\n"
    assert any(line.startswith("E|size|") for line in batched)


def test_read_files_of_one_plain_file_writes_the_f_record_read_file_writes(tmp_path):
    (tmp_path / "a.conf").write_text("a=1\n")
    assert (_run(tmp_path, "read_files /a.conf /missing\nflush_stats\n")
            == _run(tmp_path, "read_file /a.conf\nread_file /missing\nflush_stats\n"))


def _facts(root, lines: list[str]) -> dict:
    """What the controller makes of the records: contents, stats, missing paths, errors."""
    facts = parse_probe_output("\n".join([f"HARDEN-PROBE|1|{root}"] + lines))
    return {"contents": facts.contents, "stats": facts.stats, "missing": facts.missing,
            "targets": facts.targets, "dangling": facts.dangling,
            "unreadable": sorted(str(e) for e in facts.unreadable)}


def test_mfvals_reads_each_flag_as_the_single_flag_sed_did(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("    - --config=/a\n"
                        "    - \"--config=/b\"\n"
                        "    - --config-dir=/d\n"
                        "    -   '--audit-policy-file=/p'   \n"
                        "    - --authorization-config=/x --v=2\n")
    script = ("mfvals /m.yaml --config --config-dir --audit-policy-file --authorization-config "
              "--absent\nprintf 'V|%s|%s|%s|%s|%s\\n' \"$M1\" \"$M2\" \"$M3\" \"$M4\" \"$M5\"\n"
              "mfvals /nothing.yaml --config\nprintf 'N|%s\\n' \"$M1\"\n")
    assert _run(tmp_path, script) == ["N|", "V|/b|/d|/p|/x --v=2|"]


def test_the_process_listing_is_split_as_read_split_it(tmp_path):
    """ps right-aligns the pids; a line's pid and argv0 are taken across blanks and tabs, and
    only argv0's basename names a component (an argument never does)."""
    for pid, argv in ((11, [b"/usr/local/bin/kube-apiserver", b"--x"]), (12, [b"etcd"]),
                      (13, [b"python3", b"-m", b"kubelet"]), (14, [b"kubelet*"])):
        proc = tmp_path / "proc" / str(pid)
        proc.mkdir(parents=True)
        (proc / "cmdline").write_bytes(b"\0".join(argv) + b"\0")
    full = build_probe_script(str(tmp_path))
    listing = full[full.index("PIDS=''"):full.index("# every pid of a component")]
    fake_ps = ("list_procs() { printf '   11 /usr/local/bin/kube-apiserver --x\\n\\t12\\tetcd\\n"
               "  13 python3 -m kubelet\\n  14 kubelet*\\n'; }\n")
    out = subprocess.run(["sh", "-c", _functions(tmp_path) + fake_ps + listing +
                          'echo "PIDS|$PIDS"\n'], capture_output=True, text=True,
                         check=True).stdout
    records = [line.split("|")[:3] for line in out.splitlines() if line.startswith("P|")]
    assert records == [["P", "11", "kube-apiserver"], ["P", "12", "etcd"]]
    assert "PIDS| kube-apiserver:11 etcd:12" in out


def _tree_paths(top) -> set[str]:
    """What `find -H top` lists: top, and below it every entry, links not followed."""
    found = {str(top)}
    for here, dirs, files in os.walk(top):
        found.update(os.path.join(here, name) for name in dirs + files)
    return found


def test_stat_tree_records_every_path_find_would_list(tmp_path):
    """Dot files, nested directories, a file named like a glob, a link to a directory (its
    own stat and its target's, not walked) and a dangling link."""
    pki = tmp_path / "real-pki"
    (pki / "etcd" / ".hidden-dir").mkdir(parents=True)
    for name in ("ca.crt", ".dot", "..dotdot", "*", "etcd/ca.key", "etcd/.hidden-dir/x"):
        (pki / name).write_text("k")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "not-walked").write_text("n")
    os.symlink(tmp_path / "elsewhere", pki / "linked-dir")
    os.symlink("nowhere", pki / "dangling")
    os.symlink(pki, tmp_path / "pki")                # a symlinked root is followed
    facts = _facts(tmp_path, _run(tmp_path, "stat_tree /pki\nflush_stats\n"))
    expected = {"/pki" + p[len(str(pki)):] for p in _tree_paths(pki)}
    assert set(facts["stats"]) == expected
    assert facts["stats"]["/pki"].type == "symbolic link"
    assert facts["targets"]["/pki/linked-dir"].type == "directory"
    assert "/pki/linked-dir/not-walked" not in facts["stats"]
    assert facts["dangling"] == {"/pki/dangling": "nowhere"}


@pytest.mark.parametrize("entries", [499, 1200])
def test_a_large_tree_is_stat_ed_whole_by_find_instead(tmp_path, entries):
    """Up to 500 paths a tree's paths wait in the shell's queue; beyond that (the queue grows
    by copying) find lists them: either way every path, a link's target and no duplicate."""
    nets = tmp_path / "var/lib/cni/networks/pods"
    nets.mkdir(parents=True)
    for n in range(entries - 1):
        (nets / f"10.{n // 250}.{n % 250}.1").write_text("c")
    os.symlink("10.0.0.1", nets / "last_reserved_ip")
    lines = _run(tmp_path, "stat_tree /var/lib/cni/networks\nflush_stats\n")
    facts = _facts(tmp_path, lines)
    assert len(facts["stats"]) == entries + 2
    assert len([line for line in lines if line.startswith("S|")]) == entries + 2
    assert facts["targets"]["/var/lib/cni/networks/pods/last_reserved_ip"].type == "regular file"


def test_read_files_reads_proc_sys_and_zero_byte_files_alone(tmp_path):
    """Only files whose stat size says what a read returns join the one head: a path under
    /proc or /sys (procfs sizes 0, sysfs 4096, whatever they hold) or a file of 0 bytes is
    read alone, with the F record read_file writes."""
    for name, text in (("etc/a.conf", "a: 1\n"), ("etc/b.conf", "b: 2\n"), ("etc/empty", ""),
                       ("proc/7/cmdline", "x\0"), ("sys/k/enabled", "[on]\n")):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    paths = "/etc/a.conf /proc/7/cmdline /etc/empty /sys/k/enabled /etc/b.conf //etc/a.conf"
    lines = _run(tmp_path, f"read_files {paths}\nflush_stats\n")
    batched = [line for line in lines if line.startswith("W|")]
    assert len(batched) == 1
    assert batched[0].split("|")[2:] == ["5", f"{tmp_path}/etc/a.conf", "5", f"{tmp_path}/etc/b.conf"]
    alone = sorted(line.rsplit("|", 1)[1] for line in lines if line.startswith("F|"))
    assert alone == [f"{tmp_path}{p}" for p in ("//etc/a.conf", "/etc/empty", "/proc/7/cmdline",
                                                 "/sys/k/enabled")]
    assert _facts(tmp_path, lines)["contents"] == {
        "/etc/a.conf": "a: 1\n", "/etc/b.conf": "b: 2\n", "/etc/empty": "", "//etc/a.conf": "a: 1\n",
        "/proc/7/cmdline": "x\0", "/sys/k/enabled": "[on]\n"}


def test_stat_tree_of_a_root_with_trailing_slashes_keys_its_paths_with_one(tmp_path):
    """--cni-conf-dir=/etc/cni/net.d/ names the same tree as /etc/cni/net.d."""
    (tmp_path / "etc/cni/net.d").mkdir(parents=True)
    (tmp_path / "etc/cni/net.d/10-x.conf").write_text("{}")
    slashed = _facts(tmp_path, _run(tmp_path, "stat_tree /etc/cni/net.d//\nflush_stats\n"))
    plain = _facts(tmp_path, _run(tmp_path, "stat_tree /etc/cni/net.d\nflush_stats\n"))
    assert set(slashed["stats"]) == set(plain["stats"]) == {"/etc/cni/net.d", "/etc/cni/net.d/10-x.conf"}
    missing = _facts(tmp_path, _run(tmp_path, "stat_tree /opt/cni/\nflush_stats\n"))
    assert missing["missing"] == {"/opt/cni"}
