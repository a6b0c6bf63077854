"""Static pod manifest rules of the lab kubelet: decoding, validation, hostPath checks."""

from __future__ import annotations

import pytest
import yaml

from harden.lab.components import podenv, staticpod


def manifest(**spec_extra) -> dict:
    container = {"name": "kube-apiserver", "image": "registry.k8s.io/kube-apiserver:v1.30.4",
                 "command": ["kube-apiserver", "--secure-port=6443"],
                 "volumeMounts": [{"name": "k8s-certs", "mountPath": "/etc/kubernetes/pki",
                                   "readOnly": True}],
                 "livenessProbe": {"httpGet": {"host": "10.0.0.1", "path": "/livez", "port": 6443,
                                               "scheme": "HTTPS"}, "periodSeconds": 10,
                                   "failureThreshold": 8}}
    spec = {"containers": [container], "hostNetwork": True,
            "volumes": [{"name": "k8s-certs", "hostPath": {"path": "/etc/kubernetes/pki",
                                                           "type": "DirectoryOrCreate"}}]}
    spec.update(spec_extra)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "kube-apiserver", "namespace": "kube-system"}, "spec": spec}


def parse(doc, path="/etc/kubernetes/manifests/kube-apiserver.yaml") -> staticpod.PodSpec:
    return staticpod.parse_manifest(path, yaml.safe_dump(doc).encode(), "cp1")


def test_parse_kubeadm_like_manifest():
    pod = parse(manifest())
    assert pod.full_name == "kube-system/kube-apiserver"
    container = pod.containers[0]
    assert container.argv == ["kube-apiserver", "--secure-port=6443"]
    assert container.mounts == [{"mountPath": "/etc/kubernetes/pki",
                                 "hostPath": "/etc/kubernetes/pki", "readOnly": True}]
    assert container.liveness.failure_threshold == 8 and container.liveness.timeout == 1


@pytest.mark.parametrize("content,message", [
    (b"kind: Pod\n  bad: [", "error converting YAML"),
    (b"- a\n", "not a Pod"),
    (b"apiVersion: v1\nkind: Deployment\nmetadata: {name: x}\n", "expected kind Pod"),
    (b"apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: a, image: b}]}\n",
     "metadata.name: Required"),
    (b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n",
     "spec.containers: Required"),
    (b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a}]}\n",
     "image: Required"),
])
def test_invalid_manifests(content, message):
    with pytest.raises(staticpod.ManifestError, match=message):
        staticpod.parse_manifest("/m/x.yaml", content, "cp1")


def test_mount_of_undeclared_volume_is_invalid():
    doc = manifest()
    doc["spec"]["containers"][0]["volumeMounts"].append({"name": "enc", "mountPath": "/etc/enc"})
    with pytest.raises(staticpod.ManifestError, match='volumeMounts\\[1\\].name: Not found: "enc"'):
        parse(doc)


def test_volume_rules():
    doc = manifest()
    doc["spec"]["volumes"].append(dict(doc["spec"]["volumes"][0]))
    with pytest.raises(staticpod.ManifestError, match="Duplicate value"):
        parse(doc)
    doc = manifest()
    doc["spec"]["volumes"][0]["hostPath"]["type"] = "Folder"
    with pytest.raises(staticpod.ManifestError, match='Unsupported value: "Folder"'):
        parse(doc)


def test_probe_needs_exactly_one_handler():
    doc = manifest()
    doc["spec"]["containers"][0]["livenessProbe"]["tcpSocket"] = {"port": 1}
    with pytest.raises(staticpod.ManifestError, match="exactly one handler"):
        parse(doc)


def test_command_defaults_to_image_name_and_subpath_mounts():
    doc = manifest()
    del doc["spec"]["containers"][0]["command"]
    doc["spec"]["containers"][0]["args"] = ["--v=2"]
    doc["spec"]["containers"][0]["volumeMounts"][0]["subPath"] = "etcd"
    container = parse(doc).containers[0]
    assert container.argv == ["kube-apiserver", "--v=2"]
    assert container.mounts[0]["hostPath"] == "/etc/kubernetes/pki/etcd"


def test_uid_changes_with_content_and_path():
    content = yaml.safe_dump(manifest()).encode()
    uid = staticpod.pod_uid("cp1", "/m/a.yaml", content)
    assert uid == staticpod.pod_uid("cp1", "/m/a.yaml", content)
    assert uid != staticpod.pod_uid("cp1", "/m/b.yaml", content)
    assert uid != staticpod.pod_uid("cp1", "/m/a.yaml", content + b"\n# x")


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(podenv.ROOT_ENV, str(tmp_path))
    return tmp_path


def with_volume(path: str, kind: str) -> staticpod.PodSpec:
    doc = manifest()
    doc["spec"]["volumes"].append({"name": "v", "hostPath": {"path": path, "type": kind}})
    return parse(doc)


def test_hostpath_file_must_exist(root):
    with pytest.raises(staticpod.MountError, match='volume "v" : hostPath type check failed: '
                                                   '/etc/audit.yaml does not exist'):
        staticpod.prepare_host_volumes(with_volume("/etc/audit.yaml", "File"))
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/audit.yaml").mkdir()
    with pytest.raises(staticpod.MountError, match="is not a file"):
        staticpod.prepare_host_volumes(with_volume("/etc/audit.yaml", "File"))


def test_hostpath_directory_types(root):
    staticpod.prepare_host_volumes(with_volume("/var/log/kubernetes/audit", "DirectoryOrCreate"))
    assert (root / "var/log/kubernetes/audit").is_dir()
    staticpod.prepare_host_volumes(with_volume("/var/lib/x/f", "FileOrCreate"))
    assert (root / "var/lib/x/f").is_file()
    with pytest.raises(staticpod.MountError, match="is not a directory"):
        staticpod.prepare_host_volumes(with_volume("/var/lib/x/f", "Directory"))
