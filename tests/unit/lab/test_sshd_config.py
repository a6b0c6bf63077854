"""A lab node's sshd_config: the lab's own lines, then `lab up --sshd-option` lines, last (sshd
keeps a keyword's first value; Match blocks must close the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harden.errors import InputError
from harden.lab import sshd


def node_config(**options) -> list[str]:
    return sshd.config_text(address="127.9.9.11", host_key=Path("/k"), pid_file=Path("/p"),
                            authorized_keys_dir=Path("/a"), **options).splitlines()


def test_extra_options_come_after_every_line_of_the_lab():
    extra = ["GSSAPIAuthentication yes", "Match User labops", "  PubkeyAuthentication no"]
    lines = node_config(user_ca=Path("/ca.pub"), extra_options=extra)
    assert lines[-3:] == extra
    assert lines.index("PubkeyAuthentication yes") < lines.index("GSSAPIAuthentication yes")
    assert "TrustedUserCAKeys /ca.pub" in lines[:-3]


def test_without_extra_options_the_config_is_the_labs_alone():
    assert node_config() == node_config(extra_options=())
    assert not any(line.startswith("GSSAPI") for line in node_config())


@pytest.mark.parametrize("options, env, says", [
    (["GSSAPIAuthentication yes\nPermitRootLogin yes"], {}, "one non-empty sshd_config line"),
    (["   "], {}, "one non-empty sshd_config line"),
    ([], {"1BAD": "x"}, "NAME=VALUE expected"),
    ([], {"KRB5 KTNAME": "x"}, "NAME=VALUE expected"),
])
def test_options_and_environment_that_cannot_be_written_as_given_are_refused(options, env, says):
    with pytest.raises(InputError, match=says):
        sshd.check_options(options, env)


def test_one_line_options_and_plain_names_pass():
    sshd.check_options(["GSSAPIAuthentication yes", "Match User labops"],
                       {"KRB5_KTNAME": "FILE:/tmp/x y", "KRB5_CONFIG": ""})
