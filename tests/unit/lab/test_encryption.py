"""Encryption at rest in the lab API server: upstream's value formats, checked against values
made and opened here with the primitives directly (an implementation independent of the lab's)."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harden.lab.components.encryption import TransformError, Transformers, covers

KEY = "/registry/secrets/apps/db"
SECRET = bytes(range(32))


def config(*providers, resources=("secrets",)) -> dict:
    return {"kind": "EncryptionConfiguration", "apiVersion": "apiserver.config.k8s.io/v1",
            "resources": [{"resources": list(resources), "providers": list(providers)}]}


def keyed(kind: str, name: str = "key1", secret: bytes = SECRET) -> dict:
    return {kind: {"keys": [{"name": name, "secret": base64.b64encode(secret).decode()}]}}


def transformers(doc: dict, tmp_path) -> Transformers:
    path = tmp_path / "enc.yaml"
    path.write_text("x")
    return Transformers(str(path), lambda _p: doc, auto_reload=False)


def test_aescbc_value_is_prefix_iv_and_pkcs7_cbc(tmp_path):
    stored = transformers(config(keyed("aescbc")), tmp_path).to_storage("secrets", "", KEY, b"hello")
    prefix = b"k8s:enc:aescbc:v1:key1:"
    assert stored.startswith(prefix)
    iv, body = stored[len(prefix):len(prefix) + 16], stored[len(prefix) + 16:]
    plain = Cipher(algorithms.AES(SECRET), modes.CBC(iv)).decryptor().update(body)
    unpadder = padding.PKCS7(128).unpadder()
    assert unpadder.update(plain) + unpadder.finalize() == b"hello"


def test_aescbc_value_made_independently_reads_back(tmp_path):
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    body = padder.update(b'{"a": 1}') + padder.finalize()
    encryptor = Cipher(algorithms.AES(SECRET), modes.CBC(iv)).encryptor()
    value = b"k8s:enc:aescbc:v1:key1:" + iv + encryptor.update(body) + encryptor.finalize()
    assert transformers(config(keyed("aescbc")), tmp_path).from_storage(
        "secrets", "", KEY, value) == b'{"a": 1}'


def test_aesgcm_authenticates_the_etcd_key(tmp_path):
    nonce = os.urandom(12)
    value = b"k8s:enc:aesgcm:v1:key1:" + nonce + AESGCM(SECRET).encrypt(nonce, b"data", KEY.encode())
    t = transformers(config(keyed("aesgcm")), tmp_path)
    assert t.from_storage("secrets", "", KEY, value) == b"data"
    with pytest.raises(TransformError, match="message authentication failed"):
        t.from_storage("secrets", "", "/registry/secrets/apps/other", value)
    stored = t.to_storage("secrets", "", KEY, b"x")
    body = stored[len(b"k8s:enc:aesgcm:v1:key1:"):]
    assert AESGCM(SECRET).decrypt(body[:12], body[12:], KEY.encode()) == b"x"


def test_secretbox_value_is_prefix_nonce_and_nacl_box(tmp_path):
    bindings = pytest.importorskip("nacl.bindings")
    nonce = os.urandom(24)
    value = b"k8s:enc:secretbox:v1:key1:" + nonce + bindings.crypto_secretbox(b"boxed", nonce, SECRET)
    t = transformers(config(keyed("secretbox")), tmp_path)
    assert t.from_storage("secrets", "", KEY, value) == b"boxed"
    stored = t.to_storage("secrets", "", KEY, b"y")[len(b"k8s:enc:secretbox:v1:key1:"):]
    assert bindings.crypto_secretbox_open(stored[24:], stored[:24], SECRET) == b"y"


def test_first_provider_writes_and_every_provider_reads(tmp_path):
    old = transformers(config(keyed("aescbc", "old")), tmp_path).to_storage("secrets", "", KEY, b"v")
    rotated = transformers(config(keyed("aescbc", "new", bytes(32 * [7])), keyed("aescbc", "old"),
                                  {"identity": {}}), tmp_path)
    assert rotated.from_storage("secrets", "", KEY, old) == b"v"
    assert rotated.from_storage("secrets", "", KEY, b'{"plain": true}') == b'{"plain": true}'
    assert rotated.to_storage("secrets", "", KEY, b"v").startswith(b"k8s:enc:aescbc:v1:new:")


def test_value_under_a_removed_key_fails_like_the_api_server(tmp_path):
    value = transformers(config(keyed("aescbc", "gone")), tmp_path).to_storage("secrets", "", KEY, b"v")
    current = transformers(config(keyed("aescbc", "key1")), tmp_path)
    with pytest.raises(TransformError, match=f'unable to transform key "{KEY}": no matching prefix'):
        current.from_storage("secrets", "", KEY, value)


def test_identity_fallback_reports_that_it_met_encrypted_data(tmp_path):
    # upstream's prefix transformers keep the identity provider's error (it matches every value)
    value = transformers(config(keyed("aescbc", "gone")), tmp_path).to_storage("secrets", "", KEY, b"v")
    current = transformers(config(keyed("aescbc", "key1"), {"identity": {}}), tmp_path)
    with pytest.raises(TransformError, match=f'unable to transform key "{KEY}": identity '
                                             "transformer tried to read encrypted data"):
        current.from_storage("secrets", "", KEY, value)


def test_without_any_encryption_config_encrypted_values_fail(tmp_path):
    """An API server started without --encryption-provider-config (e.g. after `kubeadm upgrade`
    dropped the flag) cannot read what was encrypted: the kubeadm lock-out."""
    value = transformers(config(keyed("aescbc", "key1")), tmp_path).to_storage("secrets", "", KEY, b"v")
    plain = Transformers(None, lambda _p: {}, auto_reload=False)
    with pytest.raises(TransformError, match="identity transformer tried to read encrypted data"):
        plain.from_storage("secrets", "", KEY, value)


def test_identity_first_reads_encrypted_values_through_later_providers(tmp_path):
    value = transformers(config(keyed("aesgcm")), tmp_path).to_storage("secrets", "", KEY, b"v")
    decrypting = transformers(config({"identity": {}}, keyed("aesgcm")), tmp_path)
    assert decrypting.from_storage("secrets", "", KEY, value) == b"v"
    assert decrypting.to_storage("secrets", "", KEY, b"w") == b"w"


def test_uncovered_resources_are_stored_plain(tmp_path):
    t = transformers(config(keyed("aescbc")), tmp_path)
    assert t.to_storage("configmaps", "", "/registry/configmaps/a/b", b"plain") == b"plain"


@pytest.mark.parametrize("name, resource, group, expected", [
    ("secrets", "secrets", "", True), ("*.", "configmaps", "", True),
    ("*.", "roles", "rbac.authorization.k8s.io", False), ("*.*", "roles", "x", True),
    ("roles.rbac.authorization.k8s.io", "roles", "rbac.authorization.k8s.io", True),
    ("*.rbac.authorization.k8s.io", "clusterroles", "rbac.authorization.k8s.io", True),
    ("secrets", "configmaps", "", False)])
def test_resource_names_cover_like_upstream(name, resource, group, expected):
    assert covers(name, resource, group) is expected


def test_automatic_reload_picks_up_a_new_first_key(tmp_path):
    path = tmp_path / "enc.yaml"
    path.write_text("1")
    docs = {"1": config(keyed("aescbc", "a")), "2": config(keyed("aescbc", "b"))}
    t = Transformers(str(path), lambda p: docs[open(p).read()], auto_reload=True)
    assert t.to_storage("secrets", "", KEY, b"v").startswith(b"k8s:enc:aescbc:v1:a:")
    path.write_text("2")
    os.utime(path, (1, 1))
    t.checked = 0.0
    assert t.to_storage("secrets", "", KEY, b"v").startswith(b"k8s:enc:aescbc:v1:b:")
