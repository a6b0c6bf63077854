"""kube-apiserver emulator rules: option validation, files seen through mounts, auth answers."""

from __future__ import annotations

import base64
import json

import pytest

from harden.lab.components import apiserver, podenv
from harden.lab.components.common import FileView, StartupError
from harden.lab.components.flags import FlagSet
from harden.lab.components.serving import Request

BASE = ["kube-apiserver", "--etcd-servers=https://127.0.0.1:2379",
        "--service-account-issuer=https://kubernetes.default.svc",
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key"]


def parse(*extra: str):
    return FlagSet(apiserver.COMMAND, apiserver.FLAGS).parse([*BASE[1:], *extra])


def errors(*extra: str) -> list[str]:
    return apiserver.validate_options(parse(*extra))


def test_kubeadm_flag_set_is_accepted():
    kubeadm = ["--advertise-address=10.0.0.1", "--allow-privileged=true",
               "--authorization-mode=Node,RBAC", "--client-ca-file=/p/ca.crt",
               "--enable-admission-plugins=NodeRestriction", "--enable-bootstrap-token-auth=true",
               "--etcd-cafile=/p", "--etcd-certfile=/p", "--etcd-keyfile=/p",
               "--kubelet-client-certificate=/p", "--kubelet-client-key=/p",
               "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
               "--proxy-client-cert-file=/p", "--proxy-client-key-file=/p",
               "--requestheader-allowed-names=front-proxy-client",
               "--requestheader-client-ca-file=/p", "--requestheader-extra-headers-prefix=X-Remote-Extra-",
               "--requestheader-group-headers=X-Remote-Group",
               "--requestheader-username-headers=X-Remote-User", "--secure-port=6443",
               "--service-account-key-file=/p", "--service-cluster-ip-range=10.96.0.0/12",
               "--tls-cert-file=/p", "--tls-private-key-file=/p"]
    cis = ["--anonymous-auth=false", "--profiling=false", "--audit-log-path=/a",
           "--audit-log-maxage=30", "--audit-log-maxbackup=10", "--audit-log-maxsize=100",
           "--request-timeout=300s", "--service-account-lookup=true",
           "--encryption-provider-config=/e", "--kubelet-certificate-authority=/c",
           "--admission-control-config-file=/a", "--audit-policy-file=/p",
           "--tls-cipher-suites=TLS_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
           "--service-account-extend-token-expiration=false", "--tls-min-version=VersionTLS12",
           "--encryption-provider-config-automatic-reload=true"]
    assert errors(*kubeadm, *cis) == []


def test_unknown_admission_plugin():
    assert errors("--enable-admission-plugins=PodSecurityPolicy") == [
        'enable-admission-plugins plugin "PodSecurityPolicy" is unknown']
    assert "is unknown" in errors("--disable-admission-plugins=nodeRestriction")[0]


def test_admission_enable_disable_overlap():
    assert "overlapped" in errors("--enable-admission-plugins=AlwaysPullImages,EventRateLimit",
                                  "--disable-admission-plugins=EventRateLimit")[0]


@pytest.mark.parametrize("flags,message", [
    (["--authorization-mode=Node,RBAC,Magic"], "not a valid mode"),
    (["--authorization-mode=RBAC,RBAC"], "more than once"),
    (["--authorization-mode=Node,Webhook"], "Webhook's authorization config file not passed"),
    (["--authorization-mode=ABAC"], "ABAC's authorization policy file not passed"),
    (["--authorization-mode=RBAC", "--authorization-config=/a"], "can not be specified"),
    (["--secure-port=0"], "cannot be turned off"),
    (["--audit-log-maxage=-1"], "can't be a negative number"),
    (["--audit-log-format=yaml"], "invalid audit log format"),
    (["--audit-log-mode=async"], "invalid audit log mode"),
    (["--tls-min-version=TLS12"], "unknown tls version"),
    (["--tls-cipher-suites=TLS_FAKE"], "Cipher suite TLS_FAKE not supported"),
    (["--feature-gates=KMSv1=yes"], "invalid value of KMSv1=yes"),
])
def test_option_rules(flags, message):
    assert any(message in e for e in errors(*flags)), errors(*flags)


def test_required_flags():
    bare = FlagSet(apiserver.COMMAND, apiserver.FLAGS).parse([])
    problems = apiserver.validate_options(bare)
    assert "--etcd-servers must be specified" in problems
    assert "service-account-issuer is a required flag" in problems


# -- files as the container sees them ---------------------------------------------------------

def view(tmp_path, *mounts: tuple[str, str, bool]) -> FileView:
    return FileView([podenv.Mount(m, str(tmp_path) + h, ro) for m, h, ro in mounts])


def test_file_must_be_mounted_and_exist(tmp_path, monkeypatch):
    (tmp_path / "enc").mkdir()
    (tmp_path / "enc" / "e.yaml").write_text("x")
    mounted = view(tmp_path, ("/etc/kubernetes/enc", "/enc", True))
    assert mounted.require("/etc/kubernetes/enc/e.yaml") == str(tmp_path / "enc" / "e.yaml")
    with pytest.raises(StartupError, match="open /etc/kubernetes/enc/missing.yaml: no such file"):
        mounted.require("/etc/kubernetes/enc/missing.yaml")
    with pytest.raises(StartupError, match="no such file or directory"):
        view(tmp_path, ("/etc/kubernetes/pki", "/enc", True)).require("/etc/kubernetes/enc/e.yaml")


def test_longest_mount_wins_and_prefix_must_be_a_path_component(tmp_path):
    mounts = [podenv.Mount("/etc/kubernetes", "/hostA"), podenv.Mount("/etc/kubernetes/enc", "/hostB")]
    assert podenv.visible_host_path("/etc/kubernetes/enc/x", mounts) == "/hostB/x"
    assert podenv.visible_host_path("/etc/kubernetes/pki/x", mounts) == "/hostA/pki/x"
    assert podenv.visible_host_path("/etc/kubernetesX/x", mounts) is None
    assert podenv.visible_host_path("/x", None) == "/x"


def test_audit_log_needs_a_writable_mounted_directory(tmp_path):
    (tmp_path / "log").mkdir()
    ok = view(tmp_path, ("/var/log/kubernetes/audit", "/log", False))
    assert ok.open_for_append("/var/log/kubernetes/audit/audit.log")
    assert (tmp_path / "log" / "audit.log").stat().st_mode & 0o777 == 0o600
    with pytest.raises(StartupError, match="read-only file system"):
        view(tmp_path, ("/var/log/kubernetes/audit", "/log", True)).open_for_append(
            "/var/log/kubernetes/audit/audit.log")
    with pytest.raises(StartupError, match="ensureLogFile: open /var/log/other/a.log"):
        ok.open_for_append("/var/log/other/a.log")


def server_with(tmp_path, files: dict[str, str], *flags: str) -> apiserver.ApiServer:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    parsed = parse(*flags)
    return apiserver.ApiServer(parsed, view(tmp_path, ("/cfg", "", True)))


def enc_yaml(size: int) -> str:
    secret = base64.b64encode(b"k" * size).decode()
    return ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
            f"- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n"
            f"      - name: key1\n        secret: {secret}\n  - identity: {{}}\n")


def test_encryption_config_is_validated_at_start(tmp_path):
    good = server_with(tmp_path, {"e.yaml": enc_yaml(32)}, "--encryption-provider-config=/cfg/e.yaml")
    good._load_encryption()
    bad = server_with(tmp_path, {"e.yaml": enc_yaml(31)}, "--encryption-provider-config=/cfg/e.yaml")
    with pytest.raises(StartupError, match="error while parsing file: .*got 31, expected 32"):
        bad._load_encryption()


def test_audit_policy_is_validated_at_start(tmp_path):
    bad = server_with(tmp_path, {"p.yaml": "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []\n"},
                      "--audit-policy-file=/cfg/p.yaml")
    with pytest.raises(StartupError, match="0 rules"):
        bad._load_audit()


AUTHN = ("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n"
         "anonymous:\n  enabled: true\n  conditions:\n  - path: /livez\n  - path: /readyz\n")


def test_authentication_config_excludes_anonymous_auth_flag(tmp_path):
    both = server_with(tmp_path, {"a.yaml": AUTHN}, "--authentication-config=/cfg/a.yaml",
                       "--anonymous-auth=false")
    with pytest.raises(StartupError, match="--anonymous-auth flag cannot be set"):
        both._load_authentication()
    alone = server_with(tmp_path, {"a.yaml": AUTHN}, "--authentication-config=/cfg/a.yaml")
    alone._load_authentication()
    assert alone.anonymous_allowed("/livez") and not alone.anonymous_allowed("/api")


ADMISSION = ("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
             "- name: EventRateLimit\n  configuration:\n"
             "    apiVersion: eventratelimit.admission.k8s.io/v1alpha1\n    kind: Configuration\n"
             "    limits:\n    - type: Namespace\n      qps: 50\n      burst: 100\n")


def test_event_rate_limit_needs_its_configuration(tmp_path):
    without = server_with(tmp_path, {}, "--enable-admission-plugins=EventRateLimit")
    with pytest.raises(StartupError, match='"EventRateLimit": limits: .*must not be empty'):
        without._load_admission()
    server_with(tmp_path, {"adm.yaml": ADMISSION}, "--enable-admission-plugins=EventRateLimit",
                "--admission-control-config-file=/cfg/adm.yaml")._load_admission()


def test_disabled_plugin_config_is_not_validated_but_default_podsecurity_is(tmp_path):
    bad_psa = ("apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n"
               "- name: PodSecurity\n  configuration:\n"
               "    apiVersion: pod-security.admission.config.k8s.io/v1\n"
               "    kind: PodSecurityConfiguration\n    defaults: {enforce: strict}\n")
    enabled = server_with(tmp_path, {"adm.yaml": bad_psa}, "--admission-control-config-file=/cfg/adm.yaml")
    with pytest.raises(StartupError, match='"PodSecurity": defaults.enforce'):
        enabled._load_admission()
    server_with(tmp_path, {"adm.yaml": bad_psa}, "--admission-control-config-file=/cfg/adm.yaml",
                "--disable-admission-plugins=PodSecurity")._load_admission()


def test_image_policy_webhook_needs_config(tmp_path):
    with pytest.raises(StartupError, match="ImagePolicyWebhook"):
        server_with(tmp_path, {}, "--enable-admission-plugins=ImagePolicyWebhook")._load_admission()


def test_token_file_needs_three_columns(tmp_path):
    server = server_with(tmp_path, {"t.csv": "tok,alice,1\n"}, "--token-auth-file=/cfg/t.csv")
    server._load_tokens()
    assert server.tokens == {"tok": "alice"}
    with pytest.raises(StartupError, match="at least 3 columns"):
        server_with(tmp_path, {"t.csv": "tok,alice\n"}, "--token-auth-file=/cfg/t.csv")._load_tokens()


def test_tls_pair_must_match(tmp_path):
    from harden.lab.components.serving import self_signed_pem

    cert, _key = self_signed_pem("127.0.0.1")
    _cert2, key2 = self_signed_pem("127.0.0.1")
    files = {"c.crt": cert.decode(), "k.key": key2.decode()}
    server = server_with(tmp_path, files, "--tls-cert-file=/cfg/c.crt", "--tls-private-key-file=/cfg/k.key")
    with pytest.raises(StartupError, match="private key does not match public key"):
        server._check_certificates()


# -- answers ----------------------------------------------------------------------------------

def answer(server: apiserver.ApiServer, path: str, user: str | None = None) -> int:
    server.etcd_ok = (float("inf"), True)
    return server.respond(Request(path, "", user))[0]


def test_anonymous_health_by_default_and_401_when_anonymous_auth_off(tmp_path):
    default = apiserver.ApiServer(parse(), FileView(None))
    assert answer(default, "/livez") == 200 and answer(default, "/api") == 403
    off = apiserver.ApiServer(parse("--anonymous-auth=false"), FileView(None))
    assert answer(off, "/livez") == 401 and answer(off, "/readyz") == 401
    body = json.loads(off.respond(Request("/livez", "", None))[2])
    assert body["reason"] == "Unauthorized"
    assert answer(off, "/livez", user="kubernetes-admin") == 200


def test_readyz_reports_etcd_down():
    server = apiserver.ApiServer(parse(), FileView(None))
    server.etcd_ok = (float("inf"), False)
    status, _, body = server.respond(Request("/readyz", "", None))
    assert status == 500 and b"[-]etcd failed" in body
    assert server.respond(Request("/livez", "", None))[0] == 200


def test_audit_log_written_only_with_a_policy(tmp_path):
    (tmp_path / "log").mkdir()
    policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n"
    (tmp_path / "p.yaml").write_text(policy)
    mounts = view(tmp_path, ("/cfg", "", True), ("/cfg/log", "/log", False))
    server = apiserver.ApiServer(parse("--audit-policy-file=/cfg/p.yaml",
                                       "--audit-log-path=/cfg/log/audit.log"), mounts)
    server._load_audit()
    answer(server, "/livez")
    assert '"level": "Metadata"' in (tmp_path / "log/audit.log").read_text()
    no_policy = apiserver.ApiServer(parse("--audit-log-path=/cfg/log/other.log"), mounts)
    no_policy._load_audit()
    answer(no_policy, "/livez")
    assert (tmp_path / "log/other.log").read_text() == ""


AUTHZ = ("apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\n"
         "authorizers:\n- type: Node\n  name: node\n- type: RBAC\n  name: rbac\n")


def test_authorization_config_is_validated_and_excludes_the_mode_flag(tmp_path):
    server_with(tmp_path, {"z.yaml": AUTHZ}, "--authorization-config=/cfg/z.yaml")._load_authorization()
    empty = AUTHZ.split("authorizers:")[0] + "authorizers: []\n"
    with pytest.raises(StartupError, match="at least one authorization mode"):
        server_with(tmp_path, {"z.yaml": empty},
                    "--authorization-config=/cfg/z.yaml")._load_authorization()
    assert "can not be specified" in errors("--authorization-config=/cfg/z.yaml",
                                            "--authorization-mode=Node,RBAC")[0]


def test_unquoted_wildcard_in_encryption_config_stops_the_server(tmp_path):
    """`- *.apps` is a YAML alias, not a string: the real server's YAML decoder fails too."""
    unquoted = ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
                "resources:\n- resources:\n  - *.apps\n  providers:\n  - identity: {}\n")
    server = server_with(tmp_path, {"enc.yaml": unquoted}, "--encryption-provider-config=/cfg/enc.yaml")
    with pytest.raises(StartupError, match="error while parsing file"):
        server._load_encryption()
    quoted = unquoted.replace("- *.apps", '- "*.apps"')
    server_with(tmp_path, {"enc.yaml": quoted},
                "--encryption-provider-config=/cfg/enc.yaml")._load_encryption()
