"""The fact probe: the sh script really runs (on this machine and on a fake node tree), and the
parser turns its output into facts without ever carrying encryption key material."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harden.cis.probe import (CAN_I_QUERIES, PROBE_VERSION, ProbeParseError, access_reviews,
                              build_probe_script, can_i_answers, parse_probe_output)

from support.local_node import ShellSession
from support.paths import FIXTURES as FIXTURES_DIR

SECRET = "dGhpcy1pcy1hLXRlc3Qta2V5LXRoYXQtbXVzdC1zdGF5LXB1dA=="
FIXTURES = FIXTURES_DIR / "facts"


def run_probe(root: str = "", path_env: str | None = None) -> str:
    env = dict(os.environ)
    if path_env is not None:
        env["PATH"] = path_env
    done = subprocess.run(["sh", "-c", build_probe_script(root)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_script_is_valid_posix_sh(tmp_path):
    script = tmp_path / "probe.sh"
    script.write_text(build_probe_script())
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            args = [shell, "--posix", "-n", str(script)] if shell == "bash" else [shell, "-n", str(script)]
            assert subprocess.run(args, capture_output=True).returncode == 0, shell


def test_script_uses_no_python_on_the_node():
    script = build_probe_script()
    assert "python" not in script
    assert script.startswith("#!/bin/sh\n")


def test_runs_on_this_machine_and_parses():
    facts = parse_probe_output(run_probe())
    assert facts.complete
    assert set(facts.processes) <= {"kube-apiserver", "kube-controller-manager", "kube-scheduler",
                                    "etcd", "kubelet", "kube-proxy"}
    # every path the probe asked about is either stat'ed or recorded missing
    assert "/etc/kubernetes/pki" in facts.stats or "/etc/kubernetes/pki" in facts.missing


def _fake_node(root: Path) -> None:
    def put(path: str, text: str, mode: int = 0o600):
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)

    def proc(pid: int, *argv: str):
        target = root / "proc" / str(pid)
        target.mkdir(parents=True, exist_ok=True)
        (target / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        return target

    put("/etc/kubernetes/manifests/kube-apiserver.yaml",
        "spec:\n  containers:\n  - command:\n    - kube-apiserver\n"
        "    - --encryption-provider-config=/etc/kubernetes/enc/config.yaml\n"
        "    - --audit-policy-file=/etc/kubernetes/audit-policy.yaml\n")
    put("/etc/kubernetes/manifests/.kube-apiserver.yaml.harden-tmp", "ignored: true\n")
    put("/etc/kubernetes/enc/config.yaml",
        "kind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n"
        f"      - secretbox:\n          keys:\n            - name: k1\n              secret: {SECRET}\n"
        "      - identity: {}\n  - resources: [configmaps]\n    providers:\n      - identity: {}\n")
    put("/etc/kubernetes/audit-policy.yaml", "kind: Policy\nrules:\n- level: Metadata\n", 0o644)
    put("/etc/kubernetes/pki/ca.crt", "c", 0o644)
    put("/etc/kubernetes/pki/etcd/ca.key", "k", 0o600)
    put("/srv/kubelet/config.yaml", "kind: KubeletConfiguration\nreadOnlyPort: 0\n", 0o640)
    put("/var/lib/etcd-data/member/x", "m")
    (root / "var/lib/etcd-data").chmod(0o700)
    proc(11, "/usr/local/bin/kube-apiserver", "--encryption-provider-config=/etc/kubernetes/enc/config.yaml",
         "--audit-policy-file", "/etc/kubernetes/audit-policy.yaml")
    etcd = proc(12, "etcd", "--data-dir=/var/lib/etcd-data")
    (etcd / "environ").write_bytes(b"ETCD_CLIENT_CERT_AUTH=true\0AWS_SECRET=nope\0")
    proc(13, "/usr/bin/kubelet", "--config", "/srv/kubelet/config.yaml", "--kubeconfig=/etc/kubernetes/kubelet.conf")
    proc(14, "/usr/bin/containerd")
    proc(15, "python3", "-m", "kubelet")


def test_fake_node_tree(tmp_path):
    root = tmp_path / "node"
    _fake_node(root)
    out = run_probe(str(root), path_env="/usr/bin:/bin")
    assert SECRET not in out and "AWS_SECRET" not in out
    facts = parse_probe_output(out)
    assert facts.complete
    assert set(facts.processes) == {"kube-apiserver", "etcd", "kubelet"}
    assert facts.process("kube-apiserver").argv[-1] == "/etc/kubernetes/audit-policy.yaml"
    assert facts.process("etcd").env == {"ETCD_CLIENT_CERT_AUTH": "true"}
    # paths are the node's own, without the test prefix
    assert "/etc/kubernetes/manifests/kube-apiserver.yaml" in facts.contents
    assert not any(p.endswith("harden-tmp") for p in facts.contents)
    assert facts.contents["/etc/kubernetes/audit-policy.yaml"].startswith("kind: Policy")
    assert facts.encryption_providers["/etc/kubernetes/enc/config.yaml"] == [["secretbox", "identity"], ["identity"]]
    assert "/etc/kubernetes/enc/config.yaml" not in facts.contents
    assert facts.stats["/etc/kubernetes/enc/config.yaml"].mode == 0o600
    # the kubelet config named with the space form of --config is read; the etcd data dir from --data-dir
    assert facts.contents["/srv/kubelet/config.yaml"].endswith("readOnlyPort: 0\n")
    assert facts.stats["/srv/kubelet/config.yaml"].mode == 0o640
    assert facts.stats["/var/lib/etcd-data"].type == "directory"
    assert facts.stats["/etc/kubernetes/pki/etcd/ca.key"].mode == 0o600
    assert "/etc/kubernetes/kubelet.conf" in facts.missing
    objects, why = facts.kubectl_objects()
    assert objects is None and "admin.conf is not present" in why
    assert SECRET not in repr(facts)


def test_the_kubelet_drop_ins_config_flags_are_found_even_without_a_final_newline(tmp_path):
    # the drop-ins' globs ran under `set -f` (never expanded: no drop-in was read), and the
    # files were concatenated: a last line without its newline became one line with the next
    # file's first, and only that line's last --config= was kept
    root = tmp_path / "node"
    dropins = root / "etc/systemd/system/kubelet.service.d"
    dropins.mkdir(parents=True)
    (dropins / "10-a.conf").write_text('[Service]\nEnvironment="A=--config=/etc/kubelet-a.yaml"')
    (dropins / "20-b.conf").write_text('Environment="B=--config=/etc/kubelet-b.yaml"\n'
                                       'Environment="C=--config-dir=/etc/kubelet-b.d"\n')
    (root / "etc/kubelet-a.yaml").write_text("kind: KubeletConfiguration\nreadOnlyPort: 0\n")
    (root / "etc/kubelet-b.yaml").write_text("kind: KubeletConfiguration\n")
    (root / "etc/kubelet-b.d").mkdir()
    (root / "etc/kubelet-b.d/50-b.conf").write_text("readOnlyPort: 10255\n")
    facts = parse_probe_output(run_probe(str(root), path_env="/usr/bin:/bin"))
    assert facts.contents["/etc/kubelet-a.yaml"].endswith("readOnlyPort: 0\n")
    assert facts.contents["/etc/kubelet-b.yaml"] == "kind: KubeletConfiguration\n"
    assert facts.contents["/etc/kubelet-b.d/50-b.conf"] == "readOnlyPort: 10255\n"


def test_a_base64_without_wrap_option_gives_the_same_facts(tmp_path):
    """-w 0 saves a `tr` per value where base64 has it; where it has not, the output is the same."""
    root = tmp_path / "node"
    _fake_node(root)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "base64").write_text(f"#!/bin/sh\ncase \"$*\" in *-w*) exit 1;; esac\n"
                                   f"exec {shutil.which('base64')} \"$@\"\n")
    (bin_dir / "base64").chmod(0o755)
    plain = parse_probe_output(run_probe(str(root), path_env="/usr/bin:/bin"))
    without = parse_probe_output(run_probe(str(root), path_env=f"{bin_dir}:/usr/bin:/bin"))
    assert without == plain and without.contents


def _argvals(tmp_path, cmdline: bytes, flags: list[str]) -> list[str]:
    """argvals (the shell walk over one tr of the process's arguments) on a fake /proc/7."""
    proc = tmp_path / "proc" / "7"
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "cmdline").write_bytes(cmdline)
    full = build_probe_script()
    functions = full[full.index("argvals() {"):full.index("etcd_census() {")]
    script = (f"R={tmp_path}\n{functions}\nargvals 7 {' '.join(flags)}\n"
              + "".join(f"printf '%s|' \"$A{n}\"\n" for n in range(1, len(flags) + 1)))
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    return out.split("|")[:-1]


def test_several_flags_read_in_one_pass_follow_the_one_flag_rules(tmp_path):
    """argvals reads each flag as pflag does: the last occurrence wins, `--f v` and `--f=v`
    alike, an empty `--f=` is no value, and `--kubeconfig --config=/x` is read by each flag
    on its own terms."""
    argv = ["kubelet", "--config=/a", "--kubeconfig", "--config=/x", "--config", "/b", "--v=2",
            "--client-ca-file="]
    cmdline = b"\0".join(a.encode() for a in argv) + b"\0"
    flags = ["--config", "--kubeconfig", "--v", "--client-ca-file", "--absent"]
    assert _argvals(tmp_path, cmdline, flags) == ["/b", "--config=/x", "2", "", ""]


@pytest.mark.parametrize("cmdline, expected", [
    (b"x\0--config=/a\0--config\0\0", [""]),       # an empty last argument is the value
    (b"x\0--name=a\n--config=/n\0", ["/n"]),         # a newline splits an argument (as awk did)
    (b"x\0--config=/z", ["/z"]),                     # no NUL after the last argument
    (b"x\0--config\0--config\0/y\0", ["--config"]), # the value line is not a flag again
    (b"", [""]),
])
@pytest.mark.parametrize("padding", [0, 9000], ids=["walked", "over-8KiB-awk"])
def test_argvals_edge_cases_read_as_the_awk_pass_did(tmp_path, cmdline, expected, padding):
    """The same answers from the shell walk and, for arguments over 8 KiB, from awk."""
    cmdline = cmdline[:2] + b"p\0" * (padding // 2) + cmdline[2:] if cmdline else cmdline
    assert _argvals(tmp_path, cmdline, ["--config"]) == expected


def test_a_huge_command_line_of_a_components_name_is_read_in_one_pass(tmp_path):
    """Anyone can start a process named kube-apiserver with a 2 MB command line of short
    arguments: its flags are read by awk in one pass, not line by line in the shell (which
    copies the rest per line: hours on such a line)."""
    cmdline = b"kube-apiserver\0" + b"-x\0" * 500_000 + b"--config\0/c\0"
    assert _argvals(tmp_path, cmdline, ["--config", "--other"]) == ["/c", ""]


def test_sysctl_files_are_read_by_one_grep_with_each_files_own_lines(tmp_path):
    """Every sysctl file a boot reads gets its own lines setting a protected key (cut at 64 KiB),
    a masking symlink and a file without such a line get none; a path with a colon, where a
    "path:" prefix could be another file's, is read on its own and gets the same."""
    root = tmp_path / "node"
    etc, run = root / "etc/sysctl.d", root / "run/sysctl.d"
    etc.mkdir(parents=True)
    run.mkdir(parents=True)
    (etc / "90-kubelet.conf").write_text("vm.overcommit_memory = 1\n# kernel.panic=1\n"
                                         "net.ipv4.ip_forward=1\n- kernel/panic_on_oops = 1\n"
                                         "kernel.panic=10\\x")
    (etc / "10-net.conf").write_text("net.core.somaxconn=1\n")
    (etc / "50-masked.conf").symlink_to("/dev/null")
    (run / "a:b.conf").write_text("vm.panic_on_oom=1\n")
    (root / "etc/sysctl.conf").write_text("".join(f"kernel.panic = {i}\n" for i in range(5000)))
    files = parse_probe_output(run_probe(str(root), path_env="/usr/bin:/bin")).sysctl_files
    assert files["/etc/sysctl.d/90-kubelet.conf"] == ("vm.overcommit_memory = 1\n"
                                                      "- kernel/panic_on_oops = 1\n"
                                                      "kernel.panic=10\\x\n")
    assert files["/etc/sysctl.d/10-net.conf"] == files["/etc/sysctl.d/50-masked.conf"] == ""
    assert files["/run/sysctl.d/a:b.conf"] == "vm.panic_on_oom=1\n"
    assert len(files["/etc/sysctl.conf"]) == 65536
    (run / "a:b.conf").unlink()          # no colon left: every file from the one grep
    again = parse_probe_output(run_probe(str(root), path_env="/usr/bin:/bin")).sysctl_files
    assert again == {k: v for k, v in files.items() if k != "/run/sysctl.d/a:b.conf"}


def test_recorded_fixtures_hold_no_key_material():
    for probe in FIXTURES.glob("*.probe"):
        text = probe.read_text()
        decoded = " ".join(base64.b64decode(field, validate=False).decode("utf-8", "replace")
                           for line in text.splitlines() if line.startswith(("F|", "N|", "W|"))
                           for field in [line.split("|")[1]])
        assert "secret:" not in decoded, probe.name


def _line(tag: str, *fields: str) -> str:
    return "|".join((tag,) + fields)


def test_parser_rejects_foreign_output():
    with pytest.raises(ProbeParseError, match="header"):
        parse_probe_output("sudo: a password is required\n")
    with pytest.raises(ProbeParseError, match="version"):
        parse_probe_output("HARDEN-PROBE|99|\nEND|\n")
    with pytest.raises(ProbeParseError, match="line 2"):
        parse_probe_output("HARDEN-PROBE|1|\nX|what\n")
    with pytest.raises(ProbeParseError, match="base64"):
        parse_probe_output("HARDEN-PROBE|1|\nF|not base64!|/etc/x\n")


def test_truncated_output_is_incomplete():
    cmdline = base64.b64encode(b"kubelet\0--config=/c\0").decode()
    facts = parse_probe_output("HARDEN-PROBE|1|\nT|1700000000|100\n" + _line("P", "7", "kubelet", "2500", cmdline) + "\n")
    assert not facts.complete
    assert facts.process("kubelet").argv == ["kubelet", "--config=/c"]
    assert facts.process("kubelet").started == 1700000025.0


def test_stat_line_with_separator_in_path():
    facts = parse_probe_output("HARDEN-PROBE|1|/r\nS|644|0|0|root|root|1:2|1700000000|regular file|/r/etc/a|b\nEND|\n")
    stat = facts.stats["/etc/a|b"]
    assert (stat.mode, stat.owner, stat.type, stat.mtime) == (0o644, "root:root", "regular file", 1700000000)


def test_kubectl_records():
    ok = base64.b64encode(b'{"kind": "List", "items": [{"kind": "Namespace"}]}').decode()
    facts = parse_probe_output(f"HARDEN-PROBE|1|\nK|get|0|{ok}\nEND|\n")
    assert facts.kubectl_objects() == ([{"kind": "Namespace"}], "")
    bad = base64.b64encode(b"error: You must be logged in to the server (Unauthorized)").decode()
    facts = parse_probe_output(f"HARDEN-PROBE|1|\nK|get|1|{bad}\nEND|\n")
    objects, why = facts.kubectl_objects()
    assert objects is None and "Unauthorized" in why and "exit 1" in why


def _review(verb: str, resource: str, **status) -> str:
    return json.dumps({"kind": "SelfSubjectAccessReview", "spec": {"resourceAttributes": {
        "verb": verb, "resource": resource}}, "status": status}, indent=4)


def test_can_i_reviews_read_as_kubectl_auth_can_i_prints_them():
    out = "\n".join([_review("get", "secrets", allowed=True, reason="RBAC: allowed by x"),
                     _review("list", "secrets", allowed=False),
                     _review("watch", "secrets", allowed=False, reason="no rule",
                             evaluationError="webhook down"),
                     _review("create", "pods", allowed=False)])
    raw = base64.b64encode(out.encode()).decode()
    facts = parse_probe_output(f"HARDEN-PROBE|1|\nK|can-i|0|{raw}\nEND|\n")
    assert facts.kubectl["can-i get secrets"] == (0, "yes")
    assert facts.kubectl["can-i list secrets"] == (1, "no")
    assert facts.kubectl["can-i watch secrets"] == (1, "no - no rule - webhook down")
    assert (facts.can_i("get secrets"), facts.can_i("list secrets"),
            facts.can_i("watch secrets"), facts.can_i("create pods")) == (True, False, None, False)


def test_can_i_questions_without_a_review_carry_the_error():
    partial = _review("get", "secrets", allowed=False) + "\nError from server (Forbidden): x"
    answers = can_i_answers(1, partial)
    assert answers["can-i get secrets"] == (1, "no")
    assert answers["can-i create pods"] == (1, partial)
    assert all(rc == 255 and text == "refused" for rc, text in can_i_answers(255, "refused").values())
    assert set(can_i_answers(0, "")) == {f"can-i {q}" for q in CAN_I_QUERIES}


def test_old_per_question_can_i_records_still_parse():
    raw = base64.b64encode(b"yes").decode()
    facts = parse_probe_output(f"HARDEN-PROBE|1|\nK|can-i get secrets|0|{raw}\nEND|\n")
    assert facts.can_i("get secrets") is True


def test_the_reviews_ask_every_question_cluster_wide():
    items = json.loads(access_reviews())["items"]
    asked = [f"{i['spec']['resourceAttributes']['verb']} {i['spec']['resourceAttributes']['resource']}"
             for i in items]
    assert asked == list(CAN_I_QUERIES)
    assert all("namespace" not in i["spec"]["resourceAttributes"] for i in items)


def test_gather_facts_is_one_exec_with_become():
    from harden.cis.probe import gather_facts

    session = ShellSession()
    facts = gather_facts(session, "local")
    assert facts.complete and session.exec_count == 1 and session.becomes == [True]


def test_gather_facts_failures_name_the_host():
    from harden.errors import HostError
    from harden.cis.probe import gather_facts

    class Broken(ShellSession):
        def run(self, command, **kwargs):
            return super().run("echo 'sudo: unknown user' >&2; exit 1", **kwargs)

    with pytest.raises(HostError, match="host cp1.*exited with 1.*unknown user"):
        gather_facts(Broken(), "cp1")


def test_kubectl_failure_is_summarised_without_klog_noise():
    from harden.cis.probe import kubectl_error

    klog = ('E1126 23:39:53.143829    6820 memcache.go:265] "Unhandled Error" '
            'err="couldn\'t get current server API group list: the server could not find the '
            'requested resource"\n')
    assert kubectl_error(klog * 3) == ("couldn't get current server API group list: the server "
                                       "could not find the requested resource")
    assert kubectl_error(klog + "error: the server doesn't have a resource type \"pods\"\n") \
        == 'error: the server doesn\'t have a resource type "pods"'
    assert kubectl_error("") == "no output"


def test_the_census_layout_is_the_first_api_servers_encryption_config(tmp_path):
    root = tmp_path / "node"
    _fake_node(root)
    inside = root / "proc/11/root/etc/kubernetes/enc"          # what the server's container sees
    inside.mkdir(parents=True)
    (inside / "config.yaml").write_text(
        "resources:\n  - resources: [secrets]\n    providers:\n      - aesgcm:\n"
        f"          keys:\n            - name: k2\n              secret: {SECRET}\n")
    facts = parse_probe_output(run_probe(str(root), path_env="/usr/bin:/bin"))
    assert facts.census.layout == [{"resources": ["secrets"], "providers": ["aesgcm:k2"]}]


def _w_record(blob: bytes, *files: tuple[int, str]) -> str:
    sizes = "".join(f"|{size}|{path}" for size, path in files)
    return f"HARDEN-PROBE|1|\nW|{base64.b64encode(blob).decode()}{sizes}\nEND|\n"


def test_files_read_together_are_split_by_their_sizes_not_by_header_lines_in_them():
    """A file whose text holds what looks like head's header for the next file keeps that
    text; the next file's content is its own."""
    forged = b"a: 1\n\n==> /etc/b.conf <==\nevil: true\n"
    blob = b"==> /etc/a.conf <==\n" + forged + b"\n==> /etc/b.conf <==\nb: 2\n"
    facts = parse_probe_output(_w_record(blob, (len(forged), "/etc/a.conf"), (5, "/etc/b.conf")))
    assert facts.contents == {"/etc/a.conf": forged.decode(), "/etc/b.conf": "b: 2\n"}


def test_header_lines_that_quote_the_name_split_the_same():
    """Newer coreutils quote a file name with a space in head's header line."""
    blob = b"==> '/etc/a b.conf' <==\nx\n==> /etc/c.conf <==\ny"
    facts = parse_probe_output(_w_record(blob, (1, "/etc/a b.conf"), (1, "/etc/c.conf")))
    assert facts.contents == {"/etc/a b.conf": "x", "/etc/c.conf": "y"}


_ABC = ((1, "/etc/a.conf"), (1, "/etc/b.conf"), (1, "/etc/c.conf"))


@pytest.mark.parametrize("blob, kept", [
    (b"==> /etc/a.conf <==\nx: 10\n\n==> /etc/b.conf <==\ny\n==> /etc/c.conf <==\nz", {}),  # a grew
    (b"==> /etc/a.conf <==\n\n==> /etc/b.conf <==\ny\n==> /etc/c.conf <==\nz", {}),  # a shrank
    (b"==> /etc/a.conf <==\nx\n==> /etc/b.conf <==\nyy\n==> /etc/c.conf <==\nz",
     {"/etc/a.conf": "x"}),                                                        # b grew
    (b"==> /etc/a.conf <==\nx\n==> /etc/b.conf <==\ny\n==> /etc/c.conf <==\nzz",
     {"/etc/a.conf": "x", "/etc/b.conf": "y"}),                                    # c grew
    (b"==> /etc/a.conf <==\nx\n==> /etc/b.conf <==\ny\n==> /etc/c.conf <==\n",
     {"/etc/a.conf": "x", "/etc/b.conf": "y"}),                                    # c shrank
    (b"==> /etc/b.conf <==\ny\n==> /etc/c.conf <==\nz", {}),                    # a vanished
    (b"==> /etc/a.conf <==\nx\n==> /etc/c.conf <==\nz", {"/etc/a.conf": "x"}),  # b vanished
], ids=["first-grew", "first-shrank", "middle-grew", "last-grew", "last-shrank",
        "first-vanished", "middle-vanished"])
def test_a_file_that_changed_between_stat_and_read_leaves_it_and_later_ones_unread(blob, kept):
    """Nothing from the file that changed on is guessed at: those files are unread, each with
    why, the ones before keep their text, and the output as a whole is still usable."""
    facts = parse_probe_output(_w_record(blob, *_ABC))
    assert facts.contents == kept
    assert sorted(facts.unread) == [p for _, p in _ABC if p not in kept]
    assert all(why == f"{path} changed while the probe read it (stat said 1 bytes)"
               for path, why in facts.unread.items())
    assert facts.complete and not facts.unreadable


@pytest.mark.parametrize("padding", [0, 9000], ids=["in-the-shell", "over-8KiB-grep"])
def test_etcd_variables_are_picked_as_a_grep_of_their_lines_picked_them(tmp_path, padding):
    """Only the ETCD_* variables the checks read leave the node; a newline inside a value
    splits it into lines (a later line may name another variable), a glob character stays
    as it is, and the last ETCD_DATA_DIR is the data directory stat'ed."""
    root = tmp_path / "node"
    etcd = root / "proc" / "12"
    etcd.mkdir(parents=True)
    (etcd / "cmdline").write_bytes(b"etcd\0")
    (etcd / "environ").write_bytes(b"ETCD_DATA_DIR=/d1\0HOME=/root\0ETCD_CERT_FILE=/x/*\0"
                                   b"ETCD_AUTO_TLS=a\nETCD_KEY_FILE=/k\0ETCD_NAME=n\0"
                                   + b"PAD=" + b"p" * padding + b"\0ETCD_DATA_DIR=/d2\0")
    (root / "d2").mkdir()
    facts = parse_probe_output(run_probe(str(root), path_env="/usr/bin:/bin"))
    assert facts.process("etcd").env == {"ETCD_DATA_DIR": "/d2", "ETCD_CERT_FILE": "/x/*",
                                         "ETCD_AUTO_TLS": "a", "ETCD_KEY_FILE": "/k"}
    assert facts.stats["/d2"].type == "directory" and "/d1" not in facts.stats


@pytest.mark.skipif(not shutil.which("busybox") and not os.environ.get("CI"),
                    reason="busybox is not installed here (make setup installs it; CI requires it)")
def test_busybox_ash_and_its_applets_give_the_facts_dash_and_coreutils_give(tmp_path):
    """The probe keeps to what BusyBox's ash, head (its `==>` lines), stat, base64, sed, awk
    and grep do alike: a node with only BusyBox gets the same facts."""
    root = tmp_path / "node"
    _fake_node(root)
    (root / "etc/kubernetes/pki/.hidden").write_text("h")
    os.symlink("ca.crt", root / "etc/kubernetes/pki/link.crt")
    applets = tmp_path / "busybox"
    applets.mkdir()
    for name in ("sh", "head", "stat", "base64", "tr", "sed", "awk", "grep", "ps", "find",
                 "cat", "mktemp", "rm", "readlink"):
        (applets / name).symlink_to(shutil.which("busybox"))

    def facts(shell: str, path: str) -> dict:
        done = subprocess.run([shell, "-c", build_probe_script(str(root))], capture_output=True,
                              text=True, env={"PATH": path}, timeout=60)
        assert done.returncode == 0, done.stderr
        found = parse_probe_output(done.stdout)
        assert found.complete and len(found.contents) >= 3
        return {"contents": found.contents, "stats": found.stats, "targets": found.targets,
                "missing": found.missing, "processes": found.processes,
                "providers": found.encryption_providers, "sysctl": found.sysctl_files}

    assert (facts(str(applets / "sh"), f"{applets}:/usr/bin:/bin")
            == facts(shutil.which("dash") or "sh", "/usr/bin:/bin"))


def test_a_huge_environment_of_a_process_named_etcd_is_filtered_in_one_pass(tmp_path):
    """Anyone can name a process etcd and give it a 2 MB environment of wanted-looking lines;
    grep picks them in one pass (the shell's appends would copy what they keep each time)."""
    root = tmp_path / "node"
    etcd = root / "proc" / "12"
    etcd.mkdir(parents=True)
    (etcd / "cmdline").write_bytes(b"etcd\0")
    (etcd / "environ").write_bytes(b"ETCD_AUTO_TLS=1\0" * 120_000 + b"ETCD_DATA_DIR=/d\0")
    done = subprocess.run(["sh", "-c", build_probe_script(str(root))], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert parse_probe_output(done.stdout).process("etcd").env["ETCD_DATA_DIR"] == "/d"


SYSFS_FILE = Path("/sys/kernel/mm/transparent_hugepage/enabled")   # stat: 4096, reads: a line


@pytest.mark.skipif(not SYSFS_FILE.is_file(), reason="no sysfs file to pad the forgery with")
def test_a_process_whose_flags_name_procfs_and_sysfs_files_cannot_forge_a_manifest(tmp_path):
    """The reviewer's recipe: any user starts processes named like components whose flags
    name their own /proc/<pid>/cmdline (stat: 0 bytes) before the manifest and a sysfs file
    (stat: 4096 bytes) after it; the command line holds a header for the manifest, forged text
    of its size, and padding that makes the sysfs file's region swallow the real manifest.
    Split by stat sizes in one batch, the forged text would be taken for the manifest's; the
    files those flags name are read alone, so the manifest's text stays its own."""
    root = tmp_path / "node"
    manifest = root / "etc/kubernetes/manifests/kube-apiserver.yaml"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("spec:\n  containers:\n  - command:\n    - kube-apiserver\n"
                        "    - --anonymous-auth=false\n")
    real = manifest.read_bytes()
    header = lambda path: f"\n==> {path} <==\n".encode()   # noqa: E731 - head's, after a file
    forged = b"forged: true\n".ljust(len(real), b"#")
    sysfs = f"{root}/proc/16/root{SYSFS_FILE}"             # as head names it
    middle = header(manifest) + real + header(sysfs) + SYSFS_FILE.read_bytes()
    argv0 = header(manifest) + forged + header(sysfs) + b"P" * (4096 - len(middle) - 5)
    attacker = subprocess.Popen([argv0, "100"], executable="sleep")
    try:
        cmdline = f"/proc/{attacker.pid}/cmdline"
        for pid, argv in ((11, b"kube-apiserver\0--audit-policy-file=" + cmdline.encode()),
                          (16, b"kube-proxy\0--config=" + str(SYSFS_FILE).encode())):
            proc = root / "proc" / str(pid)
            proc.mkdir(parents=True)
            (proc / "cmdline").write_bytes(argv + b"\0")
            (proc / "root").symlink_to("/")          # the process's root: the real one
        facts = parse_probe_output(run_probe(str(root), path_env="/usr/bin:/bin"))
        assert facts.contents["/etc/kubernetes/manifests/kube-apiserver.yaml"] == real.decode()
        assert facts.contents["/proc/11/root" + cmdline] == (argv0 + b"\x00100\x00").decode()
        assert facts.contents["/proc/16/root" + str(SYSFS_FILE)] == SYSFS_FILE.read_text()
        assert not facts.unread and not facts.unreadable
    finally:
        attacker.kill()
        attacker.wait()


def test_the_census_records_reach_the_census_through_the_probe_parser():
    """O| (--etcd-servers-overrides) comes from the census like C|, Q| and L|: a control plane
    whose API server has the flag is audited, not failed for an unknown record."""
    facts = parse_probe_output("\n".join([
        "HARDEN-PROBE|" + PROBE_VERSION + "|", "L|resources resources secrets providers aescbc "
        "keys name k1", "O|/events#https://127.0.0.1:2381", "Q|secrets|aescbc:k1|3",
        "C|etcdctl|/registry", "END|"]) + "\n")
    assert facts.census.overrides == "/events#https://127.0.0.1:2381"
    assert facts.census.counts == {"secrets": {"aescbc:k1": 3}}
