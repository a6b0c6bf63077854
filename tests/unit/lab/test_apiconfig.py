"""Config-file rules of the emulated kube-apiserver: each test breaks one upstream rule."""

from __future__ import annotations

import base64

import pytest

from harden.lab.components import apiconfig


def key(size: int, name: str = "k1") -> dict:
    return {"name": name, "secret": base64.b64encode(b"x" * size).decode()}


def enc(*entries: dict) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
            "resources": list(entries)}


def entry(resources, *providers) -> dict:
    return {"resources": resources, "providers": list(providers)}


GOOD_SECRETBOX = {"secretbox": {"keys": [key(32)]}}


def test_valid_encryption_config_passes():
    doc = enc(entry(["events"], {"identity": {}}),
              entry(["*.*"], GOOD_SECRETBOX, {"aescbc": {"keys": [key(16), key(24, "k2")]}},
                    {"identity": {}}))
    assert apiconfig.validate_encryption(doc) == []


def test_encryption_kind_must_match():
    doc = enc(entry(["secrets"], GOOD_SECRETBOX))
    doc["kind"] = "EncryptionConfig"
    assert "no kind" in apiconfig.validate_encryption(doc)[0]


def test_encryption_needs_resources():
    assert "at least one resource" in apiconfig.validate_encryption(enc())[0]


def test_one_provider_per_element():
    doc = enc(entry(["secrets"], {"secretbox": {"keys": [key(32)]}, "identity": {}}))
    assert "more than one provider specified in a single element" in apiconfig.validate_encryption(doc)[0]


def test_element_without_known_provider():
    doc = enc(entry(["secrets"], {"aes": {"keys": [key(32)]}}))
    assert "does not contain any of the expected providers" in apiconfig.validate_encryption(doc)[0]


def test_entry_needs_providers():
    assert "provider is required" in apiconfig.validate_encryption(enc(entry(["secrets"])))[0]


@pytest.mark.parametrize("provider,size,ok", [
    ("secretbox", 32, True), ("secretbox", 31, False), ("secretbox", 16, False),
    ("aescbc", 16, True), ("aescbc", 24, True), ("aescbc", 32, True), ("aescbc", 20, False),
    ("aesgcm", 31, False), ("aesgcm", 32, True)])
def test_key_lengths(provider, size, ok):
    errors = apiconfig.validate_encryption(enc(entry(["secrets"], {provider: {"keys": [key(size)]}})))
    assert (errors == []) is ok
    if not ok:
        assert f"secret is not of the expected length, got {size}" in errors[0]
        assert "REDACTED" in errors[0] and base64.b64encode(b"x" * size).decode() not in errors[0]


def test_key_secret_must_be_base64():
    doc = enc(entry(["secrets"], {"secretbox": {"keys": [{"name": "k", "secret": "not base64!"}]}}))
    assert "secrets must be base64 encoded" in apiconfig.validate_encryption(doc)[0]


def test_key_needs_name_and_unique_names():
    nameless = enc(entry(["secrets"], {"secretbox": {"keys": [{"secret": key(32)["secret"]}]}}))
    assert "key name is required" in apiconfig.validate_encryption(nameless)[0]
    twice = enc(entry(["secrets"], {"secretbox": {"keys": [key(32), key(32)]}}))
    assert "Duplicate value" in apiconfig.validate_encryption(twice)[0]


def test_provider_needs_keys():
    doc = enc(entry(["secrets"], {"secretbox": {"keys": []}}))
    assert "keys" in apiconfig.validate_encryption(doc)[0]


@pytest.mark.parametrize("name,message", [
    ("Secrets", "lowercase"), ("*", "use '*.'"), ("deployments.*", "resource.* is not valid"),
    ("serviceipallocations", "cannot be encrypted"), ("ingresses.extensions", "'extensions'"),
    ("events.events.k8s.io", "use 'events'")])
def test_resource_name_rules(name, message):
    errors = apiconfig.validate_encryption(enc(entry([name], GOOD_SECRETBOX)))
    assert errors and message.replace(" is not valid", "") in errors[0]


def test_duplicate_and_overlapping_resources_in_one_list():
    assert "Duplicate value" in apiconfig.validate_encryption(
        enc(entry(["secrets", "secrets"], GOOD_SECRETBOX)))[0]
    assert "overlaps" in apiconfig.validate_encryption(
        enc(entry(["secrets", "*."], GOOD_SECRETBOX)))[0]
    assert "overlaps" in apiconfig.validate_encryption(
        enc(entry(["*.apps", "deployments.apps"], GOOD_SECRETBOX)))[0]


def test_earlier_wildcard_masks_later_resource_but_not_the_reverse():
    masked = enc(entry(["*.*"], GOOD_SECRETBOX), entry(["secrets"], GOOD_SECRETBOX))
    assert "masked by earlier rule" in apiconfig.validate_encryption(masked)[0]
    opt_out_first = enc(entry(["events"], {"identity": {}}), entry(["*.*"], GOOD_SECRETBOX))
    assert apiconfig.validate_encryption(opt_out_first) == []


def kms(**body) -> dict:
    return enc(entry(["secrets"], {"kms": {"apiVersion": "v2", "name": "p",
                                           "endpoint": "unix:///run/kms.sock", **body}}))


def test_kms_v2_rules():
    assert apiconfig.validate_encryption(kms()) == []
    assert "only unix is supported" in apiconfig.validate_encryption(kms(endpoint="tcp://x:1"))[0]
    assert "cachesize is not supported in v2" in apiconfig.validate_encryption(kms(cachesize=10))[0]
    assert 'should not contain ":"' in apiconfig.validate_encryption(kms(name="a:b"))[0]
    assert "KMSv1 is deprecated" in apiconfig.validate_encryption(kms(apiVersion="v1"))[0]
    assert "endpoint is required" in apiconfig.validate_encryption(kms(endpoint=""))[0]


def policy(*rules, **extra) -> dict:
    return {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **extra}


def test_audit_policy_valid_and_empty():
    assert apiconfig.validate_audit_policy(policy({"level": "Metadata"}), "/p") == []
    assert "0 rules" in apiconfig.validate_audit_policy(policy(), "/p")[0]


@pytest.mark.parametrize("rule,message", [
    ({"level": "Everything"}, "level: Unsupported value"),
    ({"level": "None", "omitStages": ["Sent"]}, "omitStages[0]: Unsupported value"),
    ({"level": "None", "nonResourceURLs": ["/x"], "resources": [{"group": ""}]},
     "cannot apply to both"),
    ({"level": "None", "nonResourceURLs": ["healthz"]}, "must begin with a '/'"),
    ({"level": "None", "nonResourceURLs": ["/a*b"]}, "must be the final character"),
    ({"level": "None", "resources": [{"group": "", "resourceNames": ["x"]}]},
     "requires at least one resource")])
def test_audit_rule_rules(rule, message):
    assert message in apiconfig.validate_audit_policy(policy(rule), "/p")[0]


def test_audit_policy_kind_and_top_level_stages():
    assert "no kind" in apiconfig.validate_audit_policy(
        {"apiVersion": "audit.k8s.io/v1beta1", "kind": "Policy", "rules": [{"level": "None"}]}, "/p")[0]
    assert "omitStages[0]" in apiconfig.validate_audit_policy(
        policy({"level": "None"}, omitStages=["Nope"]), "/p")[0]


def psa(**config) -> dict:
    return {"apiVersion": "pod-security.admission.config.k8s.io/v1",
            "kind": "PodSecurityConfiguration", **config}


def test_pod_security_rules():
    assert apiconfig.validate_pod_security(psa(defaults={"enforce": "restricted",
                                                         "enforce-version": "v1.30"})) == []
    assert "must be one of privileged" in apiconfig.validate_pod_security(
        psa(defaults={"enforce": "strict"}))[0]
    assert 'must be "latest"' in apiconfig.validate_pod_security(
        psa(defaults={"warn-version": "1.30"}))[0]
    assert 'unknown field "defaults.enforced"' in apiconfig.validate_pod_security(
        psa(defaults={"enforced": "restricted"}))[0]
    assert 'unknown field "exemption"' in apiconfig.validate_pod_security(psa(exemption={}))[0]
    assert "Duplicate value" in apiconfig.validate_pod_security(
        psa(exemptions={"namespaces": ["a", "a"]}))[0]


def erl(*limits) -> dict:
    return {"apiVersion": "eventratelimit.admission.k8s.io/v1alpha1", "kind": "Configuration",
            "limits": list(limits)}


def test_event_rate_limit_rules():
    good = {"type": "Namespace", "qps": 50, "burst": 100, "cacheSize": 2000}
    assert apiconfig.validate_event_rate_limit(erl(good)) == []
    assert "must not be empty" in apiconfig.validate_event_rate_limit(None)[0]
    assert "must not be empty" in apiconfig.validate_event_rate_limit(erl())[0]
    assert "type: Unsupported value" in apiconfig.validate_event_rate_limit(erl({**good, "type": "Pod"}))[0]
    assert "qps: Invalid value: 0: must be positive" in apiconfig.validate_event_rate_limit(
        erl({**good, "qps": 0}))[0]
    assert "burst" in apiconfig.validate_event_rate_limit(erl({**good, "burst": -1}))[0]
    assert "cacheSize" in apiconfig.validate_event_rate_limit(erl({**good, "cacheSize": -1}))[0]
    assert apiconfig.validate_event_rate_limit(erl({"type": "Server", "qps": 1, "burst": 1,
                                                    "cacheSize": -1})) == []


def test_admission_configuration_plugins_and_paths(tmp_path):
    (tmp_path / "erl.yaml").write_text("apiVersion: eventratelimit.admission.k8s.io/v1alpha1\n"
                                       "kind: Configuration\nlimits: []\n")
    doc = {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AdmissionConfiguration",
           "plugins": [{"name": "PodSecurity", "configuration": psa()},
                       {"name": "EventRateLimit", "path": "erl.yaml"}]}
    configs, errors = apiconfig.admission_plugin_configs(doc, str(tmp_path), lambda p: p)
    assert errors == [] and set(configs) == {"PodSecurity", "EventRateLimit"}
    assert configs["EventRateLimit"]["limits"] == []
    doc["plugins"][1]["path"] = "missing.yaml"
    assert "couldn't open" in apiconfig.admission_plugin_configs(doc, str(tmp_path), lambda p: p)[1][0]
    doc["kind"] = "AdmissionConfig"
    assert "no kind" in apiconfig.admission_plugin_configs(doc, str(tmp_path), lambda p: p)[1][0]


def authn(**config) -> dict:
    return {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AuthenticationConfiguration",
            **config}


def test_authentication_configuration_rules():
    anonymous = {"enabled": True, "conditions": [{"path": "/livez"}, {"path": "/readyz"}]}
    assert apiconfig.validate_authentication(authn(anonymous=anonymous)) == []
    assert "enabled should be set to true" in apiconfig.validate_authentication(
        authn(anonymous={"enabled": False, "conditions": [{"path": "/livez"}]}))[0]
    assert "Duplicate value" in apiconfig.validate_authentication(
        authn(anonymous={"enabled": True, "conditions": [{"path": "/a"}, {"path": "/a"}]}))[0]
    assert 'unknown field "anonymus"' in apiconfig.validate_authentication(authn(anonymus={}))[0]
    assert "no kind" in apiconfig.validate_authentication(
        {"apiVersion": "v1", "kind": "AuthenticationConfiguration"})[0]


def test_jwt_authenticator_rules():
    good = {"issuer": {"url": "https://issuer", "audiences": ["a"]},
            "claimMappings": {"username": {"claim": "sub"}}}
    assert apiconfig.validate_authentication(authn(jwt=[good])) == []
    http = {**good, "issuer": {"url": "http://issuer", "audiences": ["a"]}}
    assert "must be https" in apiconfig.validate_authentication(authn(jwt=[http]))[0]
    assert "Duplicate value" in apiconfig.validate_authentication(authn(jwt=[good, good]))[0]
    no_aud = {**good, "issuer": {"url": "https://i"}}
    assert "audiences" in apiconfig.validate_authentication(authn(jwt=[no_aud]))[0]
    assert "claim or expression" in apiconfig.validate_authentication(
        authn(jwt=[{**good, "claimMappings": {}}]))[0]


def test_anonymous_paths():
    assert apiconfig.anonymous_paths(None) == (None, set())
    assert apiconfig.anonymous_paths(authn()) == (None, set())
    doc = authn(anonymous={"enabled": True, "conditions": [{"path": "/livez"}]})
    assert apiconfig.anonymous_paths(doc) == (True, {"/livez"})
