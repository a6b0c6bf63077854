"""click's usage errors exit 1 (bad input), never 2: 2 means "drift found" to cron jobs and CI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from harden.cli import cli


@pytest.mark.parametrize("args, says", [
    (["apply", "--no-such-flag"], "No such option '--no-such-flag'"),
    (["apply"], "Missing argument 'PLAYBOOK...'"),
    (["check", "--benchmark"], "Option '--benchmark' requires an argument"),
    (["check", "-i", "x", "--format", "yaml"], "Invalid value for '--format'"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["lab", "up", "--dir", "x", "--sshd-env", "KRB5_KTNAME"], "NAME=VALUE expected"),
    (["apply", "--check-mode", "strict", "site.yml"], "Invalid value for '--check-mode'"),
], ids=["unknown-option", "missing-argument", "missing-option", "bad-choice", "unknown-command",
        "name-without-value", "bad-check-mode"])
def test_usage_errors_exit_1_with_clicks_message(args, says):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and says in result.output


def test_help_still_exits_0():
    assert CliRunner().invoke(cli, ["apply", "--help"]).exit_code == 0


def test_the_installed_entry_point_exits_1_on_an_unknown_flag():
    done = subprocess.run([sys.executable, "-m", "harden.cli", "apply", "--no-such-flag"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "No such option '--no-such-flag'" in done.stderr


@pytest.mark.parametrize("args, check, mode", [
    ([], False, "predict"), (["--check"], True, "predict"),
    (["--check-mode", "predict"], True, "predict"),
    (["--check-mode", "ansible"], True, "ansible"), (["-C", "--check-mode", "ansible"], True,
                                                     "ansible"),
], ids=["default", "check", "predict-implies-check", "ansible-implies-check", "both"])
def test_a_check_mode_given_implies_check(monkeypatch, tmp_path, args, check, mode):
    import harden.apply.runner as runner

    seen = {}
    monkeypatch.setattr(runner, "run_apply",
                        lambda inventories, playbooks, options, output: seen.update(
                            check=options.check, mode=options.check_mode) or 0)
    (tmp_path / "hosts.ini").write_text("h1\n")
    result = CliRunner().invoke(cli, ["apply", "-i", str(tmp_path / "hosts.ini"), *args,
                                      str(tmp_path / "site.yml")])
    assert result.exit_code == 0, result.output
    assert seen == {"check": check, "mode": mode}
