"""What a fresh interpreter has imported after running some code: for the tests that keep
start-up imports (paramiko, rich, the evaluators) off the path to a run's first connection."""

import subprocess
import sys


def modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())
