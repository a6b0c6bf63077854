"""Rollback and encryption keys: a manual rollback never takes a key away from an encryption
config unless forced, and never shows a key in a conflict diff (whether the run declared the
file secret comes from the module's Change, and an EncryptionConfiguration is redacted even
when nobody declared it). Scripts really run with the local `sh` against temporary roots."""

from __future__ import annotations

import base64
import json

import pytest
import yaml
from support.local_node import NODE_DIRS, Env, ShellSession

from harden.apply.facts import FileState
from harden.apply.modules.base import REDACTED, Change, apply_script, is_encryption_config, \
    plan_write, text_diff, write_snippet
from harden.apply.modules.encryption_key import MODULE as ENCRYPTION_KEY
from harden.apply.rollback_command import encryption_keys, rollback_host

RUN = "20260101T000000Z-abc123"
KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(40, 72))).decode()


def config(*names: str) -> str:
    keys = [{"name": name, "secret": {"key1": KEY1, "key2": KEY2}[name]} for name in names]
    return yaml.safe_dump({
        "apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"],
                       "providers": [{"secretbox": {"keys": keys}}, {"identity": {}}]}]})


@pytest.fixture
def node(tmp_path):
    (tmp_path / "etc").mkdir()
    return tmp_path


def apply(node, path, text: str) -> None:
    script = apply_script([Change(summary="", script=write_snippet(str(path), text.encode(),
                                                                   None, None, None))],
                          RUN, str(node / "backups"))
    assert ShellSession().run("sh -s", stdin=script.encode()).rc == 0


def rollback(node, force: bool = False, drop: bool = False):
    return rollback_host(ShellSession(), "h1", RUN, force, backup_root=str(node / "backups"),
                         journal_root=str(node / "journal"), drop_encryption_key=drop)


# --- the guard -----------------------------------------------------------------------------

def test_undoing_a_stage_drops_the_new_key_so_it_is_refused_without_any_change_since(node):
    enc = node / "etc" / "enc.yaml"
    enc.write_text(config("key1"))
    apply(node, enc, config("key1", "key2"))
    refused = rollback(node)
    assert refused.status == "refused" and refused.diffs == {}
    assert "changed since" not in refused.message
    assert f"{enc}: secretbox key 'key2'" in refused.message
    assert "unreadable" in refused.message and "rotate-encryption-key.yml" in refused.message
    assert KEY1 not in refused.message and KEY2 not in refused.message
    assert "key1" not in refused.message                    # kept keys are not named
    assert enc.read_text() == config("key1", "key2")
    forced = rollback(node, force=True)                      # --force is not enough
    assert forced.status == "refused" and "--force does not" in forced.message
    assert enc.read_text() == config("key1", "key2")
    dropped = rollback(node, drop=True)
    assert dropped.status == "rolled_back" and enc.read_text() == config("key1")
    assert "DROPPED encryption key(s) in use" in dropped.message
    assert "secretbox key 'key2'" in dropped.message and "unreadable" in dropped.message


def test_undoing_a_promote_only_reorders_keys_and_goes_ahead(node):
    enc = node / "etc" / "enc.yaml"
    enc.write_text(config("key1", "key2"))
    apply(node, enc, config("key2", "key1"))
    done = rollback(node)
    assert done.status == "rolled_back", done.message
    assert enc.read_text() == config("key1", "key2")


def test_removing_a_config_the_run_created_is_refused(node):
    enc = node / "etc" / "enc.yaml"
    apply(node, enc, config("key1"))
    refused = rollback(node)
    assert refused.status == "refused" and "secretbox key 'key1'" in refused.message
    assert enc.exists()


def test_a_key_replaced_under_the_same_name_counts_as_dropped(node):
    enc = node / "etc" / "enc.yaml"
    enc.write_text(config("key1"))
    apply(node, enc, config("key1").replace(KEY1, KEY2))
    refused = rollback(node)
    assert refused.status == "refused" and "secretbox key 'key1'" in refused.message
    assert KEY1 not in refused.message and KEY2 not in refused.message


def test_both_reasons_are_given_and_the_diff_is_a_marker(node):
    enc, conf = node / "etc" / "enc.yaml", node / "etc" / "app.conf"
    enc.write_text(config("key1"))
    conf.write_text("a = 1\n")
    apply(node, enc, config("key1", "key2"))
    apply(node, conf, "a = 2\n")
    conf.write_text("a = 3\n")
    refused = rollback(node)
    assert "1 path(s) changed since the run" in refused.message
    assert "secretbox key 'key2'" in refused.message
    assert list(refused.diffs) == [str(conf)]


def test_other_files_are_not_guarded(node):
    conf = node / "etc" / "app.conf"
    conf.write_text("kind: EncryptionConfiguration is only mentioned here\n")
    apply(node, conf, "a = 2\n")
    assert rollback(node).status == "rolled_back"


def test_encryption_keys_name_every_provider_key_and_kms_but_not_identity():
    text = yaml.safe_dump({"kind": "EncryptionConfiguration", "resources": [
        {"resources": ["secrets"], "providers": [
            {"aescbc": {"keys": [{"name": "a", "secret": KEY1}]}},
            {"kms": {"name": "vault", "endpoint": "unix:///kms.sock"}},
            {"identity": {}}]},
        {"resources": ["configmaps"], "providers": [
            {"secretbox": {"keys": [{"name": "b", "secret": KEY2}]}}]}]}).encode()
    assert sorted(encryption_keys(text).values()) == \
        ["aescbc key 'a'", "kms provider 'vault'", "secretbox key 'b'"]
    assert encryption_keys(b"kind: ConfigMap\n") == {}
    assert encryption_keys(b"kind: EncryptionConfiguration\n: [bad") == {}
    assert encryption_keys(None) == {}


# --- no key in any diff ----------------------------------------------------------------------

def test_an_encryption_config_is_redacted_whatever_the_caller_says():
    before, after = config("key1").encode(), config("key1", "key2").encode()
    assert is_encryption_config(before) and not is_encryption_config(b"kind: Pod\n")
    for diff in (text_diff("/e", before, after, False), text_diff("/e", None, after, False),
                 text_diff("/e", b"a: 1\n", after, False)):
        assert REDACTED in diff and KEY1 not in diff and KEY2 not in diff
    assert "+a: 2" in text_diff("/f", b"a: 1\n", b"a: 2\n", False)


def test_plan_write_marks_its_changes_secret_also_when_only_metadata_changes():
    existing = FileState("/k", "file", 0o644, "root", "root", b"x\n")
    assert plan_write("/k", b"y\n", existing, None, None, None, secret=True)[0].secret
    assert plan_write("/k", b"x\n", existing, "0600", None, None, secret=True)[0].secret
    assert not plan_write("/k", b"y\n", existing, None, None, None, secret=False)[0].secret


def test_encryption_key_changes_are_secret_even_without_a_key_argument():
    """Retiring needs no key: the argument named `secret` is empty, the file still is."""
    class Facts:
        def file(self, path, content=False):
            return FileState(path, "file", 0o600, "root", "root",
                             config("key2", "key1").encode())

    args = ENCRYPTION_KEY.validate({"path": "/enc.yaml", "name": "key2", "state": "sole",
                                    "secret": ""})
    changes = ENCRYPTION_KEY.plan(args, Facts(), None)
    assert changes and all(change.secret for change in changes)


RETIRE = """
- name: retire
  hosts: h1
  tasks:
    - name: retire the old key
      encryption_key:
        path: "{{ root }}/etc/enc.yaml"
        name: key2
        secret: "{{ new_encryption_key | default('') }}"
        state: sole
    - name: a config nobody declared secret
      copy:
        dest: "{{ root }}/etc/plain-enc.yaml"
        content: "{{ plain }}"
"""


def test_a_retire_without_the_key_records_the_file_secret_and_its_conflict_diff_is_a_marker(
        tmp_path):
    env = Env(tmp_path)
    enc, plain = env.root("h1") / "etc" / "enc.yaml", env.root("h1") / "etc" / "plain-enc.yaml"
    enc.write_text(config("key2", "key1"))
    result, _ = env.apply(RETIRE, extra={"plain": config("key1")})
    assert yaml.safe_load(enc.read_text()) == yaml.safe_load(config("key2"))
    record = json.loads((env.node_dir("h1", 1) / f"{result.run_id}.json").read_text())
    assert record["secret_paths"] == [str(enc)]
    enc.write_text(config("key2") + "# edited\n")
    plain.write_text(config("key1", "key2"))
    refused = rollback_host(ShellSession("h1", [], per_host_node_dirs=True), "h1", result.run_id,
                            force=False, backup_root=str(tmp_path / NODE_DIRS[0]),
                            journal_root=str(tmp_path / NODE_DIRS[1]))
    assert refused.status == "refused" and set(refused.diffs) == {str(enc), str(plain)}
    shown = refused.message + "".join(refused.diffs.values())
    assert REDACTED in refused.diffs[str(enc)] and REDACTED in refused.diffs[str(plain)]
    assert KEY1 not in shown and KEY2 not in shown


def test_restoring_a_manifest_without_the_encryption_flag_is_a_dropped_config():
    from harden.apply.rollback_command import _dropped_encryption_flag
    from support.modules import manifest_text

    path = "/etc/kubernetes/manifests/kube-apiserver.yaml"
    plain = manifest_text("kube-apiserver.yaml")
    flag = "    - --encryption-provider-config=/etc/kubernetes/enc/encryption-config.yaml\n"
    pointed = plain.replace(b"    - kube-apiserver\n", b"    - kube-apiserver\n" + flag.encode())
    assert pointed != plain
    assert _dropped_encryption_flag(path, pointed, plain) == [
        "--encryption-provider-config=/etc/kubernetes/enc/encryption-config.yaml "
        "(would be removed)"]
    other = pointed.replace(b"enc/encryption-config.yaml", b"enc/other.yaml")
    assert "(would become /etc/kubernetes/enc/other.yaml)" in \
        _dropped_encryption_flag(path, pointed, other)[0]
    assert _dropped_encryption_flag(path, pointed, pointed) == []         # unchanged flag
    assert _dropped_encryption_flag(path, plain, pointed) == []           # adds it back
    assert _dropped_encryption_flag("/etc/kubernetes/x.yaml", pointed, plain) == []
