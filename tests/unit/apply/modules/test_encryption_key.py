"""`encryption_key`: the three rotation edits, each refusing to skip a step (facts in → changes out)."""

from __future__ import annotations

import base64

import pytest
import yaml

from harden.apply.modules import get_module
from harden.apply.modules.base import REDACTED, TaskFailed
from support.modules import file_state, make_facts, plan, plan_twice

ENC = "/etc/kubernetes/enc/encryption-config.yaml"
OLD = base64.b64encode(bytes(range(32))).decode()
NEW = base64.b64encode(bytes(range(32, 64))).decode()
OTHER = base64.b64encode(bytes(range(64, 96))).decode()


def config(*keys: tuple[str, str], header: str = "# Managed by harden\n",
           extra_entries: str = "") -> bytes:
    lines = "".join(f"            - name: {n}\n              secret: {s}\n" for n, s in keys)
    return (f"{header}apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
            f"resources:\n{extra_entries}  - resources:\n      - secrets\n    providers:\n"
            f"      - secretbox:\n          keys:\n{lines}      - identity: {{}}\n").encode()


def key_names(content: bytes) -> list[list[str]]:
    doc = yaml.safe_load(content)
    out = []
    for entry in doc["resources"]:
        (kind, conf), = entry["providers"][0].items()
        if kind == "secretbox":
            out.append([k["name"] for k in conf["keys"]])
    return out


def args(state: str, secret: str | None = NEW, name: str = "key2") -> dict:
    return {"path": ENC, "name": name, "secret": secret, "state": state}


def test_stage_adds_the_key_second_then_is_noop():
    facts = make_facts(file_state(ENC, config(("key1", OLD))))
    first, second = plan_twice("encryption_key", args("staged"), facts)
    assert len(first) == 1 and second == []
    content = first[0].after.content
    assert key_names(content) == [["key1", "key2"]]
    assert content.startswith(b"# Managed by harden\n")          # header kept
    assert yaml.safe_load(content)["resources"][0]["providers"][1] == {"identity": {}}
    assert first[0].after.mode == 0o600 and first[0].after.owner == "root"


def test_every_output_but_the_script_is_redacted():
    facts = make_facts(file_state(ENC, config(("key1", OLD))))
    change, = plan("encryption_key", args("staged"), facts)
    for text in (change.diff, change.summary):
        assert NEW not in text and OLD not in text
    assert REDACTED in change.diff


def test_stage_is_noop_once_the_key_is_staged_or_primary():
    for keys in ((("key1", OLD), ("key2", NEW)), (("key2", NEW), ("key1", OLD))):
        assert plan("encryption_key", args("staged"),
                    make_facts(file_state(ENC, config(*keys)))) == []


def test_promote_moves_the_staged_key_first_then_is_noop():
    facts = make_facts(file_state(ENC, config(("key1", OLD), ("key2", NEW))))
    first, second = plan_twice("encryption_key", args("primary"), facts)
    assert key_names(first[0].after.content) == [["key2", "key1"]] and second == []


def test_promote_refuses_a_key_that_was_never_staged():
    facts = make_facts(file_state(ENC, config(("key1", OLD))))
    with pytest.raises(TaskFailed, match="not in .*stage it on every control plane first"):
        plan("encryption_key", args("primary"), facts)


def test_retire_drops_the_other_keys_then_is_noop():
    facts = make_facts(file_state(ENC, config(("key2", NEW), ("key1", OLD), ("key0", OTHER))))
    first, second = plan_twice("encryption_key", args("sole", secret=None), facts)
    assert key_names(first[0].after.content) == [["key2"]] and second == []


def test_retire_refuses_before_the_key_is_primary():
    facts = make_facts(file_state(ENC, config(("key1", OLD), ("key2", NEW))))
    with pytest.raises(TaskFailed, match="not the first key"):
        plan("encryption_key", args("sole"), facts)


def test_a_name_taken_by_another_secret_is_refused_without_quoting_either():
    facts = make_facts(file_state(ENC, config(("key1", OLD), ("key2", OTHER))))
    with pytest.raises(TaskFailed, match="different secret") as caught:
        plan("encryption_key", args("staged"), facts)
    assert NEW not in str(caught.value) and OTHER not in str(caught.value)


def test_identity_and_kms_entries_are_left_alone():
    opt_out = "  - resources:\n      - events\n    providers:\n      - identity: {}\n"
    kms = ("  - resources:\n      - configmaps\n    providers:\n      - kms:\n"
           "          apiVersion: v2\n          name: vault\n"
           "          endpoint: unix:///run/kms.sock\n")
    facts = make_facts(file_state(ENC, config(("key1", OLD), extra_entries=opt_out + kms)))
    change, = plan("encryption_key", args("staged"), facts)
    doc = yaml.safe_load(change.after.content)
    assert doc["resources"][0] == {"resources": ["events"], "providers": [{"identity": {}}]}
    assert doc["resources"][1]["providers"][0]["kms"]["name"] == "vault"
    assert key_names(change.after.content) == [["key1", "key2"]]


def test_every_local_key_entry_rotates_together():
    second = ("  - resources:\n      - configmaps\n    providers:\n      - secretbox:\n"
              f"          keys:\n            - name: key1\n              secret: {OLD}\n")
    facts = make_facts(file_state(ENC, config(("key1", OLD), extra_entries=second)))
    change, = plan("encryption_key", args("staged"), facts)
    assert key_names(change.after.content) == [["key1", "key2"], ["key1", "key2"]]


def test_nothing_to_rotate_without_a_local_key_provider():
    content = (b"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
               b"resources:\n  - resources: [secrets]\n    providers:\n      - identity: {}\n")
    with pytest.raises(TaskFailed, match="nothing to rotate"):
        plan("encryption_key", args("staged"), make_facts(file_state(ENC, content)))


def test_missing_file_points_at_encryption_at_rest():
    with pytest.raises(TaskFailed, match="does not exist.*encryption-at-rest.yml"):
        plan("encryption_key", args("staged"), make_facts(absent=[ENC]))


def test_unparsable_file_names_the_line_but_never_quotes_it():
    broken = config(("key1", OLD)).replace(b"              secret:", b"            secret: [", 1)
    with pytest.raises(TaskFailed, match=r"not valid YAML at line \d+") as caught:
        plan("encryption_key", args("staged"), make_facts(file_state(ENC, broken)))
    assert OLD not in str(caught.value)


@pytest.mark.parametrize("secret,message", [
    (base64.b64encode(bytes(31)).decode(), "decodes to 31 bytes"),
    ("not base64!", "not valid base64"),
    ("", "needs 'secret'"),
])
def test_bad_secrets_are_refused_without_being_quoted(secret, message):
    facts = make_facts(file_state(ENC, config(("key1", OLD))))
    with pytest.raises(TaskFailed, match=message) as caught:
        plan("encryption_key", args("staged", secret=secret), facts)
    assert not secret or secret not in str(caught.value)


def fingerprint_after(keys, state="staged", secret=NEW):
    facts = make_facts(file_state(ENC, config(*keys)))
    module = get_module("encryption_key")
    changes = plan("encryption_key", args(state, secret=secret), facts)
    return module.result(args(state, secret=secret), facts, changes)


def test_the_registered_fingerprint_is_of_the_file_the_phase_leaves():
    fresh = fingerprint_after([("key1", OLD)])                   # will be staged by this run
    done = fingerprint_after([("key1", OLD), ("key2", NEW)])     # staged by an earlier run
    assert fresh["fingerprint"] == done["fingerprint"] == done["current_fingerprint"]
    assert fresh["current_fingerprint"] != fresh["fingerprint"]
    assert fresh["key_names"] == [["key1", "key2"]] and fresh["resources"] == ["secrets"]
    other = fingerprint_after([("key1", OTHER)])                 # a host with another old key
    assert other["fingerprint"] != fresh["fingerprint"]
    assert all(secret not in str(fresh) for secret in (OLD, NEW))


def reader_config(*keys: tuple[str, str]) -> bytes:
    """As encryption-at-rest's prepare phase writes it: every server reads, none encrypts."""
    lines = "".join(f"            - name: {n}\n              secret: {s}\n" for n, s in keys)
    return ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
            "resources:\n  - resources:\n      - secrets\n    providers:\n"
            f"      - identity: {{}}\n      - secretbox:\n          keys:\n{lines}").encode()


def test_encrypting_turns_a_prepared_reader_config_on_then_is_noop():
    facts = make_facts(file_state(ENC, reader_config(("key1", OLD))))
    first, second = plan_twice("encryption_key", args("encrypting", secret=OLD, name="key1"),
                               facts)
    providers = yaml.safe_load(first[0].after.content)["resources"][0]["providers"]
    assert [list(p) for p in providers] == [["secretbox"], ["identity"]] and second == []


def test_encrypting_after_a_rotation_never_reorders_keys():
    """A drift run of encryption-at-rest's enable phase, after key2 was promoted."""
    rotated = make_facts(file_state(ENC, config(("key2", NEW), ("key1", OLD))))
    assert plan("encryption_key", args("encrypting", secret=OLD, name="key1"), rotated) == []
    retired = make_facts(file_state(ENC, config(("key2", NEW))))
    assert plan("encryption_key", args("encrypting", secret=OLD, name="key1"), retired) == []


def test_primary_never_moves_providers():
    facts = make_facts(file_state(ENC, reader_config(("key1", OLD))))
    with pytest.raises(TaskFailed, match="nothing to rotate"):
        plan("encryption_key", args("primary", secret=OLD, name="key1"), facts)


def test_stage_and_retire_refuse_a_config_that_does_not_encrypt_yet():
    facts = make_facts(file_state(ENC, reader_config(("key1", OLD))))
    for state in ("staged", "sole"):
        with pytest.raises(TaskFailed, match="phase enable"):
            plan("encryption_key", args(state), facts)


def test_a_kms_entry_is_never_switched_to_a_local_key():
    content = (b"apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
               b"resources:\n  - resources: [secrets]\n    providers:\n"
               b"      - kms: {apiVersion: v2, name: vault, endpoint: 'unix:///k.sock'}\n"
               b"      - secretbox:\n          keys:\n            - name: key1\n"
               b"              secret: " + OLD.encode() + b"\n")
    with pytest.raises(TaskFailed, match="nothing to rotate"):
        plan("encryption_key", args("encrypting", secret=OLD, name="key1"),
             make_facts(file_state(ENC, content)))


def test_encrypting_with_a_wrong_key_file_fails_even_when_nothing_is_left_to_do():
    enabled = make_facts(file_state(ENC, config(("key1", OLD))))
    with pytest.raises(TaskFailed, match="different secret") as caught:
        plan("encryption_key", args("encrypting", secret=NEW, name="key1"), enabled)
    assert NEW not in str(caught.value) and OLD not in str(caught.value)
    prepared = make_facts(file_state(ENC, reader_config(("key1", OLD))))
    with pytest.raises(TaskFailed, match="different secret"):
        plan("encryption_key", args("encrypting", secret=NEW, name="key1"), prepared)
