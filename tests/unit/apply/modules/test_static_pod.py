"""`static_pod`: flags, lists, volumes, config hash and the safety refusals."""

from __future__ import annotations

import pytest

from harden.apply.facts import FactNotGathered
from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, manifest_text, plan, plan_twice

APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"
POLICY = "/etc/kubernetes/audit-policy.yaml"


def apiserver_facts(*extra, absent=()):
    return make_facts(file_state(APISERVER, manifest_text("kube-apiserver.yaml")), *extra,
                      absent=absent)


def test_noop_when_flags_already_set():
    facts = apiserver_facts()
    assert plan("static_pod", {"manifest": APISERVER,
                               "set": {"secure-port": 6443, "allow-privileged": True},
                               "add_to_list": {"authorization-mode": ["RBAC", "Node"]}},
                facts) == []


def test_set_bool_flag_is_one_line_and_idempotent():
    facts = apiserver_facts()
    first, second = plan_twice("static_pod", {"manifest": APISERVER,
                                              "set": {"--profiling": False}}, facts)
    assert len(first) == 1
    assert [l for l in first[0].diff.splitlines() if l[:1] in "+-" and l[:3] not in
            ("+++", "---")] == ["+    - --profiling=false"]
    assert second == []
    assert first[0].after.mode == 0o600         # kept from the manifest


def test_list_merge_and_remove_flag():
    facts = apiserver_facts()
    first, second = plan_twice("static_pod", {
        "manifest": APISERVER,
        "add_to_list": {"enable-admission-plugins": "NodeRestriction,AlwaysPullImages"},
        "remove": ["enable-bootstrap-token-auth"]}, facts)
    diff = first[0].diff
    assert "-    - --enable-admission-plugins=NodeRestriction\n" in diff
    assert "+    - --enable-admission-plugins=NodeRestriction,AlwaysPullImages\n" in diff
    assert "-    - --enable-bootstrap-token-auth=true\n" in diff
    assert second == []


def test_audit_flags_with_volumes_and_config_hash():
    policy = file_state(POLICY, b"apiVersion: audit.k8s.io/v1\nkind: Policy\n")
    facts = apiserver_facts(policy, absent=["/var/log/kubernetes/audit"])
    args = {"manifest": APISERVER,
            "volumes": [{"name": "audit", "host_path": POLICY, "type": "File"},
                        {"name": "audit-log", "host_path": "/var/log/kubernetes/audit/",
                         "read_only": False}],
            "set": {"audit-policy-file": POLICY,
                    "audit-log-path": "/var/log/kubernetes/audit/audit.log"},
            "config_hash_files": [POLICY]}
    first, second = plan_twice("static_pod", args, facts)
    text = first[0].after.content.decode()
    assert "    - --audit-policy-file=/etc/kubernetes/audit-policy.yaml\n" in text
    assert "  - hostPath:\n      path: /var/log/kubernetes/audit/\n" \
           "      type: DirectoryOrCreate\n    name: audit-log\n" in text
    assert "    harden.io/config-hash-audit-policy: " in text
    assert second == []
    # a changed policy changes the manifest (so the pod restarts) and nothing else
    facts.set_file(POLICY, file_state(POLICY, b"apiVersion: audit.k8s.io/v1\nkind: Policy\n"
                                              b"rules: []\n"))
    third = plan("static_pod", args, facts)
    changed = [l for l in third[0].diff.splitlines() if l[:1] in "+-" and l[:3] not in
               ("+++", "---")]
    assert len(changed) == 2 and all("harden.io/config-hash-audit-policy" in l for l in changed)


def test_refuses_flag_naming_a_file_that_is_not_mounted():
    facts = apiserver_facts(file_state(POLICY, b"x"))
    with pytest.raises(TaskFailed, match="not inside any volumeMount"):
        plan("static_pod", {"manifest": APISERVER, "set": {"audit-policy-file": POLICY}}, facts)


def test_refuses_flag_naming_a_file_absent_on_the_node():
    enc = "/etc/kubernetes/pki/encryption.yaml"              # mounted through k8s-certs
    facts = apiserver_facts(absent=[enc])
    with pytest.raises(TaskFailed, match="does not exist on this host"):
        plan("static_pod", {"manifest": APISERVER,
                            "set": {"encryption-provider-config": enc}}, facts)


def test_refuses_plugin_both_enabled_and_disabled():
    facts = apiserver_facts()
    with pytest.raises(TaskFailed, match="AlwaysPullImages would be in both"):
        plan("static_pod", {"manifest": APISERVER,
                            "set": {"disable-admission-plugins": "AlwaysPullImages"},
                            "add_to_list": {"enable-admission-plugins": ["AlwaysPullImages"]}},
             facts)


def test_missing_manifest_and_bad_volume_spec():
    with pytest.raises(TaskFailed, match="does not exist"):
        plan("static_pod", {"manifest": APISERVER, "set": {"profiling": False}},
             make_facts(absent=[APISERVER]))
    with pytest.raises(TaskFailed, match="valid: host_path, mount_path"):
        plan("static_pod", {"manifest": APISERVER,
                            "volumes": [{"name": "a", "host_path": "/a", "mountpath": "/b"}]},
             apiserver_facts())


def test_facts_needed_cover_referenced_files():
    module = get_module("static_pod")
    args = module.validate({"manifest": APISERVER, "set": {"audit-policy-file": POLICY},
                            "volumes": [{"name": "audit", "host_path": POLICY}],
                            "config_hash_files": [POLICY]})
    wanted = {(r.kind, r.target, r.content) for r in module.facts_needed(args)}
    assert wanted == {("file", APISERVER, True), ("file", POLICY, False),
                      ("file", POLICY, True), ("configmap", "kube-system/kubeadm-config", False)}


def test_unmapped_host_path_asks_for_another_fact():
    """A mount whose host path differs from the container path needs a fact nobody asked
    for: the plan says which, so the runner can gather it and plan again."""
    text = manifest_text("kube-apiserver.yaml").replace(
        b"      path: /etc/kubernetes/pki\n", b"      path: /srv/pki\n")
    facts = make_facts(file_state(APISERVER, text))
    with pytest.raises(FactNotGathered) as caught:
        plan("static_pod", {"manifest": APISERVER,
                            "set": {"tls-cert-file": "/etc/kubernetes/pki/new.crt"}}, facts)
    assert caught.value.request.target == "/srv/pki/new.crt"
