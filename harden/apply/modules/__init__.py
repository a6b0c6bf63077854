"""The module registry: playbook task keyword → Module (one file per module).

See harden/apply/modules/base.py for the contract every module follows.
"""

from __future__ import annotations

from harden.apply.modules import (assert_, blockinfile, command, copy, debug, dnf, encryption_census,
                                  encryption_key, etcd_snapshot, fail, file, find, getent,
                                  group, include_vars, kubelet_config, lineinfile, meta, mount,
                                  package, package_facts, pam_limits, replace, selinux, service,
                                  set_fact, setup, shell, slurp, stat, static_pod, sysctl,
                                  template, user, wait_for_kubelet, wait_for_static_pod)
from harden.apply.modules.base import Module

MODULES: dict[str, Module] = {m.MODULE.name: m.MODULE for m in (
    file, copy, template, encryption_key, encryption_census, etcd_snapshot, static_pod, kubelet_config, sysctl,
    service, command, shell, assert_, debug, fail, set_fact, stat, lineinfile, blockinfile,
    replace, wait_for_static_pod, wait_for_kubelet)}
MODULES.update({m.name: m for m in (service.SYSTEMD, service.SYSTEMD_SERVICE, slurp.MODULE,
                                    find.MODULE, package.MODULE, package.APT, mount.MODULE,
                                    meta.MODULE, dnf.MODULE, dnf.YUM, selinux.MODULE,
                                    package_facts.MODULE, setup.MODULE, user.MODULE,
                                    group.MODULE, getent.MODULE, pam_limits.MODULE,
                                    include_vars.MODULE)})


def get_module(name: str) -> Module | None:
    return MODULES.get(name)
