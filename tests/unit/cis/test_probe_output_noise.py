"""Probe output that is not only the probe's: kubectl's klog warnings and login-shell noise."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harden.cis.probe import ProbeParseError, build_probe_script, parse_probe_output

KLOG_WARNING = ("W1126 23:39:53.143829    6820 warnings.go:70] "
                "v1 ComponentStatus is deprecated in v1.19+")


def fake_kubectl(bin_dir: Path, get_rc: int = 0) -> None:
    """A kubectl that warns on stderr like klog does, whatever it is asked."""
    bin_dir.mkdir()
    script = bin_dir / "kubectl"
    script.write_text(f"""#!/bin/sh
echo '{KLOG_WARNING}' >&2
case "$*" in
  *"create "*)     # the can-i reviews: only "get secrets" is allowed
    for q in get:true list:false watch:false; do
      printf '{{"kind": "SelfSubjectAccessReview", "spec": {{"resourceAttributes": '
      printf '{{"verb": "%s", "resource": "secrets"}}}}, ' "${{q%:*}}"
      printf '"status": {{"allowed": %s}}}}\n' "${{q#*:}}"
    done ;;
  *)
    if [ {get_rc} = 0 ]; then echo '{{"kind": "List", "items": [{{"kind": "Namespace"}}]}}'
    else echo 'error: the server has asked for the client to provide credentials' >&2; fi
    exit {get_rc} ;;
esac
""")
    script.chmod(0o755)


def probe_fake_control_plane(tmp_path: Path, get_rc: int = 0):
    """Run the probe against a fake control plane; its mktemp files go to tmp_path/tmp, where
    no other process on this machine creates any."""
    root = tmp_path / "node"
    (tmp_path / "tmp").mkdir(exist_ok=True)
    (root / "etc/kubernetes").mkdir(parents=True)
    (root / "etc/kubernetes/admin.conf").write_text("apiVersion: v1\n")
    fake_kubectl(tmp_path / "bin", get_rc)
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "TMPDIR": str(tmp_path / "tmp")}
    out = subprocess.run(["sh", "-c", build_probe_script(str(root))], capture_output=True,
                         text=True, timeout=60, check=True, env=env).stdout
    return parse_probe_output(out)


def test_klog_warnings_on_stderr_do_not_break_the_json(tmp_path):
    facts = probe_fake_control_plane(tmp_path)
    assert facts.kubectl_objects() == ([{"kind": "Namespace"}], "")
    assert facts.can_i("get secrets") is True
    assert facts.can_i("list secrets") is False      # "no" with exit 1 is an answer
    assert not any(KLOG_WARNING in text for _, text in facts.kubectl.values())


def test_kubectl_error_text_comes_from_stderr(tmp_path):
    facts = probe_fake_control_plane(tmp_path, get_rc=1)
    objects, why = facts.kubectl_objects()
    assert objects is None
    assert "exit 1" in why and "provide credentials" in why


def test_no_temporary_file_is_left_behind(tmp_path):
    probe_fake_control_plane(tmp_path)
    assert os.listdir(tmp_path / "tmp") == []


def test_login_shell_noise_before_the_header_is_dropped():
    out = ("Welcome to node1\nHARDEN-PROBE is not this line\n"
           "HARDEN-PROBE|1|\nM|/etc/kubernetes/admin.conf\nEND|\n")
    facts = parse_probe_output(out)
    assert facts.complete and "/etc/kubernetes/admin.conf" in facts.missing


def test_header_must_start_a_line():
    with pytest.raises(ProbeParseError, match="header"):
        parse_probe_output("motd: HARDEN-PROBE|1|\nEND|\n")
