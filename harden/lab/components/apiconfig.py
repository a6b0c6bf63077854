"""Validation of the config files kube-apiserver loads at start-up, with upstream error texts.

Covers EncryptionConfiguration (apiserver/pkg/apis/apiserver/validation/validation_encryption.go),
audit Policy (apiserver/pkg/apis/audit/validation), AdmissionConfiguration with the PodSecurity and
EventRateLimit plugin configs, AuthenticationConfiguration (anonymous + jwt) and
AuthorizationConfiguration (authorizer types and names; webhooks need their settings). Each function
returns a list of error strings in field-path form; an empty list means the server would start.
"""

from __future__ import annotations

import base64
import binascii
import os
import re

import yaml

ENCRYPTION_API = {"apiserver.config.k8s.io/v1"}
PROVIDERS = ("aesgcm", "aescbc", "secretbox", "identity", "kms")
AES_SIZES = (16, 24, 32)
FORBIDDEN_RESOURCES = {"apiserveripinfo", "serviceipallocations", "servicenodeportallocations"}
AUDIT_LEVELS = ("None", "Metadata", "Request", "RequestResponse")
AUDIT_STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
ADMISSION_APIS = {"apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1alpha1",
                  "apiserver.k8s.io/v1alpha1"}
POD_SECURITY_APIS = {"pod-security.admission.config.k8s.io/v1",
                     "pod-security.admission.config.k8s.io/v1beta1",
                     "pod-security.admission.config.k8s.io/v1alpha1"}
POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")
POD_SECURITY_FIELDS = {"apiVersion", "kind", "defaults", "exemptions"}
POD_SECURITY_DEFAULTS = {"enforce", "enforce-version", "audit", "audit-version", "warn",
                         "warn-version"}
POD_SECURITY_EXEMPTIONS = {"usernames", "namespaces", "runtimeClasses"}
EVENT_RATE_LIMIT_API = "eventratelimit.admission.k8s.io/v1alpha1"
EVENT_LIMIT_TYPES = ("Server", "Namespace", "User", "SourceAndObject")
AUTHN_APIS = {"apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1beta1",
              "apiserver.config.k8s.io/v1alpha1"}
AUTHN_FIELDS = {"apiVersion", "kind", "jwt", "anonymous"}
AUTHZ_APIS = {"apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1beta1",
              "apiserver.config.k8s.io/v1alpha1"}
AUTHZ_TYPES = ("Webhook", "Node", "RBAC", "AlwaysAllow", "AlwaysDeny")


class ConfigFileError(Exception):
    """A file could not be read or decoded at all."""


def load_yaml(path: str, shown: str) -> dict:
    """YAML/JSON document at host `path` (`shown` is the path the server was given)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise ConfigFileError(f"open {shown}: {(err.strerror or str(err)).lower()}") from None
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as err:
        raise ConfigFileError(f"error converting YAML to JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ConfigFileError(f"{shown}: Object 'Kind' is missing in '{data[:60]!r}'")
    return doc


def _kind_error(doc: dict, kind: str, versions: set[str]) -> str | None:
    if doc.get("kind") != kind or doc.get("apiVersion") not in versions:
        return (f'no kind "{doc.get("kind")}" is registered for version "{doc.get("apiVersion")}"'
                if doc.get("kind") else "Object 'Kind' is missing")
    return None


def _list(value) -> list:
    return value if isinstance(value, list) else []


# -- EncryptionConfiguration ----------------------------------------------------------------

def validate_encryption(doc: dict) -> list[str]:
    kind_error = _kind_error(doc, "EncryptionConfiguration", ENCRYPTION_API)
    if kind_error:
        return [kind_error]
    entries = _list(doc.get("resources"))
    if not entries:
        return ["resources: Required value: EncryptionConfiguration.Resources must contain at "
                "least one resource"]
    errors: list[str] = []
    seen_resources: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"resources[{index}]"
        entry = entry if isinstance(entry, dict) else {}
        errors += _resource_names(_list(entry.get("resources")), where, seen_resources)
        providers = _list(entry.get("providers"))
        if not providers:
            errors.append(f"{where}.providers: Required value: at least one provider is required")
        kms_names: set[str] = set()
        for p_index, provider in enumerate(providers):
            errors += _provider(provider, f"{where}.providers[{p_index}]", kms_names)
    return errors


def _resource_names(names: list, where: str, earlier: set[str]) -> list[str]:
    """Name rules per entry; overlaps inside one list, and names masked by an earlier entry."""
    errors = []
    if not names:
        errors.append(f"{where}.resources: Required value: at least one resource is required")
    local: list[str] = []
    for index, raw in enumerate(names):
        name = str(raw)
        path = f"{where}.resources[{index}]"
        problem = _name_problem(name)
        if problem:
            errors.append(f'{path}: Invalid value: "{name}": {problem}')
        elif name in local:
            errors.append(f'{path}: Duplicate value: "{name}"')
        else:
            clash = next((o for o in local if _covers(o, name) or _covers(name, o)), None)
            if clash:
                errors.append(f'{path}: Invalid value: "{name}": resource "{name}" overlaps with '
                              f'"{clash}" in the same resource list')
            masked = next((o for o in sorted(earlier) if _covers(o, name) or o == name), None)
            if masked:
                errors.append(f'{path}: Invalid value: "{name}": resource "{name}" is masked by '
                              f'earlier rule "{masked}"')
        local.append(name)
    earlier.update(local)
    return errors


def _name_problem(name: str) -> str:
    if name != name.lower():
        return "resource name must be lowercase"
    if name == "*":
        return "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
    if name.endswith(".*") and name != "*.*":
        return "resource.* is not a valid resource"
    if name.split(".")[0] in FORBIDDEN_RESOURCES:
        return f"resource {name.split('.')[0]} cannot be encrypted"
    if _group(name) == "extensions":
        return "'extensions' group has been removed and cannot be used for encryption"
    if _group(name) == "events.k8s.io":
        return "use 'events' (the core group) instead of 'events.events.k8s.io'"
    return ""


def _group(name: str) -> str:
    return name.split(".", 1)[1] if "." in name else ""


def _covers(wildcard: str, name: str) -> bool:
    """True when the rule `wildcard` ('*.*' or '*.<group>', '*.' = core) also matches `name`."""
    if wildcard == name or not wildcard.startswith("*."):
        return False
    return wildcard == "*.*" or (not name.startswith("*.") and _group(name) == wildcard[2:])


def _provider(provider, where: str, kms_names: set[str]) -> list[str]:
    provider = provider if isinstance(provider, dict) else {}
    present = [p for p in PROVIDERS if p in provider]
    if len(present) > 1:
        return [f"{where}: Invalid value: \"{','.join(present)}\": more than one provider specified "
                f"in a single element, should split into different list elements"]
    if not present:
        return [f"{where}: Invalid value: \"\": provider does not contain any of the expected "
                f"providers: KMS, AESGCM, AESCBC, Secretbox, Identity"]
    kind = present[0]
    body = provider[kind] if isinstance(provider[kind], dict) else {}
    if kind == "identity":
        return []
    if kind == "kms":
        return _kms(body, f"{where}.kms", kms_names)
    return _keys(_list(body.get("keys")), f"{where}.{kind}.keys",
                 (32,) if kind == "secretbox" else AES_SIZES)


def _keys(keys: list, where: str, sizes: tuple[int, ...]) -> list[str]:
    if not keys:
        return [f"{where}: Required value: keys (each key has to be a non-empty string) are required"]
    errors = []
    names: set[str] = set()
    for index, key in enumerate(keys):
        key = key if isinstance(key, dict) else {}
        path = f"{where}[{index}]"
        name, secret = str(key.get("name") or ""), str(key.get("secret") or "")
        if not name:
            errors.append(f"{path}.name: Required value: key name is required")
        elif name in names:
            errors.append(f'{path}.name: Duplicate value: "{name}"')
        names.add(name)
        if not secret:
            errors.append(f"{path}.secret: Required value: secret is required")
            continue
        try:
            raw = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError):
            errors.append(f'{path}.secret: Invalid value: "REDACTED": secrets must be base64 encoded')
            continue
        if len(raw) not in sizes:
            expected = sizes[0] if len(sizes) == 1 else f"one of {list(sizes)}".replace(",", "")
            errors.append(f'{path}.secret: Invalid value: "REDACTED": secret is not of the expected '
                          f"length, got {len(raw)}, expected {expected}")
    return errors


def _kms(body: dict, where: str, names: set[str]) -> list[str]:
    errors = []
    version = str(body.get("apiVersion") or "v1")
    name = str(body.get("name") or "")
    if version not in ("v1", "v2"):
        errors.append(f'{where}.apiVersion: Invalid value: "{version}": unsupported apiVersion '
                      f"{version} for KMS provider, only v1 and v2 are supported")
    if not name:
        errors.append(f"{where}.name: Required value: name is required")
    elif ":" in name and version == "v2":
        errors.append(f'{where}.name: Invalid value: "{name}": name should not contain ":"')
    elif name in names and version == "v2":
        errors.append(f'{where}.name: Duplicate value: "{name}"')
    names.add(name)
    endpoint = str(body.get("endpoint") or "")
    if not endpoint:
        errors.append(f"{where}.endpoint: Required value: endpoint is required")
    elif not endpoint.startswith("unix://") or len(endpoint) <= len("unix://"):
        errors.append(f'{where}.endpoint: Invalid value: "{endpoint}": unsupported scheme '
                      f'"{endpoint.split("://")[0]}" for KMS provider, only unix is supported')
    if version == "v2" and body.get("cachesize") is not None:
        errors.append(f"{where}.cachesize: Invalid value: {body['cachesize']}: cachesize is not "
                      f"supported in v2")
    if version == "v1":
        errors.append(f"{where}.apiVersion: Invalid value: \"v1\": KMSv1 is deprecated and will "
                      f"only receive security updates going forward. Use KMSv2 instead. Set "
                      f"--feature-gates=KMSv1=true to use the deprecated KMSv1 feature.")
    return errors


# -- audit Policy -----------------------------------------------------------------------------

def validate_audit_policy(doc: dict, shown: str) -> list[str]:
    kind_error = _kind_error(doc, "Policy", {"audit.k8s.io/v1"})
    if kind_error:
        return [kind_error]
    errors = _stages(doc.get("omitStages"), "omitStages")
    rules = _list(doc.get("rules"))
    for index, rule in enumerate(rules):
        rule = rule if isinstance(rule, dict) else {}
        where = f"rules[{index}]"
        level = rule.get("level")
        if level not in AUDIT_LEVELS:
            errors.append(f'{where}.level: Unsupported value: "{level or ""}": supported values: '
                          + ", ".join(f'"{lvl}"' for lvl in AUDIT_LEVELS))
        urls = _list(rule.get("nonResourceURLs"))
        if urls and (rule.get("resources") or rule.get("namespaces")):
            errors.append(f"{where}.nonResourceURLs: Invalid value: {urls}: rules cannot apply to "
                          f"both regular resources and non-resource URLs")
        for u_index, url in enumerate(urls):
            url = str(url)
            if not url.startswith("/") and url != "*":
                errors.append(f'{where}.nonResourceURLs[{u_index}]: Invalid value: "{url}": '
                              f"non-resource URL rules must begin with a '/' character")
            elif "*" in url[:-1]:
                errors.append(f'{where}.nonResourceURLs[{u_index}]: Invalid value: "{url}": '
                              f"non-resource URL wildcards '*' must be the final character of the rule")
        for r_index, group in enumerate(_list(rule.get("resources"))):
            group = group if isinstance(group, dict) else {}
            if group.get("resourceNames") and not group.get("resources"):
                errors.append(f"{where}.resources[{r_index}].resourceNames: Invalid value: "
                              f"{group['resourceNames']}: using resourceNames requires at least one "
                              f"resource")
        errors += _stages(rule.get("omitStages"), f"{where}.omitStages")
    if not errors and not rules:
        errors.append(f"loaded illegal policy with 0 rules from file {shown}")
    return errors


def _stages(stages, where: str) -> list[str]:
    return [f'{where}[{i}]: Unsupported value: "{s}": supported values: '
            + ", ".join(f'"{x}"' for x in AUDIT_STAGES)
            for i, s in enumerate(_list(stages)) if s not in AUDIT_STAGES]


# -- AdmissionConfiguration -------------------------------------------------------------------

def admission_plugin_configs(doc: dict, base_dir: str, resolve) -> tuple[dict[str, dict], list[str]]:
    """({plugin: its configuration object}, errors). `resolve(path)` maps a `path:` entry,
    relative to the config file's directory, to a readable host path (or raises
    ConfigFileError when the container could not see it)."""
    kind_error = _kind_error(doc, "AdmissionConfiguration", ADMISSION_APIS)
    if kind_error:
        return {}, [kind_error]
    configs: dict[str, dict] = {}
    errors: list[str] = []
    for index, plugin in enumerate(_list(doc.get("plugins"))):
        plugin = plugin if isinstance(plugin, dict) else {}
        name = str(plugin.get("name") or "")
        if not name:
            errors.append(f"plugins[{index}].name: Required value")
            continue
        if plugin.get("configuration") is not None:
            configs[name] = plugin["configuration"]
        elif plugin.get("path"):
            path = str(plugin["path"])
            shown = path if os.path.isabs(path) else os.path.join(base_dir, path)
            try:
                configs[name] = load_yaml(resolve(shown), shown)
            except ConfigFileError as err:
                errors.append(f'couldn\'t open admission plugin configuration {shown}: {err}')
    return configs, errors


def validate_pod_security(config: dict) -> list[str]:
    """PodSecurityConfiguration (decoded strictly upstream, so unknown fields fail)."""
    kind_error = _kind_error(config, "PodSecurityConfiguration", POD_SECURITY_APIS)
    if kind_error:
        return [kind_error]
    errors = [f'strict decoding error: unknown field "{k}"' for k in config
              if k not in POD_SECURITY_FIELDS]
    defaults = config.get("defaults") or {}
    errors += [f'strict decoding error: unknown field "defaults.{k}"' for k in defaults
               if k not in POD_SECURITY_DEFAULTS]
    for mode in ("enforce", "audit", "warn"):
        level = defaults.get(mode, "privileged")
        if level not in POD_SECURITY_LEVELS:
            errors.append(f'defaults.{mode}: Invalid value: "{level}": must be one of privileged, '
                          f"baseline, restricted")
        version = str(defaults.get(f"{mode}-version", "latest"))
        if version != "latest" and not re.fullmatch(r"v1\.(0|[1-9]\d*)", version):
            errors.append(f'defaults.{mode}-version: Invalid value: "{version}": must be "latest" '
                          f'or "v1.x"')
    exemptions = config.get("exemptions") or {}
    errors += [f'strict decoding error: unknown field "exemptions.{k}"' for k in exemptions
               if k not in POD_SECURITY_EXEMPTIONS]
    for key in POD_SECURITY_EXEMPTIONS:
        values = [str(v) for v in _list(exemptions.get(key))]
        for index, value in enumerate(values):
            if not value:
                errors.append(f"exemptions.{key}[{index}]: Invalid value: \"\": must not be empty")
            elif values.index(value) != index:
                errors.append(f'exemptions.{key}[{index}]: Duplicate value: "{value}"')
    return errors


def validate_event_rate_limit(config: dict | None) -> list[str]:
    """EventRateLimit Configuration; a missing config validates as an empty one (and fails)."""
    config = config or {"apiVersion": EVENT_RATE_LIMIT_API, "kind": "Configuration"}
    kind_error = _kind_error(config, "Configuration", {EVENT_RATE_LIMIT_API})
    if kind_error:
        return [kind_error]
    limits = _list(config.get("limits"))
    if not limits:
        return ["limits: Invalid value: []eventratelimit.Limit(nil): must not be empty"]
    errors = []
    for index, limit in enumerate(limits):
        limit = limit if isinstance(limit, dict) else {}
        where = f"limits[{index}]"
        if limit.get("type") not in EVENT_LIMIT_TYPES:
            errors.append(f'{where}.type: Unsupported value: "{limit.get("type", "")}": supported '
                          f"values: " + ", ".join(f'"{t}"' for t in EVENT_LIMIT_TYPES))
        for key in ("burst", "qps"):
            value = limit.get(key, 0)
            if not isinstance(value, int) or value <= 0:
                errors.append(f"{where}.{key}: Invalid value: {value}: must be positive")
        cache = limit.get("cacheSize", 0)
        if limit.get("type") != "Server" and (not isinstance(cache, int) or cache < 0):
            errors.append(f"{where}.cacheSize: Invalid value: {cache}: must not be negative")
    return errors


# -- AuthenticationConfiguration --------------------------------------------------------------

def validate_authentication(doc: dict) -> list[str]:
    kind_error = _kind_error(doc, "AuthenticationConfiguration", AUTHN_APIS)
    if kind_error:
        return [kind_error]
    errors = [f'strict decoding error: unknown field "{k}"' for k in doc if k not in AUTHN_FIELDS]
    anonymous = doc.get("anonymous")
    if anonymous is not None:
        anonymous = anonymous if isinstance(anonymous, dict) else {}
        conditions = _list(anonymous.get("conditions"))
        if conditions and not anonymous.get("enabled"):
            errors.append("anonymous.conditions: Invalid value: ...: enabled should be set to true "
                          "when conditions are defined")
        seen: set[str] = set()
        for index, condition in enumerate(conditions):
            path = str((condition or {}).get("path") or "")
            if not path:
                errors.append(f"anonymous.conditions[{index}].path: Required value")
            elif path in seen:
                errors.append(f'anonymous.conditions[{index}].path: Duplicate value: "{path}"')
            seen.add(path)
    issuers: set[str] = set()
    for index, jwt in enumerate(_list(doc.get("jwt"))):
        errors += _jwt(jwt if isinstance(jwt, dict) else {}, f"jwt[{index}]", issuers)
    return errors


def _jwt(jwt: dict, where: str, issuers: set[str]) -> list[str]:
    errors = []
    issuer = jwt.get("issuer") or {}
    url = str(issuer.get("url") or "")
    if not url:
        errors.append(f"{where}.issuer.url: Required value: URL is required")
    elif not url.startswith("https://"):
        errors.append(f'{where}.issuer.url: Invalid value: "{url}": URL scheme must be https')
    elif url in issuers:
        errors.append(f'{where}.issuer.url: Duplicate value: "{url}"')
    issuers.add(url)
    if not _list(issuer.get("audiences")):
        errors.append(f"{where}.issuer.audiences: Required value: at least one issuer.audiences "
                      f"is required")
    username = (jwt.get("claimMappings") or {}).get("username") or {}
    if not (username.get("claim") or username.get("expression")):
        errors.append(f"{where}.claimMappings.username: Required value: claim or expression is "
                      f"required")
    return errors


def anonymous_paths(doc: dict | None) -> tuple[bool | None, set[str]]:
    """(anonymous enabled per the file or None when the file doesn't say, allowed paths or
    empty = every path)."""
    if not doc or doc.get("anonymous") is None:
        return None, set()
    anonymous = doc["anonymous"] or {}
    paths = {str(c.get("path")) for c in _list(anonymous.get("conditions")) if isinstance(c, dict)}
    return bool(anonymous.get("enabled")), paths


# -- AuthorizationConfiguration ---------------------------------------------------------------

def validate_authorization(doc: dict) -> list[str]:
    """Upstream ValidateAuthorizationConfiguration: at least one authorizer, known types, unique
    DNS-label names, a webhook block exactly for type Webhook; Node and RBAC at most once."""
    kind_error = _kind_error(doc, "AuthorizationConfiguration", AUTHZ_APIS)
    if kind_error:
        return [kind_error]
    authorizers = _list(doc.get("authorizers"))
    if not authorizers:
        return ["authorizers: Required value: at least one authorization mode must be defined"]
    errors: list[str] = []
    names: set[str] = set()
    types: set[str] = set()
    for index, entry in enumerate(authorizers):
        entry = entry if isinstance(entry, dict) else {}
        where, kind, name = f"authorizers[{index}]", str(entry.get("type") or ""), \
            str(entry.get("name") or "")
        if kind not in AUTHZ_TYPES:
            errors.append(f'{where}.type: Unsupported value: "{kind}": supported values: '
                          + ", ".join(f'"{t}"' for t in AUTHZ_TYPES))
        elif kind != "Webhook" and kind in types:
            errors.append(f'{where}.type: Duplicate value: "{kind}"')
        types.add(kind)
        if not name:
            errors.append(f"{where}.name: Required value")
        elif not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name):
            errors.append(f'{where}.name: Invalid value: "{name}": a lowercase RFC 1123 label')
        elif name in names:
            errors.append(f'{where}.name: Duplicate value: "{name}"')
        names.add(name)
        if (kind == "Webhook") != (entry.get("webhook") is not None):
            errors.append(f"{where}.webhook: " + ("Required value: required when type=Webhook"
                                                  if kind == "Webhook" else
                                                  "Invalid value: non-null: may only be "
                                                  "specified when type=Webhook"))
    return errors


def authorizer_types(doc: dict | None) -> list[str]:
    return [str((a or {}).get("type")) for a in _list((doc or {}).get("authorizers"))]
