"""`encryption_key`: move one key through the documented rotation of an EncryptionConfiguration.

Kubernetes' procedure has three edits, each of which must be in place on EVERY control plane
(and every API server restarted) before the next one starts, because an API server must never
meet an object written with a key it cannot read:

* `staged`:  the new key is added as the SECOND key: every server can decrypt with it, none
  encrypts with it yet;
* `primary`: the new key moves to the FIRST position: new writes use it, the old keys still
  decrypt what was written before;
* `sole`:    once every object was rewritten, the other keys of that provider are dropped.

Turning encryption on has the same shape: `encrypting` moves a provider that every server
already reads (after `[identity, secretbox]` was in place everywhere) ahead of identity.

The module edits only the key lists of entries whose first provider holds local keys
(secretbox, aescbc, aesgcm); identity opt-outs and KMS entries are left as they are. Each state
refuses to skip a step (`primary` needs the key staged, `sole` needs it primary), so running a
phase out of order fails before anything is written. The file is rewritten only when its parsed
content changes, and its content is always treated as secret: diffs are redacted and error
messages never quote the file (a YAML error message would otherwise echo a line holding a key).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json

import yaml

from harden.node import limits
from harden.apply.facts import FILE, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write

LOCAL_KEY_PROVIDERS = ("secretbox", "aescbc", "aesgcm")
KEY_BYTES = 32
STATES = ("staged", "primary", "sole", "encrypting")


class EncryptionKeyModule(Module):
    name = "encryption_key"
    args = (
        Arg("path", required=True),
        Arg("name", required=True),
        Arg("secret"),
        Arg("state", required=True, choices=STATES),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, args["path"], content=True)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        path, name, state = args["path"], args["name"], args["state"]
        secret = _checked_secret(args["secret"], state)
        existing = facts.file(path, content=True)
        if existing is None:
            raise TaskFailed(f"encryption_key: {path} does not exist on this host (enable "
                             f"encryption at rest first: playbooks/encryption-at-rest.yml)")
        before = _load(existing.content, path)
        document = copy.deepcopy(before)
        if state == "encrypting":
            _turn_on(document, name, secret, path)
        else:
            for keys in _local_key_lists(document, path):
                _move(keys, name, secret, state, path)
        if document == before:
            return []
        content = _header(existing.content) + yaml.safe_dump(document, sort_keys=False,
                                                            default_flow_style=False)
        return plan_write(path, content.encode(), existing, None, None, None, secret=True)

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        """For the rotation's gates (never a secret):

        * `fingerprint`: a digest of the configuration this host holds once the task is done
          (the planned content, or the current one when nothing changes). Every control plane
          must end a phase with the same file; comparing target digests (not current ones)
          still lets a phase that stopped half-way be run again;
        * `current_fingerprint`: the same of the file as found, which a rewrite records so
          that retiring keys can check the rewrite was done under exactly this file;
        * `key_names`: per rotated entry, the key names in order;
        * `resources`: what the rotated entries encrypt, i.e. what a rewrite must cover."""
        current = facts.file(args["path"], content=True).content
        target = changes[-1].after.content if changes else current
        document = _load(target, args["path"])
        rotated = _local_entries(document, args["path"])
        return {"fingerprint": config_fingerprint(document),
                "current_fingerprint": config_fingerprint(_load(current, args["path"])),
                "key_names": [[key.get("name") for key in keys] for _, keys in rotated],
                "resources": [r for entry, _ in rotated for r in entry.get("resources") or []]}


def config_fingerprint(document: dict) -> str:
    """sha256 of a parsed EncryptionConfiguration, independent of YAML layout."""
    return hashlib.sha256(json.dumps(document, sort_keys=True,
                                     separators=(",", ":")).encode()).hexdigest()


def _checked_secret(secret, state: str) -> str | None:
    """The key must be standard base64 of 32 bytes: the length every local provider accepts
    and the only one secretbox does. Never quote the value in a message."""
    if secret is None or secret == "":
        if state != "sole":
            raise TaskFailed(f"encryption_key: state {state} needs 'secret' (base64 of "
                             f"{KEY_BYTES} random bytes: head -c 32 /dev/urandom | base64)")
        return None
    try:
        raw = base64.b64decode(str(secret), validate=True)
    except (binascii.Error, ValueError):
        raise TaskFailed("encryption_key: 'secret' is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise TaskFailed(f"encryption_key: 'secret' decodes to {len(raw)} bytes, "
                         f"{KEY_BYTES} are needed")
    return str(secret)


def _load(content: bytes, path: str) -> dict:
    try:
        document = limits.safe_load(content, path)
    except limits.NodeDataError as exc:
        raise TaskFailed(f"encryption_key: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TaskFailed(f"encryption_key: {path} is not valid YAML{where}") from None
    if not isinstance(document, dict) or document.get("kind") != "EncryptionConfiguration":
        raise TaskFailed(f"encryption_key: {path} is not an EncryptionConfiguration")
    return document


def _local_key_lists(document: dict, path: str) -> list[list]:
    """The `keys` list of every resources entry whose first (writing) provider is local."""
    return [keys for _, keys in _local_entries(document, path)]


def _local_entries(document: dict, path: str) -> list[tuple[dict, list]]:
    """(entry, its keys list) for every resources entry whose first provider is local."""
    out = []
    for entry in document.get("resources") or []:
        providers = entry.get("providers") if isinstance(entry, dict) else None
        if not providers or not isinstance(providers[0], dict) or len(providers[0]) != 1:
            continue
        (kind, config), = providers[0].items()
        if kind in LOCAL_KEY_PROVIDERS:
            keys = (config or {}).get("keys")
            if not isinstance(keys, list) or not keys:
                raise TaskFailed(f"encryption_key: {path}: a {kind} provider without keys")
            out.append((entry, keys))
    if not out:
        raise TaskFailed(f"encryption_key: {path} has no entry whose first provider is "
                         f"{', '.join(LOCAL_KEY_PROVIDERS)}: nothing to rotate (finish "
                         f"turning encryption on first: encryption-at-rest.yml, phase enable)")
    return out


def _turn_on(document: dict, name: str, secret: str | None, path: str) -> None:
    """`encrypting`: an entry prepared as `[identity, <provider holding the key>]` (every
    server can read the key, none writes with it) gets that provider moved first. Keys are
    never reordered, so running it again after a rotation changes nothing; an entry whose
    first provider already encrypts is left as it is, and only identity is ever overtaken (a
    KMS entry is never switched to a local key)."""
    for entry in document.get("resources") or []:
        providers = entry.get("providers") if isinstance(entry, dict) else None
        if not providers or not isinstance(providers[0], dict) or \
                list(providers[0]) != ["identity"]:
            continue
        local = [i for i in range(1, len(providers)) if _key_names(providers[i])]
        if not local:
            continue                          # an identity-only opt-out
        holding = [i for i in local if name in _key_names(providers[i])]
        if not holding:
            raise TaskFailed(f"encryption_key: {path}: an entry prepared for encryption holds "
                             f"other keys than '{name}'")
        providers.insert(0, providers.pop(holding[0]))
    _check_same_secret(document, name, secret, path)
    _local_entries(document, path)            # fails when nothing encrypts afterwards


def _check_same_secret(document: dict, name: str, secret: str | None, path: str) -> None:
    """A key given under a name the file uses for another secret is a mistake (a wrong key
    file), even where nothing is left to do."""
    for entry in document.get("resources") or []:
        for provider in (entry.get("providers") or []) if isinstance(entry, dict) else []:
            if name not in _key_names(provider):
                continue
            (config,) = provider.values()
            if any(isinstance(k, dict) and k.get("name") == name and k.get("secret") != secret
                   for k in config["keys"]):
                raise TaskFailed(f"encryption_key: {path} already has a key named '{name}' "
                                 f"with a different secret")


def _key_names(provider) -> list:
    """The key names of a local-key provider item, [] for anything else."""
    if not isinstance(provider, dict) or len(provider) != 1:
        return []
    (kind, config), = provider.items()
    keys = (config or {}).get("keys") if kind in LOCAL_KEY_PROVIDERS else None
    return [k.get("name") for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []


def _move(keys: list, name: str, secret: str | None, state: str, path: str) -> None:
    """Edit one key list in place to reach `state`, refusing to skip a step."""
    index = next((i for i, key in enumerate(keys) if isinstance(key, dict)
                  and key.get("name") == name), None)
    if index is not None and secret is not None and keys[index].get("secret") != secret:
        raise TaskFailed(f"encryption_key: {path} already has a key named '{name}' with a "
                         f"different secret; choose another name")
    if state == "staged":
        if index is None:
            keys.insert(1, {"name": name, "secret": secret})
    elif state == "primary":
        if index is None:
            raise TaskFailed(f"encryption_key: key '{name}' is not in {path}: stage it on "
                             f"every control plane first")
        keys.insert(0, keys.pop(index))
    elif index != 0:
        raise TaskFailed(f"encryption_key: key '{name}' is not the first key in {path}: "
                         f"promote it (and rewrite every object) before retiring the others")
    else:
        del keys[1:]


def _header(content: bytes) -> str:
    """The file's leading comment lines, kept so a reader still sees who manages it."""
    lines = []
    for line in content.decode(errors="replace").splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


MODULE = EncryptionKeyModule()
