"""ClusterConfiguration as the lab's kubeadm decodes it, and the manifests kubeadm builds from it:
what kubeadm refuses (with its wording), extraArgs replacing defaults, extraVolumes as hostPaths."""

from __future__ import annotations

import pytest
import yaml

from harden.lab import kubeadm_config, layout
from harden.lab.kubeadm_config import KubeadmConfigError

NODE = layout.NodeSpec("cp1", "control-plane", "127.9.9.11", 21001, 21002)


def config(api: str = "v1beta4", **fields) -> dict:
    doc = kubeadm_config.document(api)
    doc.update(fields)
    return doc


def command(doc: dict, build=layout.apiserver_manifest) -> list[str]:
    return build(NODE, kubeadm_config.from_document(doc))["spec"]["containers"][0]["command"]


@pytest.mark.parametrize("api", ["v1beta3", "v1beta4"])
def test_lab_document_round_trips_to_the_same_manifests(api):
    text = layout.kube_yaml(layout.cluster_document(layout.PROFILES["weak"], api)).decode()
    parsed = kubeadm_config.parse(text)
    assert parsed == layout.cluster_config(layout.PROFILES["weak"], api)
    assert layout.manifests(NODE, parsed) == layout.manifests(
        NODE, layout.cluster_config(layout.PROFILES["weak"], "v1beta4"))


def test_v1beta4_map_extra_args_are_refused_like_kubeadm():
    doc = config(apiServer={"extraArgs": {"profiling": "false"}})
    with pytest.raises(KubeadmConfigError, match=r"cannot unmarshal object into Go struct field "
                                                 r"APIServer.apiServer.extraArgs of "
                                                 r"type \[\]v1beta4.Arg"):
        kubeadm_config.from_document(doc)


def test_v1beta3_list_extra_args_are_refused_like_kubeadm():
    doc = config("v1beta3", scheduler={"extraArgs": [{"name": "profiling", "value": "false"}]})
    with pytest.raises(KubeadmConfigError, match="cannot unmarshal array .* of type "
                                                 r"map\[string\]string"):
        kubeadm_config.from_document(doc)


def test_unquoted_boolean_value_is_refused_as_kubeadm_decodes_strings():
    doc = config("v1beta3", apiServer={"extraArgs": {"profiling": False}})
    with pytest.raises(KubeadmConfigError, match="cannot unmarshal bool into Go struct field"):
        kubeadm_config.from_document(doc)


@pytest.mark.parametrize("api_version,message", [
    ("kubeadm.k8s.io/v1beta2", "old API spec"),
    ("kubeadm.k8s.io/v1beta9", 'no kind "ClusterConfiguration" is registered for version '
                               '"kubeadm.k8s.io/v1beta9"'),
    ("kubelet.config.k8s.io/v1beta1", "no kind"),
])
def test_unknown_or_old_api_versions_are_refused(api_version, message):
    with pytest.raises(KubeadmConfigError, match=message):
        kubeadm_config.from_document(config(apiVersion=api_version))


def test_unknown_kind_is_refused():
    with pytest.raises(KubeadmConfigError, match='no kind "ClusterConfig" is registered'):
        kubeadm_config.from_document(config(kind="ClusterConfig"))


def test_malformed_yaml_names_the_line():
    with pytest.raises(KubeadmConfigError, match=r"error converting YAML to JSON: yaml: line \d+: "):
        kubeadm_config.parse("kind: ClusterConfiguration\napiServer: [\n  - a: b\n c")


def test_extra_arg_replaces_the_default_and_keeps_the_sorted_layout():
    doc = config(apiServer={"extraArgs": [
        {"name": "enable-admission-plugins", "value": "EventRateLimit"},
        {"name": "profiling", "value": "false"}]})
    argv = command(doc)
    assert "--enable-admission-plugins=EventRateLimit" in argv
    assert "--enable-admission-plugins=NodeRestriction" not in argv   # replaced wholesale
    assert argv[1:] == sorted(argv[1:])


def test_repeated_v1beta4_arg_is_kept_in_value_order():
    doc = config(apiServer={"extraArgs": [{"name": "tls-cipher-suites", "value": "b"},
                                          {"name": "tls-cipher-suites", "value": "a"}]})
    assert [a for a in command(doc) if "tls-cipher" in a] == ["--tls-cipher-suites=a",
                                                              "--tls-cipher-suites=b"]


def test_authorization_config_drops_the_default_authorization_mode():
    doc = config(apiServer={"extraArgs": [{"name": "authorization-config",
                                           "value": "/etc/kubernetes/authz.yaml"}]})
    assert not [a for a in command(doc) if a.startswith("--authorization-mode")]


def test_extra_volume_becomes_a_sorted_host_path_volume_and_mount():
    doc = config(apiServer={"extraVolumes": [{"name": "audit", "hostPath": "/var/log/audit",
                                              "mountPath": "/logs", "pathType": "DirectoryOrCreate"},
                                             {"name": "a-policy", "hostPath": "/etc/p.yaml",
                                              "mountPath": "/etc/p.yaml", "readOnly": True}]})
    pod = layout.apiserver_manifest(NODE, kubeadm_config.from_document(doc))
    volumes = pod["spec"]["volumes"]
    assert [v["name"] for v in volumes] == sorted(v["name"] for v in volumes)
    assert {"hostPath": {"path": "/etc/p.yaml", "type": ""}, "name": "a-policy"} in volumes
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert {"mountPath": "/logs", "name": "audit"} in mounts
    assert {"mountPath": "/etc/p.yaml", "name": "a-policy", "readOnly": True} in mounts
    assert b'type: ""' in layout.kube_yaml(pod)


def test_bad_path_type_and_missing_host_path_are_refused():
    bad = config(scheduler={"extraVolumes": [{"name": "x", "hostPath": "/x", "mountPath": "/x",
                                              "pathType": "Dir"}]})
    with pytest.raises(KubeadmConfigError, match="pathType: Unsupported value"):
        kubeadm_config.from_document(bad)
    missing = config(scheduler={"extraVolumes": [{"name": "x", "mountPath": "/x"}]})
    with pytest.raises(KubeadmConfigError, match=r"scheduler.extraVolumes\[0\].hostPath: "
                                                 "Required value"):
        kubeadm_config.from_document(missing)


def test_any_address_binds_the_node_address_in_the_lab():
    doc = config(controllerManager={"extraArgs": [{"name": "bind-address", "value": "0.0.0.0"}]})
    pod = layout.controller_manager_manifest(NODE, kubeadm_config.from_document(doc))
    container = pod["spec"]["containers"][0]
    assert f"--bind-address={NODE.address}" in container["command"]
    assert container["livenessProbe"]["httpGet"]["host"] == NODE.address


def test_upgrade_version_moves_the_images():
    upgraded = kubeadm_config.with_version(kubeadm_config.from_document(config()), "v1.31.2")
    assert layout.apiserver_manifest(NODE, upgraded)["spec"]["containers"][0]["image"] == \
        "registry.k8s.io/kube-apiserver:v1.31.2"
    assert not kubeadm_config.is_version("1.31")


def test_kubelet_configuration_must_be_the_kubelet_kind():
    with pytest.raises(KubeadmConfigError, match='no kind "KubeProxyConfiguration"'):
        kubeadm_config.kubelet_configuration(yaml.safe_dump(
            {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeProxyConfiguration"}))


def test_kubelet_extra_args_merge_into_kubeadm_flags_env_like_extra_args():
    env = layout.kubeadm_flags_env(NODE, (("v", "2"), ("node-ip", "10.0.0.9"))).decode()
    flags = env.split('"')[1].split()
    assert flags == sorted(flags)
    assert "--node-ip=10.0.0.9" in flags and f"--node-ip={NODE.address}" not in flags
    assert "--v=2" in flags


@pytest.mark.parametrize("profile", ["kubeadm", "weak"])
@pytest.mark.parametrize("api", ["v1beta3", "v1beta4"])
def test_seeded_text_regenerates_exactly_what_lab_up_writes(profile, api):
    prof = layout.PROFILES[profile]
    seeded = layout.kube_yaml(layout.cluster_document(prof, api)).decode()
    written = layout.manifests(NODE, layout.cluster_config(prof, api))
    assert layout.manifests(NODE, kubeadm_config.parse(seeded)) == written
