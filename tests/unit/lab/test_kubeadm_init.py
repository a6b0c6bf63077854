"""Reading a kubeadm config directory for `lab up --kubeadm-config`: what kubeadm init refuses
is an error at file:line before anything is written; kubeadm's defaults fill what is left out."""

from __future__ import annotations

import pytest

from harden.errors import InputError
from harden.lab import kubeadm_init

PRIVATE = ("/etc/kubernetes", "/var/lib/kubelet")


def write(tmp_path, text: str):
    (tmp_path / "kubeadm-config.yaml").write_text(text)
    return tmp_path


def test_cluster_configuration_gets_kubeadm_defaults_and_keeps_user_args(tmp_path):
    plan = kubeadm_init.read(write(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta3\n"
                                             "kind: ClusterConfiguration\napiServer:\n"
                                             "  extraArgs:\n    profiling: \"false\"\n"), PRIVATE)
    assert plan.api_version == "v1beta3"
    assert "serviceSubnet: 10.96.0.0/12" in plan.cluster_text
    assert "    profiling: \"false\"" in plan.cluster_text
    assert plan.config.api_server.args == (("profiling", "false"),)
    assert plan.kubelet["authorization"]["mode"] == "Webhook"


def test_join_configuration_kubelet_args_default_to_init(tmp_path):
    plan = kubeadm_init.read(write(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\n"
                                             "kind: InitConfiguration\nnodeRegistration:\n"
                                             "  kubeletExtraArgs:\n  - name: v\n    value: \"3\"\n"),
                             PRIVATE)
    assert plan.init_kubelet_args == plan.join_kubelet_args == (("v", "3"),)


@pytest.mark.parametrize("text,line,message", [
    ("kind: ClusterConfiguration\n", 1, "Object 'apiVersion' is missing"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\n"
     "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n"
     "scheduler:\n  extraArgs:\n  - name: a\n    value: b\n", 4, "map[string]string"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\n"
     "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n", 4, "specified twice"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
     "certificatesDir: /srv/pki\n", 1, "the lab keeps certificates in /etc/kubernetes/pki"),
    ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
     "patches:\n  directory: /etc/kubernetes/patches\n", 1, "does not apply patches"),
    ("a: [\n", 2, "error converting YAML to JSON"),
])
def test_refusals_name_file_and_line(tmp_path, text, line, message):
    with pytest.raises(InputError) as refused:
        kubeadm_init.read(write(tmp_path, text), PRIVATE)
    assert refused.value.path.endswith("kubeadm-config.yaml") and refused.value.line == line
    assert message in refused.value.message


def test_files_outside_node_private_directories_are_refused(tmp_path):
    write(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
    (tmp_path / "files/etc/kubernetes").mkdir(parents=True)
    (tmp_path / "files/etc/kubernetes/enc.yaml").write_text("x")
    assert set(kubeadm_init.read(tmp_path, PRIVATE).files) == {"/etc/kubernetes/enc.yaml"}
    (tmp_path / "files/opt").mkdir()
    (tmp_path / "files/opt/tool").write_text("x")
    with pytest.raises(InputError, match="/opt/tool is not in a node-private directory"):
        kubeadm_init.read(tmp_path, PRIVATE)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(InputError, match="no kubeadm-config.yaml"):
        kubeadm_init.read(tmp_path, PRIVATE)


def test_directories_of_files_keep_their_modes_inside_private_directories(tmp_path):
    write(tmp_path, "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n")
    audit = tmp_path / "files/etc/kubernetes/audit"
    audit.mkdir(parents=True)
    audit.chmod(0o700)
    (tmp_path / "files/etc/kubernetes").chmod(0o755)
    plan = kubeadm_init.read(tmp_path, PRIVATE)
    assert plan.dirs == {"/etc/kubernetes/audit": 0o700}     # not the mount point, not /etc
    assert plan.files == {}
