"""The cluster-wide KubeletConfiguration kept in `kube-system/kubelet-config` (key `kubelet`):
`kubeadm join` and `kubeadm upgrade node` write every node's /var/lib/kubelet/config.yaml from
it, so a key set only in the node's file is gone after the next upgrade."""

from __future__ import annotations

from harden.errors import InputError
from harden.kubeadm.yaml_text import YamlText


def persist(text: str, source: str, settings: dict) -> str:
    """The document with every dotted key of `settings` set (the text as it was when it
    already holds them)."""
    doc = YamlText(text, source)
    kind = doc.value(["kind"])
    if kind != "KubeletConfiguration":
        raise InputError(f"not a KubeletConfiguration (kind: {kind!r})", source, 1)
    for key, value in settings.items():
        doc.set(str(key).split("."), value)
    return doc.text


def missing(text: str, source: str, settings: dict) -> list[str]:
    """Keys of `settings` the document does not hold with that value."""
    doc = YamlText(text, source)
    return [key for key, value in settings.items() if doc.value(str(key).split(".")) != value]
