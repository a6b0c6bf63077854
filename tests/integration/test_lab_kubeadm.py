"""The lab's `kubeadm upgrade apply|node` regenerates a node's manifests and kubelet config from
the kubeadm-config and kubelet-config ConfigMaps, as kubeadm does: nothing changes right after
`lab up`, a hand edit of a manifest is lost, what the ConfigMap says is written."""

from __future__ import annotations

import base64
import json
import shutil

import pytest
import yaml

from harden.lab import kubeadm
from support.lab_cli import kubectl, wait_for

pytestmark = pytest.mark.skipif(not shutil.which("kubectl"),
                                reason="needs kubectl (kubernetes-client)")

MANIFESTS = "etc/kubernetes/manifests"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


@pytest.fixture(scope="module", params=[("v1beta4", "kubeadm"), ("v1beta3", "weak")],
                ids=["v1beta4-kubeadm", "v1beta3-weak"])
def lab(lab_factory, request):
    api, profile = request.param
    with lab_factory.running(control_planes=1, workers=1, wait_ready=True, profile=profile,
                             kubeadm_api=api) as lab:
        lab.kubeadm_api = api
        wait_for(lambda: kubectl(lab, "-n", "kube-system", "get", "cm",
                                 "kubelet-config").returncode == 0)
        yield lab


def manifests(lab, node: str = "cp1") -> dict[str, bytes]:
    root = lab.node_root(node) / MANIFESTS
    return {c: (root / f"{c}.yaml").read_bytes() for c in COMPONENTS}


def cluster_configuration(lab) -> tuple[dict, dict]:
    cm = json.loads(kubectl(lab, "-n", "kube-system", "get", "cm", "kubeadm-config",
                            "-o", "json").stdout)
    return cm, yaml.safe_load(cm["data"]["ClusterConfiguration"])


def replace_cluster_configuration(lab, cm: dict, doc: dict) -> None:
    cm["data"]["ClusterConfiguration"] = yaml.safe_dump(doc)
    done = kubectl(lab, "replace", "-f", "-", stdin=json.dumps(cm))
    assert done.returncode == 0, done.stderr


def upgrade(lab, node: str, command: str = "kubeadm upgrade apply -y", check: bool = True):
    return lab.ssh(node, command, check=check, timeout=180)


def backups(lab, prefix: str) -> list:
    tmp = lab.node_root("cp1") / "etc/kubernetes/tmp"
    return sorted(tmp.glob(f"{prefix}-*")) if tmp.exists() else []


def test_upgrade_right_after_up_leaves_every_file_byte_identical(lab):
    before = manifests(lab)
    kubelet = {n: (lab.node_root(n) / "var/lib/kubelet/config.yaml").read_bytes()
               for n in ("cp1", "w1")}
    cm, doc = cluster_configuration(lab)
    assert doc["apiVersion"] == f"kubeadm.k8s.io/{lab.kubeadm_api}"
    if lab.profile == "weak":      # the weak flags are the user's extraArgs, in the API's shape
        assert doc["apiServer"]["extraArgs"]["authorization-mode"] == "AlwaysAllow"
        assert doc["controllerManager"]["extraArgs"]["bind-address"] == "0.0.0.0"
    out = upgrade(lab, "cp1").stdout
    assert out.count("are equal, skipping upgrade") == 4
    assert "SUCCESS! Your cluster was upgraded" in out
    upgrade(lab, "w1", "kubeadm upgrade node")
    assert manifests(lab) == before
    for node, content in kubelet.items():
        assert (lab.node_root(node) / "var/lib/kubelet/config.yaml").read_bytes() == content
    assert backups(lab, "kubeadm-kubelet-config")


def test_upgrade_drops_a_hand_edit_and_keeps_it_in_the_backup(lab):
    original = manifests(lab)["kube-apiserver"]
    lab.ssh("cp1", "sed -i 's/^    - --secure-port=6443$/    - --profiling=false\\n&/' "
                   f"/{MANIFESTS}/kube-apiserver.yaml")
    edited = manifests(lab)["kube-apiserver"]
    assert b"--profiling=false" in edited
    lab.wait_ready()
    diff = upgrade(lab, "cp1", "kubeadm upgrade diff").stdout
    assert "--- /etc/kubernetes/manifests/kube-apiserver.yaml" in diff
    assert "\n-    - --profiling=false\n" in diff and diff.count("\n+") == 1   # only the header
    assert manifests(lab)["kube-apiserver"] == edited
    out = upgrade(lab, "cp1").stdout
    assert 'Component "kube-apiserver" upgraded successfully!' in out
    assert manifests(lab)["kube-apiserver"] == original
    saved = backups(lab, "kubeadm-backup-manifests")[-1] / "kube-apiserver.yaml"
    assert saved.read_bytes() == edited
    assert not backups(lab, "kubeadm-upgraded-manifests")
    lab.wait_ready()


def _arg_entries(api: str, args: dict):
    return dict(args) if api == "v1beta3" else [{"name": k, "value": v} for k, v in args.items()]


def test_configmap_extra_arg_and_volume_are_written_by_the_upgrade(lab):
    cm, doc = cluster_configuration(lab)
    doc["apiServer"]["extraArgs"] = _arg_entries(lab.kubeadm_api, {
        "audit-log-path": "/var/log/kubernetes/audit/audit.log", "profiling": "false"})
    doc["apiServer"]["extraVolumes"] = [{
        "name": "audit-log", "hostPath": "/var/log/kubernetes/audit/",
        "mountPath": "/var/log/kubernetes/audit/", "pathType": "DirectoryOrCreate"}]
    replace_cluster_configuration(lab, cm, doc)
    upgrade(lab, "cp1")
    pod = yaml.safe_load(manifests(lab)["kube-apiserver"])
    container = pod["spec"]["containers"][0]
    assert "--profiling=false" in container["command"]
    assert "--audit-log-path=/var/log/kubernetes/audit/audit.log" in container["command"]
    assert {"name": "audit-log", "mountPath": "/var/log/kubernetes/audit/"} in \
        container["volumeMounts"]
    assert {"name": "audit-log", "hostPath": {"path": "/var/log/kubernetes/audit/",
                                              "type": "DirectoryOrCreate"}} in pod["spec"]["volumes"]
    assert [a for a in container["command"] if a.startswith("--profiling")] == ["--profiling=false"]
    lab.wait_ready()
    pods = json.loads((lab.node_root("cp1") / "var/lib/kubelet/harden-lab-pods.json").read_text())
    assert "--profiling=false" in pods["pods"]["kube-apiserver"]["argv"]


def test_kubelet_configmap_change_reaches_a_worker_with_upgrade_node(lab):
    cm = json.loads(kubectl(lab, "-n", "kube-system", "get", "cm", "kubelet-config",
                            "-o", "json").stdout)
    doc = yaml.safe_load(cm["data"]["kubelet"])
    doc["eventRecordQPS"] = 7
    cm["data"]["kubelet"] = yaml.safe_dump(doc)
    assert kubectl(lab, "replace", "-f", "-", stdin=json.dumps(cm)).returncode == 0
    config = lab.node_root("w1") / "var/lib/kubelet/config.yaml"
    mode = config.stat().st_mode
    upgrade(lab, "w1", "kubeadm upgrade node")
    written = yaml.safe_load(config.read_text())
    assert written["eventRecordQPS"] == 7
    assert written["address"] == lab.nodes["w1"]        # the node's own address stays
    assert config.stat().st_mode == mode


def test_upgrade_node_phases_do_one_part_each(lab):
    original = manifests(lab)
    lab.ssh("cp1", "sed -i 's/^    - --secure-port=6443$/    - --v=4\\n&/' "
                   f"/{MANIFESTS}/kube-apiserver.yaml")
    edited = manifests(lab)
    out = upgrade(lab, "cp1", "kubeadm upgrade node phase kubelet-config").stdout
    assert "Writing kubelet configuration" in out and "staticpods" not in out
    assert manifests(lab) == edited
    lab.wait_ready()
    out = upgrade(lab, "cp1", "kubeadm upgrade node phase control-plane").stdout
    assert "kubelet" not in out.replace("Waiting for the kubelet", "")
    assert manifests(lab) == original
    skipped = upgrade(lab, "w1", "kubeadm upgrade node phase control-plane").stdout
    assert "Skipping phase. Not a control plane node." in skipped
    lab.wait_ready()


ENCRYPTION = """apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc:
      keys:
      - name: key1
        secret: {secret}
  - identity: {{}}
"""


@pytest.fixture(scope="module")
def enc_lab(lab_factory):
    with lab_factory.running(control_planes=1, workers=0, wait_ready=True) as lab:
        wait_for(lambda: kubectl(lab, "-n", "kube-system", "get", "cm",
                                 "kubeadm-config").returncode == 0)
        yield lab


def enable_encryption_by_hand(lab) -> None:
    """What an operator does following the docs: config file, flag and volume in the manifest."""
    root = lab.node_root("cp1")
    (root / "etc/kubernetes/enc").mkdir(mode=0o700)
    secret = base64.b64encode(b"k" * 32).decode()
    (root / "etc/kubernetes/enc/enc.yaml").write_text(ENCRYPTION.format(secret=secret))
    path = root / MANIFESTS / "kube-apiserver.yaml"
    pod = yaml.safe_load(path.read_text())
    container = pod["spec"]["containers"][0]
    container["command"].append("--encryption-provider-config=/etc/kubernetes/enc/enc.yaml")
    container["volumeMounts"].append({"mountPath": "/etc/kubernetes/enc", "name": "enc",
                                      "readOnly": True})
    pod["spec"]["volumes"].append({"hostPath": {"path": "/etc/kubernetes/enc",
                                                "type": "DirectoryOrCreate"}, "name": "enc"})
    path.write_text(yaml.safe_dump(pod))


def test_upgrade_that_drops_the_encryption_flag_locks_secrets_out(enc_lab):
    lab = enc_lab
    enable_encryption_by_hand(lab)
    wait_for(lambda: "--encryption-provider-config=/etc/kubernetes/enc/enc.yaml" in json.loads(
        (lab.node_root("cp1") / "var/lib/kubelet/harden-lab-pods.json").read_text())
        ["pods"]["kube-apiserver"]["argv"], timeout=60)
    lab.wait_ready()
    wait_for(lambda: kubectl(lab, "create", "secret", "generic", "sealed", "--from-literal=a=b",
                             "-n", "apps").returncode == 0, timeout=60)
    assert kubectl(lab, "get", "secret", "sealed", "-n", "apps").returncode == 0

    upgrade(lab, "cp1")          # ClusterConfiguration knows nothing of encryption
    manifest = manifests(lab)["kube-apiserver"]
    assert b"encryption-provider-config" not in manifest
    lab.wait_ready()
    wait_for(lambda: kubectl(lab, "get", "ns", "apps").returncode == 0, timeout=60)
    failed = kubectl(lab, "get", "secret", "sealed", "-n", "apps")
    assert failed.returncode == 1
    assert ('unable to transform key "/registry/secrets/apps/sealed": identity transformer '
            'tried to read encrypted data') in failed.stderr
    assert kubectl(lab, "get", "configmap", "apps-settings", "-n", "apps").returncode == 0

    cm, doc = cluster_configuration(lab)     # persisted in ClusterConfiguration, it survives
    doc["apiServer"]["extraArgs"] = [{"name": "encryption-provider-config",
                                      "value": "/etc/kubernetes/enc/enc.yaml"}]
    doc["apiServer"]["extraVolumes"] = [{"name": "enc", "hostPath": "/etc/kubernetes/enc",
                                         "mountPath": "/etc/kubernetes/enc", "readOnly": True,
                                         "pathType": "DirectoryOrCreate"}]
    replace_cluster_configuration(lab, cm, doc)
    upgrade(lab, "cp1")
    lab.wait_ready()
    wait_for(lambda: kubectl(lab, "get", "secret", "sealed", "-n", "apps").returncode == 0,
             timeout=60)


def test_patches_directory_is_applied_by_upgrade_node(lab):
    lab.ssh("cp1", "mkdir -p /etc/kubernetes/patches && printf '%s\\n' "
                   "'- op: add' '  path: /spec/containers/0/command/-' "
                   "'  value: --request-timeout=2m0s' "
                   "> /etc/kubernetes/patches/kube-apiserver+json.yaml")
    out = upgrade(lab, "cp1", "kubeadm upgrade node --patches /etc/kubernetes/patches").stdout
    assert 'Applied patch of type "application/json-patch+json" to target "kube-apiserver"' in out
    assert b"    - --request-timeout=2m0s\n" in manifests(lab)["kube-apiserver"]
    lab.ssh("w1", "mkdir -p /etc/kubernetes/patches && printf 'eventRecordQPS: 9\\n' "
                  "> /etc/kubernetes/patches/kubeletconfiguration+merge.yaml")
    upgrade(lab, "w1", "kubeadm upgrade node --patches /etc/kubernetes/patches")
    config = yaml.safe_load((lab.node_root("w1") / "var/lib/kubelet/config.yaml").read_text())
    assert config["eventRecordQPS"] == 9
    lab.wait_ready()


def test_upgrade_to_a_version_moves_the_images_and_stores_the_version(lab):
    cm, _ = cluster_configuration(lab)
    text = cm["data"]["ClusterConfiguration"]
    out = upgrade(lab, "cp1", "kubeadm upgrade apply v1.30.5 -y "
                              "--patches /etc/kubernetes/patches").stdout
    assert 'Storing the configuration used in ConfigMap "kubeadm-config"' in out
    images = {c: yaml.safe_load(m)["spec"]["containers"][0]["image"]
              for c, m in manifests(lab).items()}
    assert images["kube-apiserver"] == "registry.k8s.io/kube-apiserver:v1.30.5"
    assert images["etcd"].endswith("/etcd:3.5.12-0")
    stored = cluster_configuration(lab)[0]["data"]["ClusterConfiguration"]
    assert stored == text.replace("kubernetesVersion: v1.30.4", "kubernetesVersion: v1.30.5")
    lab.wait_ready()
    before = manifests(lab)       # upgrade node follows the stored version
    upgrade(lab, "cp1", "kubeadm upgrade node --patches /etc/kubernetes/patches")
    assert manifests(lab) == before
    lab.wait_ready()


def test_component_that_does_not_come_back_rolls_the_upgrade_back(lab):
    before = manifests(lab)
    cm, doc = cluster_configuration(lab)
    doc["scheduler"]["extraArgs"] = _arg_entries(lab.kubeadm_api, {"v": "3"})
    replace_cluster_configuration(lab, cm, doc)
    lab.ssh("cp1", "systemctl stop kubelet")     # nothing will replace the pods
    try:
        failed = upgrade(lab, "cp1", f"{kubeadm.TIMEOUT_ENV}=2 kubeadm upgrade apply -y "
                                     "--patches /etc/kubernetes/patches",
                         check=False)
    finally:
        lab.ssh("cp1", "systemctl start kubelet")
    assert failed.returncode == 1
    assert "kubeadm has tried to recover everything into the earlier state" in failed.stderr
    assert "static Pod hash for component kube-scheduler on Node cp1 did not change" \
        in failed.stderr
    assert manifests(lab) == before
    lab.wait_ready()


def test_configmap_kubeadm_would_refuse_fails_the_upgrade_and_changes_nothing(lab):
    before = manifests(lab)
    cm, doc = cluster_configuration(lab)
    wrong = ([{"name": "profiling", "value": "false"}] if lab.kubeadm_api == "v1beta3"
             else {"profiling": "false"})
    doc["apiServer"]["extraArgs"] = wrong
    replace_cluster_configuration(lab, cm, doc)
    failed = upgrade(lab, "cp1", check=False)
    assert failed.returncode == 1
    assert "cannot unmarshal" in failed.stderr and "apiServer.extraArgs" in failed.stderr
    assert manifests(lab) == before


def test_lab_up_from_a_kubeadm_config_directory(lab_factory, tmp_path):
    (tmp_path / "files/etc/kubernetes/audit").mkdir(parents=True)
    (tmp_path / "files/etc/kubernetes/audit/policy.yaml").write_text(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    (tmp_path / "kubeadm-config.yaml").write_text("""\
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
nodeRegistration:
  kubeletExtraArgs:
    v: "2"
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
apiServer:
  extraArgs:
    audit-policy-file: /etc/kubernetes/audit/policy.yaml
    audit-log-path: /var/log/kubernetes/audit/audit.log
  extraVolumes:
  - name: audit-policy
    hostPath: /etc/kubernetes/audit/policy.yaml
    mountPath: /etc/kubernetes/audit/policy.yaml
    readOnly: true
    pathType: File
  - name: audit-log
    hostPath: /var/log/kubernetes/audit/
    mountPath: /var/log/kubernetes/audit/
    pathType: DirectoryOrCreate
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
eventRecordQPS: 4
""")
    with lab_factory.running(control_planes=1, workers=1, wait_ready=True,
                             kubeadm_config_dir=tmp_path) as lab:
        root = lab.node_root("cp1")
        assert (root / "etc/kubernetes/audit/policy.yaml").exists()
        wait_for(lambda: (root / "var/log/kubernetes/audit/audit.log").exists())
        assert b"--v=2" in (root / "var/lib/kubelet/kubeadm-flags.env").read_bytes()
        kubelet = yaml.safe_load((lab.node_root("w1") / "var/lib/kubelet/config.yaml").read_text())
        assert kubelet["eventRecordQPS"] == 4 and kubelet["authorization"]["mode"] == "Webhook"
        wait_for(lambda: kubectl(lab, "-n", "kube-system", "get", "cm",
                                 "kubeadm-config").returncode == 0)
        _, doc = cluster_configuration(lab)
        assert doc["apiVersion"] == "kubeadm.k8s.io/v1beta3"
        assert doc["apiServer"]["extraArgs"]["audit-log-path"].endswith("audit.log")
        assert doc["networking"]["serviceSubnet"] == "10.96.0.0/12"     # kubeadm's default
        before = manifests(lab)
        assert upgrade(lab, "cp1").stdout.count("are equal, skipping upgrade") == 4
        assert manifests(lab) == before


def test_lab_up_refuses_what_kubeadm_init_refuses_and_starts_nothing(lab_factory, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "kubeadm-config.yaml").write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\n"
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
        "apiServer:\n  extraArgs:\n    profiling: \"false\"\n")
    from harden.errors import InputError
    from harden.lab import cluster

    with pytest.raises(InputError) as refused:
        cluster.up(tmp_path / "lab", net=lab_factory.free_net(), kubeadm_config_dir=config)
    assert str(refused.value).startswith(f"{config}/kubeadm-config.yaml:4: ")
    assert "[]v1beta4.Arg" in str(refused.value)
    assert not (tmp_path / "lab").exists()
