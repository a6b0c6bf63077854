"""A machine-format run does not import rich for a progress display it will not draw."""

import subprocess
import sys


def test_a_disabled_progress_display_never_imports_rich():
    code = ("import sys\nfrom harden.progress import HostProgress\n"
            "p = HostProgress('harden check', 3, enabled=False)\n"
            "with p:\n    p.host_started('a'); p.host_finished('a')\n"
            "assert not p.enabled and p.line().startswith('harden check')\n"
            "print('rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
