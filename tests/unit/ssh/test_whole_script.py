"""A node-side script is sent as one brace group (`whole_script`): the node's sh runs nothing of
a script cut short. Here: what HostSession.run sends, and what sh does with a cut script."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from harden.apply.modules.base import Change, apply_script, write_snippet
from harden.ssh.common import HostSession, whole_script
from harden.ssh.session import CommandResult


class Recording(HostSession):
    """A session whose exec streams only record what they were sent."""

    def __init__(self):
        self.host, self.exec_count, self.sent = "h", 0, []
        import threading
        self._lock = threading.Lock()
        self.spec = type("Spec", (), {"become": False})()

    def _open_stream(self, command, deadline, timeout):
        session = self

        class Stream:
            def finish(self, stdin):
                session.sent.append((command, stdin))
                return CommandResult(0, b"", b"")
        return Stream()


def test_scripts_on_stdin_are_grouped_and_other_input_is_not():
    session = Recording()
    session.run("sh -s", stdin=b"echo one\necho two\n", become=False)
    session.run("cat", stdin=b"data\n", become=False)
    assert session.sent == [("sh -s", b"{\necho one\necho two\n}\n"), ("cat", b"data\n")]
    assert whole_script(b"echo x") == b"{\necho x\n}\n"


@pytest.mark.parametrize("shell", [s for s in ("dash", "bash") if shutil.which(s)])
def test_a_cut_write_runs_nothing_grouped(tmp_path, shell):
    target = tmp_path / "manifest.yaml"
    target.write_text("original\n")
    script = apply_script([Change("write", write_snippet(str(target), b"new content " * 400,
                                                         None, None, None), path=str(target))],
                          "20260101T000000Z-abcdef", str(tmp_path / "backups")).encode()
    heredoc = script.index(b"<<'HARDEN_EOF'\n") + len(b"<<'HARDEN_EOF'\n")
    cut = heredoc + 77 * 5                  # after five whole lines of the base64 content
    # sent bare, sh runs the write with the content it got: the file is replaced by a prefix
    bare = subprocess.run([shell, "-s"], input=script[:cut], capture_output=True)
    assert target.read_bytes() == (b"new content " * 400)[:285], bare.stderr
    target.write_text("original\n")
    grouped = subprocess.run([shell, "-s"], input=whole_script(script)[:cut + 2],
                             capture_output=True)
    assert grouped.returncode != 0 and target.read_text() == "original\n"
    whole = subprocess.run([shell, "-s"], input=whole_script(script), capture_output=True)
    assert whole.returncode == 0, whole.stderr
    assert target.read_bytes() == b"new content " * 400
