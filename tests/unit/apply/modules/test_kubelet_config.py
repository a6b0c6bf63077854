"""`kubelet_config`: the running kubelet's --config file, and flags that would override it."""

from __future__ import annotations


import pytest

from harden.apply.modules.base import TaskFailed
from support.modules import file_state, kubelet_process, make_facts, plan, plan_twice
from support.paths import FIXTURES

CONFIG_TEXT = (FIXTURES / "manifests" / "kubelet-config.yaml") \
    .read_bytes()
FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
KUBEADM_FLAGS = (b'KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/'
                 b'containerd.sock --pod-infra-container-image=registry.k8s.io/pause:3.9"\n')


def kubelet_facts(config="/var/lib/kubelet/config.yaml", flags_env=KUBEADM_FLAGS,
                  extra=None, argv=None):
    states = [file_state(config, CONFIG_TEXT, 0o644), file_state(FLAGS_ENV, flags_env)]
    absent = ["/etc/sysconfig/kubelet"]
    if extra is None:
        absent.append("/etc/default/kubelet")
    else:
        states.append(file_state("/etc/default/kubelet", extra, 0o644))
    return make_facts(*states, absent=absent, kubelet=kubelet_process(config, argv))


def test_noop_when_already_hardened():
    assert plan("kubelet_config", {"set": {"authentication.anonymous.enabled": False,
                                           "authorization.mode": "Webhook",
                                           "rotateCertificates": True}},
                kubelet_facts()) == []


def test_sets_keys_in_the_file_the_running_kubelet_uses():
    facts = kubelet_facts(config="/etc/kubelet/custom.yaml")
    first, second = plan_twice("kubelet_config", {"set": {
        "readOnlyPort": 0, "streamingConnectionIdleTimeout": "5m0s",
        "protectKernelDefaults": True}}, facts)
    assert [c.path for c in first] == ["/etc/kubelet/custom.yaml"]
    changed = [l for l in first[0].diff.splitlines() if l[:1] in "+-" and l[:3] not in
               ("+++", "---")]
    assert changed == ["+protectKernelDefaults: true", "+readOnlyPort: 0",
                       "-streamingConnectionIdleTimeout: 0s",
                       "+streamingConnectionIdleTimeout: 5m0s"]
    assert second == []


def test_overriding_flags_are_removed_from_env_files():
    flags = KUBEADM_FLAGS.replace(b'"\n', b' --read-only-port=10255 --anonymous-auth=false"\n')
    extra = b"KUBELET_EXTRA_ARGS=--authorization-mode AlwaysAllow --node-ip=10.0.0.5\n"
    facts = kubelet_facts(flags_env=flags, extra=extra)
    first, second = plan_twice("kubelet_config", {"set": {
        "readOnlyPort": 0, "authentication.anonymous.enabled": False,
        "authorization.mode": "Webhook"}}, facts)
    by_path = {c.path: c for c in first}
    assert set(by_path) == {"/var/lib/kubelet/config.yaml", FLAGS_ENV, "/etc/default/kubelet"}
    env = by_path[FLAGS_ENV].after.content.decode()
    assert "--read-only-port" not in env and "--anonymous-auth=false" in env   # agrees: kept
    assert by_path["/etc/default/kubelet"].after.content == \
        b"KUBELET_EXTRA_ARGS=--node-ip=10.0.0.5\n"
    assert second == []


def test_report_instead_of_fix_when_asked():
    flags = KUBEADM_FLAGS.replace(b'"\n', b' --read-only-port=10255"\n')
    with pytest.raises(TaskFailed, match="--read-only-port, which override"):
        plan("kubelet_config", {"set": {"readOnlyPort": 0}, "fix_flags": False},
             kubelet_facts(flags_env=flags))


def test_flag_from_an_unmanaged_source_fails():
    argv = ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml", "--read-only-port=10255"]
    with pytest.raises(TaskFailed, match="set outside kubeadm-flags.env"):
        plan("kubelet_config", {"set": {"readOnlyPort": 0}}, kubelet_facts(argv=argv))


def test_wrong_kind_and_missing_config_fail():
    facts = make_facts(file_state("/var/lib/kubelet/config.yaml", b"kind: Pod\napiVersion: v1\n"),
                       absent=[FLAGS_ENV, "/etc/default/kubelet", "/etc/sysconfig/kubelet"],
                       kubelet=kubelet_process())
    with pytest.raises(TaskFailed, match="not a KubeletConfiguration"):
        plan("kubelet_config", {"set": {"readOnlyPort": 0}}, facts)
    facts = make_facts(absent=["/var/lib/kubelet/config.yaml"], kubelet=kubelet_process())
    with pytest.raises(TaskFailed, match="does not exist"):
        plan("kubelet_config", {"set": {"readOnlyPort": 0}}, facts)
