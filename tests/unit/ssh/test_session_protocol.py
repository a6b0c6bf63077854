"""Every session is the same shape: the paramiko and OpenSSH transports and the tests' local
stand-in all implement harden.ssh.session.Session, method by method."""

import inspect

from harden.ssh.session import Session
from harden.ssh.openssh import OpenSSHSession
from harden.ssh.transport import ParamikoSession

from support.local_node import ShellSession

METHODS = ("run", "open_tcp", "close")


def test_the_local_stand_in_is_a_session():
    assert isinstance(ShellSession(), Session)


def test_both_sessions_have_the_protocols_signatures():
    for method in METHODS:
        wanted = inspect.signature(getattr(Session, method))
        for cls in (ParamikoSession, OpenSSHSession, ShellSession):
            got = inspect.signature(getattr(cls, method))
            assert list(got.parameters) == list(wanted.parameters), (cls.__name__, method)
            assert [p.kind for p in got.parameters.values()] == \
                [p.kind for p in wanted.parameters.values()], (cls.__name__, method)


def test_an_object_without_run_is_not_a_session():
    class Half:
        host, exec_count = "h", 0

        def close(self):
            pass

    assert not isinstance(Half(), Session)
