"""The lab kubeadm's command line: the upgrade forms kubeadm has, its flags, cobra-like errors."""

from __future__ import annotations

import pytest

from harden.lab import kubeadm
from harden.lab.kubeadm import KubeadmError


@pytest.mark.parametrize("argv,expected", [
    (["upgrade", "apply", "v1.30.5", "-y"], ("apply", "v1.30.5", True, "")),
    (["upgrade", "apply", "--yes", "--patches", "/p"], ("apply", "", True, "/p")),
    (["upgrade", "node", "--patches=/etc/kubernetes/patches"],
     ("node", "", False, "/etc/kubernetes/patches")),
    (["upgrade", "diff", "v1.30.5"], ("diff", "v1.30.5", False, "")),
])
def test_upgrade_forms(argv, expected):
    opts = kubeadm.parse_args(argv)
    assert (opts.command, opts.version, opts.yes, opts.patches_dir) == expected


def test_upgrade_node_phases():
    assert kubeadm.parse_args(["upgrade", "node", "phase", "kubelet-config"]).phase == \
        "kubelet-config"
    opts = kubeadm.parse_args(["upgrade", "node", "phase", "control-plane", "--patches", "/p"])
    assert (opts.phase, opts.patches_dir) == ("control-plane", "/p")
    with pytest.raises(KubeadmError, match='unknown phase "addon"'):
        kubeadm.parse_args(["upgrade", "node", "phase", "addon"])


@pytest.mark.parametrize("argv,message", [
    (["upgrade", "apply", "--dry-run"], "unknown flag: --dry-run"),
    (["upgrade", "node", "v1.30.5"], 'unexpected argument "v1.30.5"'),
    (["upgrade", "node", "--patches"], "flag needs an argument: --patches"),
    (["init"], 'unknown command "init"'),
])
def test_what_kubeadm_would_not_accept(argv, message):
    with pytest.raises(KubeadmError, match=message):
        kubeadm.parse_args(argv)


def test_errors_exit_one_with_kubeadm_trailer(capsys):
    assert kubeadm.main(["upgrade", "apply", "--bogus"], node_file="/nonexistent") == 1
    err = capsys.readouterr().err
    assert "unknown flag: --bogus" in err and "--v=5 or higher" in err


@pytest.mark.parametrize("args,says", [
    (["--kubeadm-api", "v1beta2"], "Invalid value for '--kubeadm-api'"),
    (["--kubeadm-config", "/nonexistent/kubeadm"], "does not exist"),
])
def test_lab_up_kubeadm_options_are_checked_by_the_command_line(tmp_path, args, says):
    from click.testing import CliRunner

    from harden.cli import cli

    result = CliRunner().invoke(cli, ["lab", "up", "--dir", str(tmp_path / "lab"), *args])
    assert result.exit_code == 1 and says in result.output
    assert not (tmp_path / "lab").exists()
