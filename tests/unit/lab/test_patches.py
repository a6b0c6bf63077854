"""kubeadm --patches semantics in the lab: file names pick target and type, files apply in name
order, strategic merge follows the Pod's merge keys, merge and JSON patches follow their RFCs."""

from __future__ import annotations

import pytest
import yaml

from harden.lab import kubeadm_config, layout, patches
from harden.lab.patches import PatchError

NODE = layout.NodeSpec("cp1", "control-plane", "127.9.9.11", 21001, 21002)


@pytest.fixture
def manifest() -> bytes:
    return layout.manifests(NODE, kubeadm_config.from_document(
        kubeadm_config.document("v1beta4")))["kube-apiserver"]


def apply(tmp_path, files: dict[str, str], content: bytes, target="kube-apiserver") -> dict:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return yaml.safe_load(patches.apply(str(tmp_path), target, content, out=lambda _l: None))


def test_strategic_patch_merges_containers_by_name_and_replaces_the_command(tmp_path, manifest):
    pod = apply(tmp_path, {"kube-apiserver.yaml": yaml.safe_dump({"spec": {"containers": [
        {"name": "kube-apiserver", "command": ["kube-apiserver", "--profiling=false"],
         "volumeMounts": [{"name": "extra", "mountPath": "/extra"}]}]}})}, manifest)
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["kube-apiserver", "--profiling=false"]
    assert container["image"].startswith("registry.k8s.io/kube-apiserver")    # kept
    assert {"name": "extra", "mountPath": "/extra"} in container["volumeMounts"]
    assert len(container["volumeMounts"]) == 6         # kubeadm's five and the new one


def test_json_patch_appends_a_flag(tmp_path, manifest):
    pod = apply(tmp_path, {"kube-apiserver+json.json":
                           '[{"op": "add", "path": "/spec/containers/0/command/-",'
                           ' "value": "--profiling=false"}]'}, manifest)
    assert pod["spec"]["containers"][0]["command"][-1] == "--profiling=false"


def test_merge_patch_null_deletes_and_files_apply_in_name_order(tmp_path, manifest):
    pod = apply(tmp_path, {
        "kube-apiserver0+merge.yaml": "metadata:\n  labels:\n    tier: null\n    a: one\n",
        "kube-apiserver1+merge.yaml": "metadata:\n  labels:\n    a: two\n"}, manifest)
    assert pod["metadata"]["labels"] == {"component": "kube-apiserver", "a": "two"}


def test_other_targets_and_unrelated_files_are_left_alone(tmp_path, manifest):
    (tmp_path / "README").write_text("notes")
    out = patches.apply(str(tmp_path), "kube-apiserver", manifest, out=lambda _l: None)
    assert out == manifest
    apply(tmp_path, {"kube-scheduler.yaml": "metadata: {labels: {x: y}}\n"}, manifest)


def test_unknown_patch_type_is_refused(tmp_path, manifest):
    with pytest.raises(PatchError, match='unknown or missing patch type "jsonpatch"'):
        apply(tmp_path, {"etcd+jsonpatch.yaml": "[]"}, manifest, target="etcd")


def test_failing_json_patch_names_the_file(tmp_path, manifest):
    with pytest.raises(PatchError, match="kube-apiserver\\+json.yaml.*missing"):
        apply(tmp_path, {"kube-apiserver+json.yaml": "- op: remove\n  path: /spec/nothing\n"},
              manifest)


def test_kubelet_configuration_target(tmp_path):
    content = layout.kubelet_node_config(layout.kubelet_cluster_config(layout.PROFILES["kubeadm"]),
                                         NODE)
    doc = apply(tmp_path, {"kubeletconfiguration+merge.yaml": "readOnlyPort: 0\n"
                                                              "eventRecordQPS: 5\n"},
                content, target="kubeletconfiguration")
    assert doc["eventRecordQPS"] == 5 and doc["address"] == NODE.address
