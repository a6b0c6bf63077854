"""The shipped site.yml on the weak lab profile, judged by harden check: what the README and
`make demo` promise (hardening fixes the automatable CIS items, in one API server restart, and a
second run changes nothing). The same claims on the kubeadm profile are judged on the README
tour's lab, around the tour's own site.yml apply (test_docs_run.py): one lab and one apply fewer.
"""

from __future__ import annotations

import pytest
from support.site import SiteRun, apply_site, assert_site_hardened, check_json

pytestmark = pytest.mark.lab


@pytest.mark.timeout(600)
def test_site_yml_hardens_the_weak_lab_and_is_idempotent(lab_factory, tmp_path):
    with lab_factory.running(control_planes=1, workers=1, profile="weak",
                             wait_ready=True) as lab:
        run = SiteRun("weak", dict(lab.roles))
        run.before = check_json(lab.inventory, tmp_path)
        run.note_pods_before(lab.node_root)
        run.first = apply_site(lab.inventory, tmp_path)
        run.note_api_server_restarts(lab.node_root)
        run.second = apply_site(lab.inventory, tmp_path)
        lab.wait_ready()
        run.after = check_json(lab.inventory, tmp_path)
    assert_site_hardened(run)
