"""Limits on what a node sends back (harden/node/limits.py): a huge file, a FIFO, deep or
alias-heavy YAML and endless output each give an error naming the file (or host) and the
limit, never a crash, a hang or an unbounded read."""

from __future__ import annotations

import os
import subprocess

import pytest

from harden.apply.facts import FILE, FactRequest, build_script, parse_output
from harden.apply.manifest import Manifest
from harden.cis.probe import build_probe_script, gather_facts
from harden.errors import HostError, InputError
from harden.node import limits
from harden.ssh.session import CommandResult
from harden.ssh.common import OutputTooLarge
from harden.ssh.openssh import _ProcessStream
from harden.ssh.transport import _Stream

DEEP = "a: " + "[" * (limits.MAX_YAML_DEPTH + 1) + "]" * (limits.MAX_YAML_DEPTH + 1) + "\n"


def aliases(count: int) -> str:
    return "x: &x 1\nlist:\n" + "".join("- *x\n" for _ in range(count))


def test_yaml_deeper_than_the_limit_is_refused_with_its_line():
    with pytest.raises(limits.NodeDataError, match=r"^/n/c.yaml: YAML nested deeper than 64 "
                                                   r"levels at line 1 \(MAX_YAML_DEPTH\)"):
        limits.check_yaml(DEEP, "/n/c.yaml")
    limits.check_yaml("a: " + "[" * 10 + "]" * 10, "/n/c.yaml")


def test_yaml_alias_bombs_are_refused_and_few_aliases_pass():
    limits.check_yaml(aliases(limits.MAX_YAML_ALIASES), "p")
    with pytest.raises(limits.NodeDataError, match="more than 100 YAML aliases"):
        limits.safe_load(aliases(limits.MAX_YAML_ALIASES + 1), "p")


def test_text_that_is_not_yaml_is_left_to_the_loader():
    limits.check_yaml("[Service]\nExecStart=/usr/bin/kubelet\n\tx: [\n", "unit")


def test_a_deeply_nested_manifest_is_an_input_error_not_a_recursion_error():
    deep = "kind: Pod\nspec: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(InputError, match="kube-apiserver.yaml: YAML nested deeper than 64"):
        Manifest(deep, "/etc/kubernetes/manifests/kube-apiserver.yaml")


def gather_local(requests):
    script = build_script(requests)
    out = subprocess.run(["sh", "-s"], input=script, capture_output=True, text=True, check=True,
                         timeout=30)
    return parse_output(requests, out.stdout)


def test_apply_facts_refuse_a_file_over_the_limit_without_reading_it(tmp_path):
    big = tmp_path / "config.yaml"
    with open(big, "wb") as handle:
        handle.truncate(256 * 1024 * 1024)           # sparse: sized, never sent
    with pytest.raises(ValueError, match=rf"{big} is 268435456 bytes, over the 4194304-byte "
                                         r"limit .*\(MAX_FILE_BYTES\)"):
        gather_local([FactRequest(FILE, str(big), content=True)])
    small = tmp_path / "small.yaml"
    small.write_bytes(b"x" * limits.MAX_FILE_BYTES)
    facts = gather_local([FactRequest(FILE, str(small), content=True)])
    assert len(facts.file(str(small), content=True).content) == limits.MAX_FILE_BYTES


def test_apply_facts_name_a_fifo_instead_of_reading_it(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    with pytest.raises(limits.NodeDataError, match=rf"{fifo} is a fifo, not a regular file"):
        gather_local([FactRequest(FILE, str(fifo), content=True)])
    stat_only = gather_local([FactRequest(FILE, str(fifo))])
    assert stat_only.file(str(fifo)).kind == "other"


class _ProbeOfTree:
    """A session whose probe runs against a node tree under `root` on this machine."""

    def __init__(self, root):
        self.root = str(root)

    def run(self, command, *, become=None, stdin=None, timeout=None):
        done = subprocess.run(["sh", "-c", build_probe_script(self.root)], capture_output=True,
                              timeout=60)
        return CommandResult(done.returncode, done.stdout, done.stderr)


def test_check_probe_names_host_file_and_limit_for_a_huge_file(tmp_path):
    config = tmp_path / "var/lib/kubelet/config.yaml"
    config.parent.mkdir(parents=True)
    with open(config, "wb") as handle:
        handle.truncate(256 * 1024 * 1024)
    with pytest.raises(HostError, match=r"host cp1: /var/lib/kubelet/config.yaml is 268435456 "
                                        r"bytes, over the 4194304-byte limit"):
        gather_facts(_ProbeOfTree(tmp_path), "cp1")


def test_check_probe_names_a_fifo_and_deep_yaml(tmp_path):
    (tmp_path / "etc/default").mkdir(parents=True)
    os.mkfifo(tmp_path / "etc/default/kubelet")       # cat of it would never end
    config = tmp_path / "var/lib/kubelet/config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(DEEP)
    with pytest.raises(HostError) as caught:
        gather_facts(_ProbeOfTree(tmp_path), "cp1")
    message = str(caught.value)
    assert "/etc/default/kubelet is a fifo, not a regular file" in message
    assert "/var/lib/kubelet/config.yaml: YAML nested deeper than 64 levels" in message


class _Channel:
    """Enough of a paramiko channel for _Stream: canned chunks, a real fd for select."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.read_fd, write_fd = os.pipe()
        os.write(write_fd, b"x")
        self.closed = False

    def fileno(self):
        return self.read_fd

    def recv_ready(self):
        return bool(self.chunks)

    def recv(self, size):
        return self.chunks.pop(0)

    def recv_stderr_ready(self):
        return False

    def close(self):
        self.closed = True


def test_output_past_the_limit_closes_the_channel_and_names_the_host():
    channel = _Channel([b"a" * 60, b"b" * 60, b"c" * 60])
    stream = _Stream("cp1", channel, None, None)
    stream.max_output = 100
    with pytest.raises(OutputTooLarge, match=r"host cp1: a command's output passed the "
                                             r"100-byte limit"):
        stream.pump(None)
    assert channel.closed and len(stream.stdout) == 120 and channel.chunks == [b"c" * 60]


def test_the_openssh_transport_stops_reading_at_the_limit_too():
    class Session:
        host = "cp2"

    process = subprocess.Popen(["sh", "-c", "head -c 10000000 /dev/zero; sleep 30"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    stream = _ProcessStream(Session(), process, None, None)
    stream.max_output = 100_000
    with pytest.raises(OutputTooLarge, match="host cp2: a command's output passed the "
                                             "100000-byte limit"):
        stream.finish(b"")
    assert process.poll() is not None                      # the client was stopped
