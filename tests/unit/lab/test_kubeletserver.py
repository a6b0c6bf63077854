"""The lab kubelet's API ports: anonymous auth, authorization mode, read-only port, certs."""

from __future__ import annotations

import pytest

from harden.lab import kubelet
from harden.lab.components import kubeletserver, podenv
from harden.lab.components.serving import Request


def answer(config: dict, path: str = "/pods", user: str | None = None) -> int:
    server = kubeletserver.KubeletServer(config, lambda: ["kube-apiserver"])
    return server.respond(Request(path, "", user))[0]


def test_anonymous_requests_are_401_when_anonymous_auth_is_off():
    assert answer({"authentication": {"anonymous": {"enabled": False}}}) == 401
    assert answer({}) == 401  # v1beta1 default: anonymous off
    assert answer({}, user="kube-apiserver-kubelet-client") == 200


def test_anonymous_on_is_forbidden_by_webhook_but_allowed_by_always_allow():
    anonymous = {"authentication": {"anonymous": {"enabled": True}}}
    assert answer({**anonymous, "authorization": {"mode": "Webhook"}}) == 403
    assert answer({**anonymous, "authorization": {"mode": "AlwaysAllow"}}) == 200
    assert answer({**anonymous, "authorization": {"mode": "AlwaysAllow"}}, "/nope") == 404


def test_read_only_port_needs_no_auth_and_configz_shows_the_config():
    server = kubeletserver.KubeletServer({"readOnlyPort": 10255}, lambda: ["etcd"])
    status, _, body = server.read_only(Request("/pods", "", None))
    assert status == 200 and b'"etcd"' in body
    assert b'"readOnlyPort": 10255' in server.read_only(Request("/configz", "", None))[2]


def test_serving_cert_choice(tmp_path, monkeypatch):
    monkeypatch.setenv(podenv.ROOT_ENV, str(tmp_path))
    pki = tmp_path / "var/lib/kubelet/pki"
    pki.mkdir(parents=True)
    assert kubeletserver.serving_pair({}, "/var/lib/kubelet/pki") == ("", "")  # self-signed
    (pki / "kubelet.crt").write_text("c")
    (pki / "kubelet.key").write_text("k")
    assert kubeletserver.serving_pair({}, "/var/lib/kubelet/pki")[0].endswith("kubelet.crt")
    assert kubeletserver.serving_pair({"serverTLSBootstrap": True}, "/var/lib/kubelet/pki") is None
    explicit = {"tlsCertFile": "/c.crt", "tlsPrivateKeyFile": "/c.key"}
    assert kubeletserver.serving_pair(explicit, "/x") == (f"{tmp_path}/c.crt", f"{tmp_path}/c.key")


def test_kubelet_flags_override_nested_auth_fields(tmp_path, monkeypatch):
    monkeypatch.setenv(podenv.ROOT_ENV, str(tmp_path))
    (tmp_path / "c.yaml").write_text("apiVersion: kubelet.config.k8s.io/v1beta1\n"
                                     "kind: KubeletConfiguration\n"
                                     "authentication:\n  anonymous:\n    enabled: false\n")
    config, _ = kubelet.build_config(["--config=/c.yaml", "--anonymous-auth=true",
                                      "--authorization-mode=AlwaysAllow", "--read-only-port=10255"])
    assert config["authentication"]["anonymous"]["enabled"] is True
    assert config["authorization"]["mode"] == "AlwaysAllow" and config["readOnlyPort"] == 10255
    assert kubelet.kubeletconfig.DEFAULTS["authorization"] == {"mode": "Webhook"}  # not mutated
    with pytest.raises(kubelet.KubeletError, match="authorization.mode"):
        kubelet.build_config(["--config=/c.yaml", "--authorization-mode=RBAC"])
