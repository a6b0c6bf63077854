"""Entry point of every lab container: take the manifest's argv as our name, then emulate it.

Started by the lab kubelet through procname.exec_as, so `ps` shows the manifest's command line.
"""

from __future__ import annotations

import importlib
import posixpath
import signal
import sys

from harden.lab import procname

COMPONENTS = {
    "kube-apiserver": "harden.lab.components.apiserver",
    "kube-controller-manager": "harden.lab.components.controller_manager",
    "kube-scheduler": "harden.lab.components.scheduler",
    "etcd": "harden.lab.components.etcd",
}


def wait_for_termination() -> int:
    """What a container with an unknown image does in the lab: idle until stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def main() -> int:
    argv = procname.apply_from_env()
    if not argv:
        print("harden.lab.components.run: started without HARDEN_LAB_ARGV", file=sys.stderr)
        return 2
    module = COMPONENTS.get(posixpath.basename(argv[0]))
    if module is None:
        return wait_for_termination()
    return importlib.import_module(module).main(argv)


if __name__ == "__main__":
    sys.exit(main())
