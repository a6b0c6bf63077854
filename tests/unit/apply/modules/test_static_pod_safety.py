"""`static_pod` refusals that mirror kube-apiserver start-up errors, and the escapes a shipped
playbook needs: `unless_set` (structured authorization) and `missing_ok` (external etcd)."""

from __future__ import annotations

import pytest

from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed
from support.modules import file_state, make_facts, manifest_text, plan

APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"
ETCD = "/etc/kubernetes/manifests/etcd.yaml"
AUTHZ = "/etc/kubernetes/pki/authz.yaml"
ADMISSION = "/etc/kubernetes/pki/admission.yaml"
CIS_APISERVER_TASK = {
    "manifest": APISERVER, "set": {"profiling": False},
    "add_to_list": {"enable-admission-plugins": ["NodeRestriction"],
                    "authorization-mode": ["Node", "RBAC"]},
    "remove_from_list": {"authorization-mode": ["AlwaysAllow"]},
    "unless_set": {"authorization-mode": ["authorization-config"]}}


def structured_authz_manifest() -> bytes:
    """kubeadm's manifest as it is with an AuthorizationConfiguration: no --authorization-mode."""
    text = manifest_text("kube-apiserver.yaml").decode()
    return text.replace("    - --authorization-mode=Node,RBAC\n",
                        f"    - --authorization-config={AUTHZ}\n").encode()


def test_authorization_mode_is_left_alone_when_an_authorization_config_is_used():
    facts = make_facts(file_state(APISERVER, structured_authz_manifest()), file_state(AUTHZ))
    changes = plan("static_pod", CIS_APISERVER_TASK, facts, {"harden_kubeadm_persist": False})
    assert len(changes) == 1
    diff = changes[0].diff
    assert "authorization-mode" not in diff and "+    - --profiling=false" in diff
    module = get_module("static_pod")
    args = module.validate(CIS_APISERVER_TASK)
    found = module.result(args, facts, changes)
    assert found["msg"] == "left --authorization-mode alone: --authorization-config is set"
    assert found["skipped_flags"] == ["authorization-mode"]


def test_authorization_mode_is_still_added_without_an_authorization_config():
    text = manifest_text("kube-apiserver.yaml").replace(b"    - --authorization-mode=Node,RBAC\n",
                                                        b"")
    facts = make_facts(file_state(APISERVER, text))
    changes = plan("static_pod", CIS_APISERVER_TASK, facts)
    assert "+    - --authorization-mode=Node,RBAC" in changes[0].diff


def test_both_authorization_flags_are_refused_before_anything_is_written():
    facts = make_facts(file_state(APISERVER, structured_authz_manifest()), file_state(AUTHZ))
    args = {**CIS_APISERVER_TASK, "unless_set": {}}
    with pytest.raises(TaskFailed, match="--authorization-mode and --authorization-config would "
                                         "both be set"):
        plan("static_pod", args, facts)


@pytest.mark.parametrize("plugin", ["EventRateLimit", "ImagePolicyWebhook"])
def test_plugin_needing_a_config_is_refused_without_an_admission_config(plugin):
    facts = make_facts(file_state(APISERVER, manifest_text("kube-apiserver.yaml")))
    with pytest.raises(TaskFailed, match=f"admission plugin {plugin} needs its configuration and "
                                         "--admission-control-config-file is not set"):
        plan("static_pod", {"manifest": APISERVER,
                            "add_to_list": {"enable-admission-plugins": [plugin]}}, facts)


def test_plugin_needing_a_config_is_refused_when_the_admission_config_lacks_it():
    podsecurity_only = (b"apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\n"
                        b"plugins:\n- name: PodSecurity\n  configuration: {}\n")
    facts = make_facts(file_state(APISERVER, manifest_text("kube-apiserver.yaml")),
                       file_state(ADMISSION, podsecurity_only))
    with pytest.raises(TaskFailed, match=f"--admission-control-config-file={ADMISSION} has no "
                                         "entry for it"):
        plan("static_pod", {"manifest": APISERVER,
                            "set": {"admission-control-config-file": ADMISSION},
                            "add_to_list": {"enable-admission-plugins": ["EventRateLimit"]}},
             facts)


def test_plugin_with_its_configuration_is_accepted():
    config = (b"apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\n"
              b"plugins:\n- name: EventRateLimit\n  path: erl.yaml\n")
    facts = make_facts(file_state(APISERVER, manifest_text("kube-apiserver.yaml")),
                       file_state(ADMISSION, config))
    changes = plan("static_pod", {"manifest": APISERVER,
                                  "set": {"admission-control-config-file": ADMISSION},
                                  "add_to_list": {"enable-admission-plugins": ["EventRateLimit"]}},
                   facts)
    assert "NodeRestriction,EventRateLimit" in changes[0].diff


def test_missing_manifest_is_skipped_with_missing_ok_and_says_so():
    facts = make_facts(absent=[ETCD])
    args = {"manifest": ETCD, "missing_ok": True, "set": {"client-cert-auth": True}}
    assert plan("static_pod", args, facts) == []
    module = get_module("static_pod")
    assert module.result(module.validate(args), facts, [])["msg"] == \
        f"skipped: {ETCD} is not on this host"
    with pytest.raises(TaskFailed, match="does not exist on this host"):
        plan("static_pod", {**args, "missing_ok": False}, facts)


SCHEDULER = "/etc/kubernetes/manifests/kube-scheduler.yaml"
SCHED_CONFIG = "/etc/kubernetes/scheduler-config.yaml"
SCHEDULER_TASK = {"manifest": SCHEDULER, "set": {"profiling": False},
                  "config_set": {"enableProfiling": False}}


def scheduler_with_config() -> bytes:
    text = manifest_text("kube-scheduler.yaml").decode()
    text = text.replace("    - --bind-address=127.0.0.1\n",
                        f"    - --bind-address=127.0.0.1\n    - --config={SCHED_CONFIG}\n")
    text = text.replace("    volumeMounts:\n", f"    volumeMounts:\n    - mountPath: {SCHED_CONFIG}\n"
                        "      name: sched-config\n      readOnly: true\n")
    return text.replace("  volumes:\n", f"  volumes:\n  - hostPath:\n      path: {SCHED_CONFIG}\n"
                        "      type: File\n    name: sched-config\n").encode()


def test_scheduler_with_config_gets_enable_profiling_false_in_that_file():
    """kube-scheduler ignores --profiling once --config is given: the file decides."""
    config = (b"apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
              b"clientConnection:\n  kubeconfig: /etc/kubernetes/scheduler.conf\n")
    facts = make_facts(file_state(SCHEDULER, scheduler_with_config()),
                       file_state(SCHED_CONFIG, config, 0o644))
    changes = plan("static_pod", SCHEDULER_TASK, facts)
    assert [c.path for c in changes] == [SCHED_CONFIG, SCHEDULER]
    assert b"enableProfiling: false\n" in changes[0].after.content
    assert "harden.io/config-hash-scheduler-config" in changes[1].diff
    for change in changes:
        change.record_in(facts)
    assert plan("static_pod", SCHEDULER_TASK, facts) == []


def test_scheduler_without_config_only_gets_the_flag():
    facts = make_facts(file_state(SCHEDULER, manifest_text("kube-scheduler.yaml")))
    changes = plan("static_pod", SCHEDULER_TASK, facts)
    assert [c.path for c in changes] == [SCHEDULER]
    assert "config-hash" not in changes[0].diff
