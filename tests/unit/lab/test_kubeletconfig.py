"""KubeletConfiguration rules of the lab kubelet (decode, validate, kernel tunables, flags)."""

from __future__ import annotations

import pytest

from harden.lab import kubelet
from harden.lab.components import kubeletconfig, podenv

HEAD = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
TUNABLES = ("vm.overcommit_memory = 1\nvm.panic_on_oom = 0\nkernel.panic = 10\n"
            "kernel.panic_on_oops = 1\nkernel.keys.root_maxkeys = 1000000\n"
            "kernel.keys.root_maxbytes = 25000000\n")


@pytest.fixture
def node_root(tmp_path, monkeypatch):
    monkeypatch.setenv(podenv.ROOT_ENV, str(tmp_path))
    (tmp_path / "var/lib/kubelet").mkdir(parents=True)
    (tmp_path / "etc/sysctl.d").mkdir(parents=True)
    return tmp_path


def write_config(root, body: str) -> None:
    (root / "var/lib/kubelet/config.yaml").write_text(HEAD + body)


def test_kubeadm_style_config_loads(node_root):
    write_config(node_root, "staticPodPath: /etc/kubernetes/manifests\nfileCheckFrequency: 0s\n"
                 "authentication:\n  x509:\n    clientCAFile: /etc/kubernetes/pki/ca.crt\n"
                 "  webhook: {enabled: true, cacheTTL: 0s}\n  anonymous: {enabled: false}\n"
                 "logging: {flushFrequency: 0, verbosity: 0}\nmemorySwap: {}\n")
    config = kubeletconfig.load_config("/var/lib/kubelet/config.yaml")
    assert config["staticPodPath"] == "/etc/kubernetes/manifests" and config["healthzPort"] == 10248


@pytest.mark.parametrize("body,message", [
    ("protectKernelDefault: true\n", 'unknown field "protectKernelDefault"'),
    ("authentication:\n  anonymous:\n    enable: false\n", 'unknown field "authentication.anonymous.enable"'),
    ("readOnlyPort: '0'\n", "cannot unmarshal string into Go struct field KubeletConfiguration.readOnlyPort"),
    ("protectKernelDefaults: 'true'\n", "of type bool"),
    ("streamingConnectionIdleTimeout: 5 minutes\n", "streamingConnectionIdleTimeout of type v1.Duration"),
    ("tlsCipherSuites: TLS_A\n", "of type []string"),
])
def test_strict_decoding(node_root, body, message):
    write_config(node_root, body)
    with pytest.raises(kubeletconfig.KubeletConfigError, match="failed to load kubelet config file"):
        kubeletconfig.load_config("/var/lib/kubelet/config.yaml")
    assert message in "; ".join(kubeletconfig.check_types(__import__("yaml").safe_load(body)))


def test_kind_and_missing_file(node_root):
    (node_root / "var/lib/kubelet/config.yaml").write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(kubeletconfig.KubeletConfigError, match='no kind "Config"'):
        kubeletconfig.load_config("/var/lib/kubelet/config.yaml")
    with pytest.raises(kubeletconfig.KubeletConfigError, match="no such file"):
        kubeletconfig.load_config("/var/lib/kubelet/nope.yaml")


@pytest.mark.parametrize("config,message", [
    ({"healthzPort": 70000}, "healthzPort (70000) must be between 0 and 65535"),
    ({"port": 0}, "port (0) must be between 1"),
    ({"authorization": {"mode": "RBAC"}}, "authorization.mode: Unsupported value"),
    ({"eventRecordQPS": -1}, "eventRecordQPS"),
    ({"podPidsLimit": -5}, "podPidsLimit"),
    ({"featureGates": {"RotateKubeletServerCertificate": "yes"}}, "must be a bool"),
    ({"tlsCipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_AES"]},
     "Cipher suite TLS_RSA_AES not supported"),
    ({"tlsMinVersion": "TLS1.2"}, "unknown tls version"),
])
def test_semantic_validation(config, message):
    assert message in kubeletconfig.validate({**kubeletconfig.DEFAULTS, **config})[0]


def write_live(root, text: str) -> None:
    """`key = value` lines as the node's live /proc/sys values (under the test's root prefix)."""
    for line in text.splitlines():
        key, value = (part.strip() for part in line.split("="))
        path = root / "proc/sys" / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")


def test_protect_kernel_defaults_needs_the_six_live_tunables(node_root):
    write_config(node_root, "protectKernelDefaults: true\n")
    (node_root / "etc/sysctl.d/90-kubelet.conf").write_text(TUNABLES)  # persisted only
    write_live(node_root, TUNABLES.replace("kernel.panic = 10", "kernel.panic = 0"))
    with pytest.raises(kubelet.KubeletError, match="invalid kernel flag: kernel/panic, expected value: 10"):
        kubelet.build_config(["--config=/var/lib/kubelet/config.yaml"])
    write_live(node_root, "kernel.panic = 10\n")
    config, _ = kubelet.build_config(["--config=/var/lib/kubelet/config.yaml"])
    assert config["protectKernelDefaults"] is True


def test_flags_override_config_and_unknown_flags_fail(node_root):
    write_config(node_root, "healthzPort: 10248\n")
    config, flags = kubelet.build_config(["--config=/var/lib/kubelet/config.yaml",
                                          "--healthz-port=0", "--node-ip=10.0.0.1"])
    assert config["healthzPort"] == 0 and flags["node-ip"] == "10.0.0.1"
    with pytest.raises(kubelet.KubeletError, match="unknown flag: --cloud-providers"):
        kubelet.build_config(["--cloud-providers=x"])
    with pytest.raises(kubelet.KubeletError, match="protect-kernel-defaults"):
        kubelet.build_config(["--protect-kernel-defaults=maybe"])


def test_config_dir_dropins_merge_in_name_order(node_root):
    write_config(node_root, "healthzPort: 10248\n")
    dropins = node_root / "etc/kubernetes/kubelet.conf.d"
    dropins.mkdir(parents=True)
    (dropins / "20-b.conf").write_text(HEAD + "healthzPort: 2\n")
    (dropins / "10-a.conf").write_text(HEAD + "healthzPort: 1\nreadOnlyPort: 0\n")
    (dropins / "30-c.yaml").write_text(HEAD + "healthzPort: 3\n")
    config, _ = kubelet.build_config(["--config=/var/lib/kubelet/config.yaml",
                                      "--config-dir=/etc/kubernetes/kubelet.conf.d"])
    assert config["healthzPort"] == 2
    (dropins / "40-bad.conf").write_text(HEAD + "healthzPorts: 2\n")
    with pytest.raises(kubelet.KubeletError, match="unknown field"):
        kubelet.build_config(["--config=/var/lib/kubelet/config.yaml",
                              "--config-dir=/etc/kubernetes/kubelet.conf.d"])
