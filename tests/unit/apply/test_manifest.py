"""Line-level manifest editing: untouched lines stay byte-identical, kubeadm's style is kept."""

from __future__ import annotations

import difflib

import pytest

from harden.errors import InputError
from harden.apply.manifest import Manifest, YamlText
from support.paths import FIXTURES as FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "manifests"


def load(name: str) -> str:
    return (FIXTURES / name).read_text()


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    diff = list(difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0))
    removed = [l for l in diff if l.startswith("-") and not l.startswith("---")]
    added = [l for l in diff if l.startswith("+") and not l.startswith("+++")]
    return removed, added


@pytest.mark.parametrize("name", ["kube-apiserver.yaml", "kube-controller-manager.yaml",
                                  "kube-scheduler.yaml", "etcd.yaml"])
def test_no_edit_is_byte_identical_and_flags_parse(name):
    text = load(name)
    manifest = Manifest(text)
    assert manifest.text == text
    assert manifest.argv()[0] == name.replace(".yaml", "")
    assert all(v is not None for v in manifest.flags().values())


def test_changing_one_flag_is_a_one_line_diff():
    text = load("kube-apiserver.yaml")
    manifest = Manifest(text)
    assert manifest.set_flag("secure-port", "6444")
    removed, added = changed_lines(text, manifest.text)
    assert removed == ["-    - --secure-port=6443\n"]
    assert added == ["+    - --secure-port=6444\n"]


def test_a_crlf_manifest_keeps_crlf_on_every_line_after_edits():
    text = load("kube-apiserver.yaml").replace("\n", "\r\n")
    manifest = Manifest(text)
    assert manifest.set_flag("secure-port", "6444")            # a replaced line
    assert manifest.set_flag("profiling", "false")             # an inserted line
    assert manifest.ensure_volume("audit", "/etc/kubernetes/audit", "/etc/kubernetes/audit",
                                  True, "DirectoryOrCreate")    # multi-line inserts
    out = manifest.text
    assert out.count("\n") == out.count("\r\n") and "\r\r" not in out
    removed, added = changed_lines(text, out)
    assert "-    - --secure-port=6443\r\n" in removed and "+    - --secure-port=6444\r\n" in added
    assert "+    - --profiling=false\r\n" in added


def test_an_lf_manifest_gets_no_cr():
    manifest = Manifest(load("kube-apiserver.yaml"))
    manifest.set_flag("profiling", "false")
    assert "\r" not in manifest.text


def test_new_flag_goes_in_sorted_place_and_setting_again_is_noop():
    text = load("kube-apiserver.yaml")
    manifest = Manifest(text)
    assert manifest.set_flag("profiling", "false")
    lines = manifest.text.splitlines()
    at = lines.index("    - --profiling=false")
    assert lines[at - 1] == "    - --kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname"
    assert lines[at + 1] == "    - --proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt"
    assert not manifest.set_flag("profiling", "false")
    assert len(manifest.text.splitlines()) == len(text.splitlines()) + 1


def test_list_flag_merge_is_exact_and_order_preserving():
    manifest = Manifest(load("kube-apiserver.yaml"))
    manifest.set_flag("enable-admission-plugins", "NodeRestriction,PodSecurityX")
    assert manifest.edit_list_flag("enable-admission-plugins",
                                   add=["PodSecurity", "NodeRestriction", "EventRateLimit"])
    # PodSecurity is a different element from PodSecurityX (no substring matching)
    assert manifest.flags()["enable-admission-plugins"] == \
        "NodeRestriction,PodSecurityX,PodSecurity,EventRateLimit"
    assert not manifest.edit_list_flag("enable-admission-plugins", add=["EventRateLimit"])
    assert manifest.edit_list_flag("enable-admission-plugins", remove=["PodSecurityX"])
    assert manifest.list_flag("enable-admission-plugins") == \
        ["NodeRestriction", "PodSecurity", "EventRateLimit"]


def test_emptied_list_flag_is_removed():
    text = load("kube-apiserver.yaml")
    manifest = Manifest(text)
    assert manifest.edit_list_flag("enable-admission-plugins", remove=["NodeRestriction"])
    assert "enable-admission-plugins" not in manifest.flags()
    removed, added = changed_lines(text, manifest.text)
    assert removed == ["-    - --enable-admission-plugins=NodeRestriction\n"] and added == []


def test_args_style_duplicates_and_separate_value_are_normalised():
    text = load("apiserver-args-style.yaml")
    manifest = Manifest(text)
    assert manifest.flags()["profiling"] == "true"          # `--profiling` `"true"`
    assert manifest.list_flag("enable-admission-plugins") == ["NodeRestriction",
                                                              "AlwaysPullImages"]
    assert manifest.set_flag("profiling", "false")
    assert manifest.edit_list_flag("enable-admission-plugins", add=["EventRateLimit"])
    entries = [e for e in manifest.flag_entries() if e.name == "enable-admission-plugins"]
    assert len(entries) == 1
    assert entries[0].value == "NodeRestriction,AlwaysPullImages,EventRateLimit"
    assert '"true"' not in manifest.text
    # new flags go to args:, not to command:
    manifest.set_flag("audit-log-maxage", "30")
    assert manifest.value(["spec", "containers", 0, "command"]) == ["kube-apiserver"]
    assert "--audit-log-maxage=30" in manifest.value(["spec", "containers", 0, "args"])


def test_volume_and_mount_inserted_in_kubeadm_style():
    text = load("kube-apiserver.yaml")
    manifest = Manifest(text)
    assert manifest.ensure_volume("enc", "/etc/kubernetes/enc", "/etc/kubernetes/enc", True,
                                  "DirectoryOrCreate")
    removed, added = changed_lines(text, manifest.text)
    assert removed == [] and len(added) == 7
    # sorted by name, in kubeadm's layout: enc between ca-certs and etc-ca-certificates
    assert ("      name: ca-certs\n      readOnly: true\n"
            "    - mountPath: /etc/kubernetes/enc\n      name: enc\n      readOnly: true\n"
            "    - mountPath: /etc/ca-certificates\n") in manifest.text
    assert ("    name: ca-certs\n"
            "  - hostPath:\n      path: /etc/kubernetes/enc\n      type: DirectoryOrCreate\n"
            "    name: enc\n  - hostPath:\n      path: /etc/ca-certificates\n") in manifest.text
    assert not manifest.ensure_volume("enc", "/etc/kubernetes/enc", "/etc/kubernetes/enc",
                                      True, "DirectoryOrCreate")
    assert manifest.host_path_of("/etc/kubernetes/enc/config.yaml") == \
        "/etc/kubernetes/enc/config.yaml"


def test_unsorted_mounts_get_new_entries_appended():
    manifest = Manifest(load("etcd.yaml"))        # kubeadm writes etcd-data before etcd-certs
    manifest.ensure_volume("backup", "/var/backups/etcd", "/backup", False, "DirectoryOrCreate")
    mounts = [m.name for m in manifest.mounts()]
    assert mounts == ["etcd-data", "etcd-certs", "backup"]
    assert list(manifest.volumes()) == ["backup", "etcd-certs", "etcd-data"]
    assert manifest.host_path_of("/backup/x.db") == "/var/backups/etcd/x.db"


def test_volume_changes_replace_and_remove():
    text = load("kube-scheduler.yaml")
    manifest = Manifest(text)
    assert manifest.ensure_volume("kubeconfig", "/etc/kubernetes/scheduler.conf",
                                  "/etc/kubernetes/scheduler.conf", True, "File")
    removed, added = changed_lines(text, manifest.text)
    assert removed == ["-      type: FileOrCreate\n"] and added == ["+      type: File\n"]
    assert manifest.remove_volume("kubeconfig")
    assert "volumeMounts" not in manifest.text and "volumes:" not in manifest.text
    Manifest(manifest.text)    # still a valid manifest


def test_mount_path_conflict_is_refused():
    manifest = Manifest(load("kube-apiserver.yaml"))
    with pytest.raises(InputError, match="already used by volume 'k8s-certs'"):
        manifest.ensure_volume("pki2", "/srv/pki", "/etc/kubernetes/pki", True, "Directory")


def test_annotation_added_to_existing_and_to_missing_annotations():
    text = load("kube-apiserver.yaml")
    manifest = Manifest(text)
    assert manifest.set_annotation("harden.io/config-hash", "0123abcd")
    removed, added = changed_lines(text, manifest.text)
    assert removed == [] and added == ["+    harden.io/config-hash: 0123abcd\n"]
    assert manifest.text.index("harden.io/config-hash") < \
        manifest.text.index("kubeadm.kubernetes.io/kube-apiserver")
    assert not manifest.set_annotation("harden.io/config-hash", "0123abcd")
    assert manifest.set_annotation("harden.io/config-hash", "ffff")
    assert manifest.annotation("harden.io/config-hash") == "ffff"

    text = load("kube-scheduler.yaml")
    manifest = Manifest(text)
    assert manifest.set_annotation("harden.io/config-hash", "0123")
    removed, added = changed_lines(text, manifest.text)
    assert removed == []
    assert added == ["+  annotations:\n", "+    harden.io/config-hash: '0123'\n"]
    assert manifest.text.splitlines()[3] == "  annotations:"     # sorted: before creationTimestamp


def test_inline_lists_and_non_pods_are_refused():
    with pytest.raises(InputError, match="not a Pod"):
        Manifest("apiVersion: v1\nkind: Service\n")
    inline = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n" \
             "  - name: x\n    command: [kube-apiserver, --a=b]\n"
    with pytest.raises(InputError, match=r":8: .*inline"):
        Manifest(inline, "/m.yaml").set_flag("profiling", "false")
    with pytest.raises(InputError, match=r"/m.yaml:2: not valid YAML"):
        Manifest("a: b\n  c: d: e\n", "/m.yaml")


def test_values_needing_quotes_are_quoted():
    manifest = Manifest(load("kube-scheduler.yaml"))
    manifest.set_flag("feature-gates", "A=true,B=false")
    manifest.set_flag("odd", "x: y #z")
    assert "    - '--odd=x: y #z'\n" in manifest.text
    assert Manifest(manifest.text).flags()["odd"] == "x: y #z"


def test_yamltext_set_creates_nested_keys_and_keeps_other_lines():
    text = ("apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n"
            "    enabled: true\n  webhook:\n    cacheTTL: 0s\n    enabled: true\n"
            "kind: KubeletConfiguration\nrotateCertificates: true\n")
    doc = YamlText(text)
    assert doc.set(["authentication", "anonymous", "enabled"], False)
    assert doc.set(["readOnlyPort"], 0)
    assert doc.set(["authorization", "mode"], "Webhook")
    assert not doc.set(["rotateCertificates"], True)
    assert doc.text == (
        "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n"
        "    enabled: false\n  webhook:\n    cacheTTL: 0s\n    enabled: true\n"
        "authorization:\n  mode: Webhook\n"
        "kind: KubeletConfiguration\nreadOnlyPort: 0\nrotateCertificates: true\n")
    assert doc.delete(["readOnlyPort"]) and not doc.delete(["readOnlyPort"])
