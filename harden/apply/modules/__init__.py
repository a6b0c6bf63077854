"""The module registry: playbook task keyword → Module (one file per module).

See harden/apply/modules/base.py for the contract every module follows.
"""

from __future__ import annotations

from harden.apply.modules import (assert_, command, copy, encryption_census, encryption_key, file,
                                  kubelet_config,
                            service, static_pod, sysctl, template, wait_for_kubelet,
                            wait_for_static_pod)
from harden.apply.modules.base import Module

MODULES: dict[str, Module] = {m.MODULE.name: m.MODULE for m in (
    file, copy, template, encryption_key, encryption_census, static_pod, kubelet_config, sysctl, service, command,
    assert_, wait_for_static_pod, wait_for_kubelet)}


def get_module(name: str) -> Module | None:
    return MODULES.get(name)
