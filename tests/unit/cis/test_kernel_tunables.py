"""Check 4.2.14k on a fake node run through the real probe script: a sysctl file read after
harden's at boot that sets a tunable the kubelet's protectKernelDefaults requires is reported
with its file and key, as the next boot would read the files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from harden.cis.catalogue import load_catalogue
from harden.cis.evaluate import evaluate_host
from harden.cis.probe import build_probe_script, parse_probe_output
from harden.node import sysctl_boot

HARDEN_FILE = "/etc/sysctl.d/90-harden-kubelet.conf"
OURS = "".join(f"{k} = {v}\n" for k, v in sysctl_boot.KUBELET_TUNABLES.items())


def node(root: Path, files: dict[str, str], protect: bool = True) -> dict:
    """A worker whose kubelet runs with a config file, plus `files`; 4.2.14k's result."""
    files = {"/var/lib/kubelet/config.yaml": "apiVersion: kubelet.config.k8s.io/v1beta1\n"
             f"kind: KubeletConfiguration\nprotectKernelDefaults: {str(protect).lower()}\n",
             **files}
    for path, text in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("->"):
            target.symlink_to(text[2:])
        else:
            target.write_text(text)
    proc = root / "proc/100"
    proc.mkdir(parents=True)
    (proc / "cmdline").write_bytes(b"/usr/bin/kubelet\0--config=/var/lib/kubelet/config.yaml\0")
    done = subprocess.run(["sh", "-c", build_probe_script(str(root))], capture_output=True,
                          text=True, timeout=60, check=True)
    facts = parse_probe_output(done.stdout)
    results = evaluate_host("n1", facts, load_catalogue(), "worker")
    return next(r for r in results if r.id == "4.2.14k")


def test_a_later_file_overriding_a_tunable_fails_naming_file_and_key(tmp_path):
    result = node(tmp_path, {HARDEN_FILE: OURS,
                             "/etc/sysctl.d/99-tuning.conf": "# ours\nvm.overcommit_memory=0\n"
                                                             "net.core.somaxconn = 4096\n"})
    assert result.status == "FAIL"
    assert "/etc/sysctl.d/99-tuning.conf sets vm.overcommit_memory = 0" in result.actual
    assert "the kubelet requires 1" in result.actual
    assert "would not start after a reboot" in result.drift
    assert "somaxconn" not in result.actual


def test_an_earlier_file_or_an_equal_value_passes(tmp_path):
    result = node(tmp_path, {HARDEN_FILE: OURS,
                             "/etc/sysctl.d/10-early.conf": "kernel.panic = 0\n",
                             "/etc/sysctl.d/95-same.conf": "kernel/panic_on_oops =  1\n"})
    assert result.status == "PASS", result.actual
    assert "95-same.conf" in result.actual and result.drift is None


def test_a_name_in_etc_hides_the_same_name_in_usr_lib(tmp_path):
    masked = node(tmp_path / "a", {HARDEN_FILE: OURS,
                                   "/usr/lib/sysctl.d/99-vendor.conf": "kernel.panic = 0\n",
                                   "/etc/sysctl.d/99-vendor.conf": "->/dev/null"})
    assert masked.status == "PASS", masked.actual
    shown = node(tmp_path / "b", {HARDEN_FILE: OURS,
                                  "/usr/lib/sysctl.d/99-vendor.conf": "-kernel.panic = 0\n"})
    assert shown.status == "FAIL" and "/usr/lib/sysctl.d/99-vendor.conf sets kernel.panic = 0" \
        in shown.actual


def test_sysctl_conf_is_read_last(tmp_path):
    result = node(tmp_path, {HARDEN_FILE: OURS, "/etc/sysctl.conf": "vm.panic_on_oom = 1\n"})
    assert result.status == "FAIL" and "/etc/sysctl.conf sets vm.panic_on_oom = 1" in result.actual


def test_without_protect_kernel_defaults_nothing_is_required(tmp_path):
    result = node(tmp_path, {"/etc/sysctl.d/99-tuning.conf": "vm.overcommit_memory = 0\n"},
                  protect=False)
    assert result.status == "PASS"
    assert "does not require the tunables" in result.actual
