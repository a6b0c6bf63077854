"""`static_pod` and `kubelet_config` keep their changes in kubeadm's ConfigMaps: facts in ->
changes out, in both ClusterConfiguration shapes, the no-op, node-only and its refusals."""

from __future__ import annotations

import base64
import json

import pytest
import yaml

from harden.apply.facts import ConfigMapState, parse_configmap
from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed, apply_script
from harden.kubeadm.cluster_config import ClusterConfig
from support.modules import file_state, kubelet_process, make_facts, manifest_text, plan, \
    plan_twice

APISERVER = "/etc/kubernetes/manifests/kube-apiserver.yaml"
KUBEADM = "kube-system/kubeadm-config"
KUBELET_CM = "kube-system/kubelet-config"
V4 = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer: {}\n" \
     "kubernetesVersion: v1.31.0\n"
V3 = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n" \
     "  extraArgs:\n    profiling: \"true\"\nkubernetesVersion: v1.30.0\n"
AUDIT = {"manifest": APISERVER, "set": {"profiling": False},
         "add_to_list": {"enable-admission-plugins": ["AlwaysPullImages"]},
         "volumes": [{"name": "audit", "host_path": "/etc/kubernetes/audit-policy.yaml",
                      "type": "File", "read_only": True}]}


def facts_with(cluster_configuration: str | None, *more):
    configmaps = {KUBEADM: cluster_configuration} if cluster_configuration else {}
    return make_facts(file_state(APISERVER, manifest_text("kube-apiserver.yaml")),
                      file_state("/etc/kubernetes/audit-policy.yaml"), *more,
                      configmaps=configmaps)


def kept(facts) -> ClusterConfig:
    return ClusterConfig(facts.configmap(KUBEADM).data["ClusterConfiguration"])


@pytest.mark.parametrize("text", [V4, V3], ids=["v1beta4", "v1beta3"])
def test_flags_volumes_go_into_cluster_configuration_once(text):
    facts = facts_with(text)
    first, second = plan_twice("static_pod", AUDIT, facts)
    assert [c.summary for c in first][-1] == \
        "update configmap kube-system/kubeadm-config (ClusterConfiguration)"
    assert second == []
    config = kept(facts)
    assert dict(config.extra_args("kube-apiserver")) == {
        "profiling": "false", "enable-admission-plugins": "NodeRestriction,AlwaysPullImages"}
    assert [v.host_path for v in config.extra_volumes("kube-apiserver")] == \
        ["/etc/kubernetes/audit-policy.yaml"]
    assert "+  - name: enable-admission-plugins" in first[-1].diff or \
        "+    enable-admission-plugins: NodeRestriction,AlwaysPullImages" in first[-1].diff


def test_configmap_already_keeping_the_flags_is_a_no_op_even_when_the_manifest_changes():
    facts = facts_with(V4)
    plan("static_pod", AUDIT, facts)[-1].record_in(facts)     # only the ConfigMap, not the file
    changes = plan("static_pod", AUDIT, facts)
    assert [c.path for c in changes] == [APISERVER]


def test_the_write_checks_what_it_planned_from_and_carries_the_new_value():
    facts = facts_with(V4)
    change = plan("static_pod", AUDIT, facts)[-1]
    before, after = ConfigMapState(KUBEADM, {"ClusterConfiguration": V4}), change.configmap
    words = change.script.split("<<")[0].split()
    assert words == ["hb_cm_write", "/configmap:kube-system/kubeadm-config/ClusterConfiguration",
                     before.sha256("ClusterConfiguration"), after.sha256("ClusterConfiguration")]
    patch = json.loads(base64.b64decode(change.script.split("\n", 1)[1].rsplit("HARDEN_EOF", 1)[0]))
    assert patch["metadata"] == {"resourceVersion": "__HARDEN_RV__"}
    assert patch["data"]["ClusterConfiguration"] == after.data["ClusterConfiguration"]


def test_configmap_changes_run_before_the_manifest_that_restarts_the_api_server():
    changes = plan("static_pod", AUDIT, facts_with(V4))
    script = apply_script(changes, "20260101T000000Z-abcdef")
    assert script.index("\nhb_cm_write ") < script.index(f"\nhb_write {APISERVER}")


def test_node_only_when_the_configmap_cannot_be_read_and_the_task_line_says_why():
    facts = facts_with(None)
    changes = plan("static_pod", AUDIT, facts)
    assert [c.path for c in changes] == [APISERVER]
    found = get_module("static_pod").result(get_module("static_pod").validate(AUDIT), facts,
                                            changes)
    assert found["kubeadm_config"] == \
        "node only, not kept in kube-system/kubeadm-config: no admin.conf (test facts)"
    assert found["msg"] == found["kubeadm_config"]
    assert found["node_changes"] == [changes[0].summary]


def test_persist_true_refuses_to_go_node_only():
    with pytest.raises(TaskFailed, match="cannot keep this change in kubeadm's kube-system/"
                                         "kubeadm-config: no admin.conf.*true"):
        plan("static_pod", AUDIT, facts_with(None), {"harden_kubeadm_persist": True})


def test_persist_false_never_touches_the_configmap():
    facts = facts_with(V4)
    changes = plan("static_pod", AUDIT, facts, {"harden_kubeadm_persist": "false"})
    assert [c.path for c in changes] == [APISERVER]


def test_removing_a_flag_kubeadm_writes_itself_fails_rather_than_being_lost_on_upgrade():
    with pytest.raises(TaskFailed, match="--enable-admission-plugins is a flag kubeadm writes "
                                         "itself.*--patches"):
        plan("static_pod", {"manifest": APISERVER, "remove": ["enable-admission-plugins"]},
             facts_with(V4))


def test_a_manifest_outside_kubeadms_four_is_never_persisted():
    other = "/etc/kubernetes/manifests/my-proxy.yaml"
    text = manifest_text("kube-apiserver.yaml")
    facts = make_facts(file_state(other, text), configmaps={KUBEADM: V4})
    changes = plan("static_pod", {"manifest": other, "set": {"profiling": False}}, facts)
    assert [c.path for c in changes] == [other]


def test_kubelet_keys_go_into_kubelet_config():
    kubelet = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n" \
              "readOnlyPort: 10255\n"
    facts = make_facts(file_state("/var/lib/kubelet/config.yaml", kubelet.encode()),
                       absent=["/var/lib/kubelet/kubeadm-flags.env", "/etc/default/kubelet",
                               "/etc/sysconfig/kubelet"],
                       kubelet=kubelet_process(), configmaps={KUBELET_CM: kubelet})
    first, second = plan_twice("kubelet_config", {"set": {"readOnlyPort": 0}}, facts)
    assert [c.summary for c in first] == ["update /var/lib/kubelet/config.yaml",
                                          "update configmap kube-system/kubelet-config (kubelet)"]
    assert second == []
    assert yaml.safe_load(facts.configmap(KUBELET_CM).data["kubelet"])["readOnlyPort"] == 0


@pytest.mark.parametrize("line, expected", [
    ("Y 0 " + base64.b64encode(json.dumps({"metadata": {"resourceVersion": "42"},
                                          "data": {"k": "v\n"}}).encode()).decode() + " ",
     ConfigMapState(KUBEADM, {"k": "v\n"}, "42")),
    ("Y 0  ", ConfigMapState(KUBEADM)),
    ("Y 1  " + base64.b64encode(b"error: Forbidden").decode(),
     ConfigMapState(KUBEADM, unavailable="kubectl get configmap kube-system/kubeadm-config "
                                         "failed: error: Forbidden")),
])
def test_configmap_fact_records(line, expected):
    assert parse_configmap(KUBEADM, line) == expected


def test_a_worker_without_admin_conf_stays_node_only_even_when_persisting_is_required():
    kubelet = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
    facts = make_facts(file_state("/var/lib/kubelet/config.yaml", kubelet.encode()),
                       absent=["/var/lib/kubelet/kubeadm-flags.env", "/etc/default/kubelet",
                               "/etc/sysconfig/kubelet"], kubelet=kubelet_process())
    facts.configmaps[KUBELET_CM] = ConfigMapState(
        KUBELET_CM, unavailable="/etc/kubernetes/admin.conf is not on this node")
    changes = plan("kubelet_config", {"set": {"readOnlyPort": 0}}, facts,
                   {"harden_kubeadm_persist": True})
    assert [c.path for c in changes] == ["/var/lib/kubelet/config.yaml"]
