"""argv rewriting: a lab container's /proc/<pid>/cmdline reads exactly like the manifest's argv."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from harden.lab import procname


@pytest.mark.parametrize("argv", [
    ["kube-apiserver", "--advertise-address=127.64.0.10"] + [f"--x{i}=y" for i in range(40)],
    ["etcd", "--name=" + "n" * 300],
    ["kube-scheduler", "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf", "--a=é"],
])
def test_padding_makes_the_argv_area_exactly_as_long(argv):
    assert len(procname.encoded_argv(procname.runner_argv(argv))) == len(procname.encoded_argv(argv))


def test_short_argv_cannot_shrink_the_area_but_reads_the_same():
    short = ["etcd", "--a=1"]
    assert procname.runner_argv(short)[-1] == ""
    assert len(procname.encoded_argv(procname.runner_argv(short))) > len(procname.encoded_argv(short))


def test_child_cmdline_reads_exactly_like_the_wanted_argv():
    argv = ["kube-apiserver", "--advertise-address=127.64.0.10", "--enable-admission-plugins=A,B",
            "--profiling=false", "--long=" + "v" * 200]
    env = {"PATH": "/usr/bin:/bin", procname.ARGV_ENV: __import__("json").dumps(argv),
           "PYTHONPATH": ":".join(p for p in sys.path if p)}
    code = ("import time,os; from harden.lab import procname; a=procname.apply_from_env(); "
            "print(os.environ.get('HARDEN_LAB_ARGV'), flush=True); time.sleep(30)")
    child = subprocess.Popen([*procname.runner_argv(argv)[:1], "-c", code, *procname.runner_argv(argv)[3:]],
                             env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "None"  # not inherited further
        with open(f"/proc/{child.pid}/cmdline", "rb") as handle:
            raw = handle.read()
        assert raw.startswith(procname.encoded_argv(argv)[:-1])
        assert procname.read_cmdline(child.pid) == argv
    finally:
        child.kill()
        child.wait()


def test_exec_as_runs_the_module_under_the_wanted_name(tmp_path):
    argv = ["lab-idle-thing", "--flag=" + "z" * 120, "--other=1"]
    child = subprocess.Popen(procname.runner_argv(argv), env={
        procname.ARGV_ENV: __import__("json").dumps(argv),
        "PYTHONPATH": ":".join(p for p in sys.path if p)})
    try:
        deadline = time.monotonic() + 10
        while procname.read_cmdline(child.pid) != argv:
            assert time.monotonic() < deadline, procname.read_cmdline(child.pid)
            time.sleep(0.05)
        with open(f"/proc/{child.pid}/cmdline", "rb") as handle:
            assert handle.read() == procname.encoded_argv(argv)
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("argv0, comm", [("kube-apiserver", "kube-apiserver"),
                                         ("kube-controller-manager", "kube-controller"),
                                         ("/usr/bin/kubelet", "kubelet")])
def test_command_name_is_the_binary_basename_cut_to_15_bytes(argv0, comm):
    assert procname.command_name(argv0) == comm.encode()


def test_retitled_child_is_found_by_ps_and_pgrep_under_the_binary_name():
    argv = ["kube-controller-manager", "--bind-address=127.0.0.1"]
    env = {"PATH": "/usr/bin:/bin", procname.ARGV_ENV: __import__("json").dumps(argv),
           "PYTHONPATH": ":".join(p for p in sys.path if p)}
    code = ("import time; from harden.lab import procname; procname.apply_from_env(); "
            "print('ready', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        with open(f"/proc/{child.pid}/comm") as handle:
            assert handle.read().strip() == "kube-controller"
        found = subprocess.run(["pgrep", "-x", "kube-controller"], capture_output=True, text=True)
        assert str(child.pid) in found.stdout.split()
        ps = subprocess.run(["ps", "-C", "kube-controller", "-o", "pid="], capture_output=True,
                            text=True)
        assert str(child.pid) in ps.stdout.split()
    finally:
        child.kill()
        child.wait()
