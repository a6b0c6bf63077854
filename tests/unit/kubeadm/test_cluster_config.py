"""ClusterConfiguration edits as facts in -> changes out: both extraArgs shapes, volumes, the
no-op, what extraArgs cannot say, and what the next upgrade would lose."""

from __future__ import annotations

import pytest

from harden.errors import InputError
from harden.kubeadm import kubelet_config
from harden.kubeadm.cluster_config import CannotPersist, ClusterConfig, Volume, lost_on_upgrade, \
    persist

V3 = """\
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
apiServer:
  certSANs:
  - 10.0.0.1   # kept
  extraArgs:
    audit-log-maxage: "30"
clusterName: lab
etcd:
  local:
    dataDir: /var/lib/etcd
kubernetesVersion: v1.30.2
"""

V4 = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer:
  extraArgs:
  - name: audit-log-maxage
    value: "30"
  - name: profiling
    value: "true"
controllerManager: {}
kubernetesVersion: v1.31.0
"""

AUDIT = Volume("audit-policy", "/etc/kubernetes/audit-policy.yaml",
               "/etc/kubernetes/audit-policy.yaml", True, "File")


def test_v1beta3_flag_added_to_the_map_and_other_lines_kept_byte_for_byte():
    out = persist(V3, "cm", "kube-apiserver", {"profiling": "false"}, [])
    config = ClusterConfig(out)
    assert config.arg("kube-apiserver", "profiling") == "false"
    assert config.arg("kube-apiserver", "audit-log-maxage") == "30"
    removed = set(V3.splitlines()) - set(out.splitlines())
    assert removed == set()
    assert "  - 10.0.0.1   # kept" in out.splitlines()
    assert "    profiling: 'false'" in out.splitlines()


def test_v1beta4_flag_replaced_in_the_list_not_duplicated():
    out = persist(V4, "cm", "kube-apiserver", {"profiling": "false"}, [])
    config = ClusterConfig(out)
    assert config.extra_args("kube-apiserver") == [("audit-log-maxage", "30"),
                                                   ("profiling", "false")]


def test_v1beta4_new_flag_in_an_empty_section_becomes_a_list():
    out = persist(V4, "cm", "kube-controller-manager", {"profiling": "false"}, [])
    assert ClusterConfig(out).extra_args("kube-controller-manager") == [("profiling", "false")]
    assert "name: profiling" in out


def test_flags_already_kept_leave_the_text_unchanged():
    assert persist(V3, "cm", "kube-apiserver", {"audit-log-maxage": "30"}, []) == V3
    assert persist(V4, "cm", "kube-apiserver", {"profiling": "true"}, []) == V4


def test_volume_added_once_then_a_no_op():
    once = persist(V4, "cm", "kube-apiserver", {}, [AUDIT])
    assert ClusterConfig(once).extra_volumes("kube-apiserver") == [AUDIT]
    assert persist(once, "cm", "kube-apiserver", {}, [AUDIT]) == once
    changed = Volume("audit-policy", "/etc/kubernetes/audit-policy.yaml",
                     "/etc/kubernetes/audit-policy.yaml", False, "File")
    assert ClusterConfig(persist(once, "cm", "kube-apiserver", {}, [changed])) \
        .extra_volumes("kube-apiserver") == [changed]


def test_a_volume_at_the_same_mount_path_keeps_the_operators_name():
    named = persist(V4, "cm", "kube-apiserver", {}, [Volume(
        "policy", AUDIT.host_path, AUDIT.mount_path, True, "File")])
    assert persist(named, "cm", "kube-apiserver", {}, [AUDIT]) == named


def test_etcd_flags_go_under_etcd_local():
    out = persist(V3, "cm", "etcd", {"snapshot-count": "5000"}, [])
    assert ClusterConfig(out).value(["etcd", "local", "extraArgs"]) == {"snapshot-count": "5000"}
    assert ClusterConfig(out).value(["etcd", "local", "dataDir"]) == "/var/lib/etcd"


def test_external_etcd_cannot_keep_etcd_flags():
    text = V3.replace("  local:\n    dataDir: /var/lib/etcd\n",
                      "  external:\n    endpoints: [https://e:2379]\n")
    with pytest.raises(CannotPersist, match="external"):
        persist(text, "cm", "etcd", {"client-cert-auth": "true"}, [])


def test_a_value_kubeadm_writes_itself_needs_no_entry():
    assert persist(V4, "cm", "kube-apiserver", {"authorization-mode": "Node,RBAC",
                                                "enable-admission-plugins": "NodeRestriction"},
                   []) == V4


def test_removing_a_flag_kubeadm_writes_itself_is_refused_not_dropped_silently():
    with pytest.raises(CannotPersist, match="--enable-admission-plugins.*--patches"):
        persist(V3, "cm", "kube-apiserver", {"enable-admission-plugins": None}, [])


def test_removing_a_user_flag_deletes_it_from_either_shape():
    out3 = persist(V3, "cm", "kube-apiserver", {"audit-log-maxage": None}, [])
    assert ClusterConfig(out3).extra_args("kube-apiserver") == []
    out4 = persist(V4, "cm", "kube-apiserver", {"profiling": None}, [])
    assert ClusterConfig(out4).extra_args("kube-apiserver") == [("audit-log-maxage", "30")]


@pytest.mark.parametrize("text, message", [
    (V3.replace('    audit-log-maxage: "30"', '  - name: audit-log-maxage\n    value: "30"'),
     "v1beta3 takes a map"),
    (V4.replace('  - name: audit-log-maxage\n    value: "30"\n  - name: profiling\n'
                '    value: "true"', '    profiling: "true"'), "v1beta4 takes a list"),
    (V3.replace("v1beta3", "v1beta2"), "apiVersion"),
    (V3.replace("kind: ClusterConfiguration", "kind: InitConfiguration"), "not a kubeadm"),
])
def test_wrong_shapes_refused_naming_the_source(text, message):
    with pytest.raises(InputError, match=message) as info:
        ClusterConfig(text, "kube-system/kubeadm-config")
    assert "kube-system/kubeadm-config" in str(info.value)


def test_upgrade_keeps_kubeadm_defaults_and_extra_args_and_loses_the_rest():
    config = ClusterConfig(V4)
    manifest = {"profiling": "false", "authorization-mode": "Node,RBAC",
                "audit-policy-file": "/etc/kubernetes/audit-policy.yaml",
                "audit-log-maxage": "30"}
    mounts = [("/etc/kubernetes/audit-policy.yaml", "/etc/kubernetes/audit-policy.yaml")]
    lost = lost_on_upgrade(config, "kube-apiserver", manifest, list(manifest), mounts)
    assert lost == [
        "kube-apiserver --profiling=false but ClusterConfiguration gives 'true'",
        "kube-apiserver --audit-policy-file=/etc/kubernetes/audit-policy.yaml is not in "
        "ClusterConfiguration",
        "kube-apiserver hostPath volume /etc/kubernetes/audit-policy.yaml (at "
        "/etc/kubernetes/audit-policy.yaml, for --audit-policy-file) is not in extraVolumes"]
    kept = persist(V4, "cm", "kube-apiserver", manifest, [AUDIT])
    assert lost_on_upgrade(ClusterConfig(kept), "kube-apiserver", manifest, list(manifest),
                           mounts) == []


def test_kubelet_configuration_keys_set_and_missing():
    text = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n" \
           "readOnlyPort: 10255\n"
    wanted = {"readOnlyPort": 0, "authentication.anonymous.enabled": False}
    assert kubelet_config.missing(text, "cm", wanted) == list(wanted)
    out = kubelet_config.persist(text, "cm", wanted)
    assert kubelet_config.missing(out, "cm", wanted) == []
    assert kubelet_config.persist(out, "cm", wanted) == out
