"""`harden kubeadm-config`: the kubeadm init config derived from the shipped playbooks.

Both API shapes, variables from -e and from the inventory overriding the playbooks' defaults,
the refusals (nothing written), the files' modes, and a cross-check against the playbooks
themselves: the flags site.yml + encryption-at-rest.yml put into kubeadm's manifests are the
flags kubeadm gets from the generated ClusterConfiguration, component by component.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from harden.apply.kubeadm_init import Options, generate
from harden.apply.manifest import Manifest
from harden.apply.templating import render_template_file
from harden.apply.playbook import SHIPPED_TEMPLATES, load_playbook
from harden.cli import cli
from harden.errors import HardenError, InputError
from support.paths import REPO

def _shipped_playbooks_planner():
    """The in-memory kubeadm node and planner of test_shipped_playbooks (the playbooks'
    own unit test), loaded by path: test modules are not importable by name here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "shipped_playbooks_planner", Path(__file__).with_name("test_shipped_playbooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.kubeadm_node, module.run_playbook


kubeadm_node, run_playbook = _shipped_playbooks_planner()

KEY = base64.b64encode(bytes(range(32))).decode()
MANIFESTS = {"kube-apiserver": ("apiServer",), "kube-controller-manager": ("controllerManager",),
             "kube-scheduler": ("scheduler",), "etcd": ("etcd", "local")}


def docs(out: Path) -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((out / "kubeadm-config.yaml").read_text())}


def extra_args(cluster: dict, component: str) -> dict[str, str]:
    section = cluster
    for key in MANIFESTS[component]:
        section = section.get(key, {})
    raw = section.get("extraArgs") or {}
    if isinstance(raw, list):
        return {a["name"]: a["value"] for a in raw}
    return dict(raw)


def generated(tmp_path, extra=None, options=None, inventories=None, playbooks=None) -> Path:
    out = tmp_path / "out"
    generate(str(out), inventories, dict(extra or {}), options or Options(), playbooks)
    return out


def test_v1beta4_lists_args_and_keeps_kubeadm_defaults_of_list_flags(tmp_path):
    out = generated(tmp_path, {"encryption_key": KEY})
    kinds = docs(out)
    cluster = kinds["ClusterConfiguration"]
    assert cluster["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert kinds["InitConfiguration"]["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    assert isinstance(cluster["apiServer"]["extraArgs"], list)
    api = extra_args(cluster, "kube-apiserver")
    # kubeadm's NodeRestriction stays: a user value replaces kubeadm's default wholesale
    assert api["enable-admission-plugins"] == "NodeRestriction,EventRateLimit"
    assert api["profiling"] == "false"
    assert api["encryption-provider-config"] == "/etc/kubernetes/enc/encryption-config.yaml"
    assert api["admission-control-config-file"] == \
        "/etc/kubernetes/admission/admission-config.yaml"
    assert all(isinstance(v, str) for v in api.values())       # kubeadm wants strings
    volumes = {v["name"]: v for v in cluster["apiServer"]["extraVolumes"]}
    assert volumes["audit-policy"] == {"name": "audit-policy",
                                       "hostPath": "/etc/kubernetes/audit-policy.yaml",
                                       "mountPath": "/etc/kubernetes/audit-policy.yaml",
                                       "readOnly": True, "pathType": "File"}
    assert volumes["audit-log"]["readOnly"] is False
    assert extra_args(cluster, "etcd")["client-cert-auth"] == "true"
    assert extra_args(cluster, "kube-scheduler") == {"profiling": "false"}
    kubelet = kinds["KubeletConfiguration"]
    assert kubelet["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["readOnlyPort"] == 0 and kubelet["podPidsLimit"] == 16384
    assert kubelet["protectKernelDefaults"] is True


def test_v1beta3_maps_args_with_the_same_content(tmp_path):
    four = docs(generated(tmp_path / "4", {"encryption_key": KEY}))["ClusterConfiguration"]
    three = docs(generated(tmp_path / "3", {"encryption_key": KEY},
                           Options(api="v1beta3")))["ClusterConfiguration"]
    assert three["apiVersion"] == "kubeadm.k8s.io/v1beta3"
    assert isinstance(three["apiServer"]["extraArgs"], dict)
    assert isinstance(three["etcd"]["local"]["extraArgs"], dict)
    for component in MANIFESTS:
        assert extra_args(three, component) == extra_args(four, component), component
    assert three["apiServer"]["extraVolumes"] == four["apiServer"]["extraVolumes"]


def test_extra_vars_override_the_playbooks_defaults(tmp_path):
    out = generated(tmp_path, {
        "encryption_key": KEY, "apiserver_admission_plugins": ["NodeRestriction",
                                                               "AlwaysPullImages"],
        "audit_log_maxage": 90, "kubelet_pod_pids_limit": 4096, "pod_security_warn": "baseline",
        "audit_policy_path": "/etc/kubernetes/policies/audit.yaml"})
    cluster = docs(out)["ClusterConfiguration"]
    api = extra_args(cluster, "kube-apiserver")
    assert api["enable-admission-plugins"] == "NodeRestriction,AlwaysPullImages,EventRateLimit"
    assert api["audit-log-maxage"] == "90"
    assert api["audit-policy-file"] == "/etc/kubernetes/policies/audit.yaml"
    assert (out / "files/etc/kubernetes/policies/audit.yaml").is_file()
    assert not (out / "files/etc/kubernetes/audit-policy.yaml").exists()
    assert docs(out)["KubeletConfiguration"]["podPidsLimit"] == 4096
    admission = yaml.safe_load((out / "files/etc/kubernetes/admission/admission-config.yaml")
                               .read_text())
    defaults = admission["plugins"][0]["configuration"]["defaults"]
    assert defaults["warn"] == "baseline" and defaults["audit"] == "restricted"


def test_inventory_group_vars_are_read_as_apply_reads_them(tmp_path):
    inv = tmp_path / "inv"
    (inv / "group_vars").mkdir(parents=True)
    (inv / "hosts.ini").write_text("[control_plane]\ncp1\n[workers]\nw1\n")
    (inv / "group_vars" / "control_plane.yml").write_text(
        "terminated_pod_gc_threshold: 500\netcd_client_cert_auth: false\n")
    cluster = docs(generated(tmp_path, {"encryption_key": KEY},
                             inventories=[str(inv)]))["ClusterConfiguration"]
    assert extra_args(cluster, "kube-controller-manager")["terminated-pod-gc-threshold"] == "500"
    (inv / "group_vars" / "all.yml").write_text(f"encryption_key: {KEY}\n")
    out = generated(tmp_path / "keyed", {}, inventories=[str(inv)])
    assert KEY in (out / "files/etc/kubernetes/enc/encryption-config.yaml").read_text()
    assert "etcd" not in cluster or not extra_args(cluster, "etcd")   # its task's when: false


def test_host_vars_of_the_chosen_control_plane_and_workers_refused(tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text("[control_plane]\ncp1\ncp2 audit_log_maxage=45\n[workers]\nw1\n")
    out = tmp_path / "cp2"
    generate(str(out), [str(inv)], {"encryption_key": KEY}, Options(), None, "cp2")
    assert extra_args(docs(out)["ClusterConfiguration"], "kube-apiserver")["audit-log-maxage"] \
        == "45"
    with pytest.raises(InputError, match="--host w1: not in group control_plane"):
        generate(str(tmp_path / "w1"), [str(inv)], {}, Options(), None, "w1")
    assert not (tmp_path / "w1").exists()


def test_files_modes_and_the_encryption_key(tmp_path):
    out = generated(tmp_path)
    mode = lambda p: stat.S_IMODE(os.stat(out / p).st_mode)      # noqa: E731
    assert mode(".") == 0o700
    assert mode("kubeadm-config.yaml") == 0o600
    assert mode("files/etc/kubernetes/enc/encryption-config.yaml") == 0o600
    assert mode("files/etc/kubernetes/enc") == 0o700
    assert mode("files/etc/kubernetes/audit-policy.yaml") == 0o600
    assert mode("files/etc/kubernetes/admission/admission-config.yaml") == 0o600
    assert mode("files/var/log/kubernetes/audit") == 0o700
    assert mode("files/etc/sysctl.d/90-harden-kubelet.conf") == 0o644
    enc = yaml.safe_load((out / "files/etc/kubernetes/enc/encryption-config.yaml").read_text())
    providers = enc["resources"][0]["providers"]
    assert list(providers[0]) == ["secretbox"] and providers[-1] == {"identity": {}}
    secret = providers[0]["secretbox"]["keys"][0]["secret"]
    assert len(base64.b64decode(secret, validate=True)) == 32
    other = generated(tmp_path / "again")
    again = yaml.safe_load((other / "files/etc/kubernetes/enc/encryption-config.yaml")
                           .read_text())
    assert again["resources"][0]["providers"][0]["secretbox"]["keys"][0]["secret"] != secret
    sysctl = (out / "files/etc/sysctl.d/90-harden-kubelet.conf").read_text()
    assert "vm.overcommit_memory = 1" in sysctl.replace("=", " = ").replace("  ", " ")


def test_given_key_is_used_and_files_are_the_shipped_templates_rendered(tmp_path):
    out = generated(tmp_path, {"encryption_key": KEY})
    assert KEY in (out / "files/etc/kubernetes/enc/encryption-config.yaml").read_text()
    assert (out / "files/etc/kubernetes/audit-policy.yaml").read_text() == \
        render_template_file("audit-policy.yaml.j2", [SHIPPED_TEMPLATES], {})


def test_a_flag_added_to_a_playbook_reaches_the_config(tmp_path):
    """No second copy of the flag list: the playbook is the source."""
    book = tmp_path / "extra.yml"
    book.write_text("""
- hosts: control_plane
  tasks:
    - name: one more flag
      static_pod:
        manifest: /etc/kubernetes/manifests/kube-apiserver.yaml
        set:
          service-account-extend-token-expiration: false
        add_to_list:
          enable-admission-plugins: [DenyServiceExternalIPs]
""")
    cluster = docs(generated(tmp_path, {}, playbooks=[str(book)]))["ClusterConfiguration"]
    assert extra_args(cluster, "kube-apiserver") == {
        "service-account-extend-token-expiration": "false",
        "enable-admission-plugins": "NodeRestriction,DenyServiceExternalIPs"}


def test_tasks_writing_the_same_file_end_as_on_a_node(tmp_path):
    book = tmp_path / "book.yml"
    book.write_text("""
- hosts: control_plane
  tasks:
    - sysctl: {file: /etc/sysctl.d/90-x.conf, values: {vm.panic_on_oom: 0, kernel.panic: 10}}
    - sysctl: {file: /etc/sysctl.d/90-x.conf, values: {kernel.panic: 20}}
    - copy: {dest: /etc/kubernetes/x.yaml, content: "first", mode: "0644"}
    - copy: {dest: /etc/kubernetes/x.yaml, content: "second", mode: "0600"}
""")
    out = generated(tmp_path, {}, playbooks=[str(book)])
    lines = (out / "files/etc/sysctl.d/90-x.conf").read_text().splitlines()
    assert [l.replace(" ", "") for l in lines] == ["vm.panic_on_oom=0", "kernel.panic=20"]
    assert (out / "files/etc/kubernetes/x.yaml").read_text() == "second"
    assert stat.S_IMODE(os.stat(out / "files/etc/kubernetes/x.yaml").st_mode) == 0o600


def _flags(text: str) -> dict[str, str | None]:
    return Manifest(text, "manifest").flags(None)


@pytest.mark.parametrize("api", ["v1beta4", "v1beta3"])
def test_same_hardened_flags_as_applying_the_playbooks_to_a_kubeadm_node(tmp_path, api):
    """kubeadm's manifests (the fixtures) with the generated extraArgs merged as kubeadm merges
    them carry exactly the flags site.yml + encryption-at-rest.yml write into those manifests."""
    node = kubeadm_node()
    before = {c: _flags(node[f"/etc/kubernetes/manifests/{c}.yaml"].content.decode())
              for c in MANIFESTS}
    for book, extra in (("site.yml", {}), ("encryption-at-rest.yml", {"encryption_key": KEY})):
        run_playbook(REPO / "playbooks" / book, node, {}, extra)
    cluster = docs(generated(tmp_path, {"encryption_key": KEY},
                             Options(api=api)))["ClusterConfiguration"]
    for component in MANIFESTS:
        applied = _flags(node[f"/etc/kubernetes/manifests/{component}.yaml"].content.decode())
        from_kubeadm = {**before[component], **extra_args(cluster, component)}
        assert from_kubeadm == applied, component


@pytest.mark.parametrize("extra,options,message", [
    ({"encryption_key": "c2hvcnQ="}, Options(), "base64 of 32 bytes"),
    ({"pod_security_warn": "strict"}, Options(), "pod_security_warn='strict'"),
    ({"kubelet_pod_pids_limit": "lots"}, Options(), "podPidsLimit: 'lots' is not an integer"),
    ({"kubelet_streaming_idle_timeout": "forever"}, Options(), "not a duration"),
    ({}, Options(kubernetes_version="v1.30.4"), "does not read kubeadm.k8s.io/v1beta4"),
    ({}, Options(kubernetes_version="latest"), "wants a version such as"),
    ({}, Options(control_plane_endpoint="lb:99999"), "controlPlaneEndpoint"),
    ({"audit_policy_path": "audit.yaml"}, Options(), "not an absolute path"),
    ({}, Options(advertise_address="cp1.example"), "ip address is not valid"),
    ({"encryption_phase": "enable"}, Options(), "a new cluster starts with encryption on"),
    ({}, Options(node_name="CP_1"), "lower-case DNS subdomain"),
])
def test_refusals_name_the_setting_and_write_nothing(tmp_path, extra, options, message):
    with pytest.raises(InputError) as caught:
        generated(tmp_path, extra, options)
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("body,message", [
    ("""set: {enable-admission-plugins: AlwaysPullImages, disable-admission-plugins: AlwaysPullImages}""",
     "both in --enable-admission-plugins and --disable-admission-plugins"),
    ("""set: {tracing-config-file: /opt/tracing.yaml}""", None),
    ("""set: {authentication-config: /opt/authn.yaml}""", "is not inside any volume"),
    ("""volumes: [{name: Bad_Name, host_path: /opt/x, type: Directory}]""", "not a DNS label"),
    ("""volumes: [{name: k8s-certs, host_path: /opt/x, type: Directory}]""", "kubeadm's own"),
    ("""volumes: [{name: x, host_path: /opt/x, type: Sometimes}]""", "pathType 'Sometimes' is not one of"),
])
def test_refuses_what_the_component_or_kubeadm_would(tmp_path, body, message):
    book = tmp_path / "book.yml"
    book.write_text("- hosts: control_plane\n  tasks:\n    - static_pod:\n"
                    "        manifest: /etc/kubernetes/manifests/kube-apiserver.yaml\n"
                    f"        {body}\n")
    if message is None:                 # a flag that names no file harden knows: accepted
        generated(tmp_path, {}, playbooks=[str(book)])
        return
    with pytest.raises(InputError) as caught:
        generated(tmp_path, {}, playbooks=[str(book)])
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_a_task_that_would_fail_on_a_host_is_an_input_error_at_its_line(tmp_path):
    book = tmp_path / "book.yml"
    book.write_text("- hosts: control_plane\n  tasks:\n    - name: missing source\n"
                    "      copy: {src: no-such-file.yaml, dest: /etc/kubernetes/x.yaml}\n")
    with pytest.raises(InputError) as caught:
        generated(tmp_path, {}, playbooks=[str(book)])
    assert f"{book}:4" in str(caught.value) and "missing source" in str(caught.value)


def test_a_write_that_fails_leaves_no_half_directory(tmp_path):
    """A file below a path that is a file: the write fails, nothing (no key) is left."""
    book = tmp_path / "book.yml"
    book.write_text("- hosts: control_plane\n  tasks:\n"
                    "    - copy: {dest: /etc/kubernetes/x, content: 'a'}\n"
                    "    - copy: {dest: /etc/kubernetes/x/y, content: 'b'}\n")
    with pytest.raises(HardenError, match="cannot write"):
        generated(tmp_path, {}, playbooks=[str(book)])
    assert not (tmp_path / "out").exists()


def test_an_existing_directory_is_never_overwritten(tmp_path):
    out = generated(tmp_path)
    key = (out / "files/etc/kubernetes/enc/encryption-config.yaml").read_bytes()
    with pytest.raises(HardenError, match="not an empty directory"):
        generate(str(out), None, {}, Options())
    assert (out / "files/etc/kubernetes/enc/encryption-config.yaml").read_bytes() == key


def test_cli_writes_and_says_what_to_copy(tmp_path):
    out = tmp_path / "cfg"
    done = CliRunner().invoke(cli, ["kubeadm-config", str(out), "--kubeadm-api", "v1beta3",
                                    "--advertise-address", "10.0.0.5", "--node-name", "cp1"])
    assert done.exit_code == 0, done.output
    assert "SECRET: files/etc/kubernetes/enc/encryption-config.yaml" in done.output
    assert "FILL IN" not in done.output
    init = docs(out)["InitConfiguration"]
    assert init["localAPIEndpoint"]["advertiseAddress"] == "10.0.0.5"
    assert init["nodeRegistration"]["name"] == "cp1"
    again = CliRunner().invoke(cli, ["kubeadm-config", str(out)])
    assert again.exit_code == 1


def test_placeholders_are_marked_when_not_given(tmp_path):
    out = generated(tmp_path)
    text = (out / "kubeadm-config.yaml").read_text()
    init = docs(out)["InitConfiguration"]
    assert init["localAPIEndpoint"]["advertiseAddress"].startswith("FILL-IN")
    assert init["nodeRegistration"]["name"].startswith("FILL-IN")
    assert "# FILL IN in InitConfiguration" in text


def test_shipped_playbooks_static_pod_tasks_all_translate():
    """Every static_pod task of the shipped playbooks names a manifest kubeadm generates."""
    from harden.apply.kubeadm_bootstrap import DEFAULT_PLAYBOOKS, MANIFEST_COMPONENTS

    for book in DEFAULT_PLAYBOOKS:
        for play in load_playbook(book).plays:
            for task in play.tasks:
                if task.module == "static_pod":
                    assert os.path.basename(task.args["manifest"]) in MANIFEST_COMPONENTS


@pytest.mark.parametrize("api", ["v1beta4", "v1beta3"])
def test_the_labs_kubeadm_decoder_accepts_both_shapes(tmp_path, api):
    """harden.lab.kubeadm_config decodes as kubeadm does (strict shapes, string values)."""
    from harden.lab import kubeadm_config

    out = generated(tmp_path, {"encryption_key": KEY}, Options(api=api))
    kinds = docs(out)
    config = kubeadm_config.from_document(kinds["ClusterConfiguration"])
    assert config.api_version == api
    assert ("profiling", "false") in config.api_server.args
    assert {v.name for v in config.api_server.volumes} == \
        {"audit-policy", "audit-log", "admission-config", "encryption-config"}
    text = yaml.safe_dump(kinds["KubeletConfiguration"])
    assert kubeadm_config.kubelet_configuration(text)["readOnlyPort"] == 0
    wrong = dict(kinds["ClusterConfiguration"],
                 apiVersion=f"kubeadm.k8s.io/{'v1beta3' if api == 'v1beta4' else 'v1beta4'}")
    with pytest.raises(kubeadm_config.KubeadmConfigError):
        kubeadm_config.from_document(wrong)


def test_the_output_directory_is_what_lab_up_kubeadm_config_reads(tmp_path):
    """The contract's layout: `harden lab up --kubeadm-config DIR` reads every document and
    takes every file and directory (all in node-private places of a lab node)."""
    from harden.lab import cluster, kubeadm_init

    out = generated(tmp_path, {"encryption_key": KEY})
    plan = kubeadm_init.read(out, cluster.MOUNT_DIRS)
    assert set(plan.files) == {"/etc/kubernetes/audit-policy.yaml",
                               "/etc/kubernetes/admission/admission-config.yaml",
                               "/etc/kubernetes/enc/encryption-config.yaml",
                               "/etc/sysctl.d/90-harden-kubelet.conf"}
    assert plan.files["/etc/kubernetes/enc/encryption-config.yaml"][1] == 0o600
    assert plan.dirs["/var/log/kubernetes/audit"] == 0o700
    assert plan.kubelet["protectKernelDefaults"] is True
    assert plan.kubelet["staticPodPath"] == "/etc/kubernetes/manifests"    # kubeadm's default
    assert ("audit-log-maxage", "30") in plan.config.api_server.args
