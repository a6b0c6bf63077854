"""Persisting what `apply` changes in kubeadm's source of truth, so `kubeadm upgrade` and
`kubeadm join` keep it.

`static_pod` and `kubelet_config` call this after planning their node change: the same flags,
volumes and keys are planned into the `kube-system/kubeadm-config` ConfigMap
(ClusterConfiguration, harden.kubeadm.cluster_config) or `kube-system/kubelet-config`
(KubeletConfiguration), as one more `Change` of the same task. So a playbook names each flag
once, check mode shows the ConfigMap's diff beside the manifest's, and the run backs the key up
and a rollback restores it byte for byte (harden.node.configmap).

`harden_kubeadm_persist` decides: `auto` (default) persists wherever the ConfigMap can be read
with the node's admin.conf and goes node-only, saying so on the task line, where it cannot
(a worker, a cluster not made by kubeadm); `true` fails the task there instead; `false` is
node-only everywhere.
"""

from __future__ import annotations

import base64
import json
import shlex
from typing import Callable

from harden.apply import run_vars
from harden.apply.facts import FactRequest, CONFIGMAP, Facts
from harden.apply.modules.base import Change, PlanContext, TaskFailed, text_diff
from harden.errors import InputError
from harden.kubeadm.cluster_config import CannotPersist
from harden.node.configmap import ADMIN_CONF, label

KUBEADM_CONFIG, CLUSTER_KEY = "kube-system/kubeadm-config", "ClusterConfiguration"
KUBELET_CONFIG, KUBELET_KEY = "kube-system/kubelet-config", "kubelet"
PERSIST_VAR = "harden_kubeadm_persist"


def persist_mode(value) -> str:
    """auto | true | false, from a variable's value (YAML booleans and strings; checked at
    load by harden.apply.run_vars, and here again for a value a template rendered)."""
    return "auto" if value is None else run_vars.kubeadm_persist(value)


def request(ref: str) -> FactRequest:
    return FactRequest(CONFIGMAP, ref)


def plan(facts: Facts, ctx: PlanContext, ref: str, key: str, note_key: str,
         edit: Callable[[str], str], who: str, cluster_wide: bool = False) -> list[Change]:
    """The change that makes ConfigMap `ref`'s `key` read as `edit` makes it ([] when it
    already does, or when it stays node-only: then facts.persist_notes[note_key] says why).
    cluster_wide: the same change is kept from the play's control planes, so a node without
    admin.conf (a worker) is node-only even under `true`."""
    facts.persist_notes.pop(note_key, None)
    try:
        mode = persist_mode(ctx.vars.get(PERSIST_VAR))
    except ValueError as exc:
        raise TaskFailed(f"{PERSIST_VAR}: {exc}") from None
    if mode == "false":
        facts.persist_notes[note_key] = f"node only ({PERSIST_VAR}: false)"
        return []
    state = facts.configmap(ref)
    why = state.unavailable or (f"configmap {ref} does not exist" if state.data is None else
                                f"configmap {ref} has no key {key}" if key not in state.data
                                else "")
    if why:
        if mode == "true" and not (cluster_wide and state.unavailable.startswith(ADMIN_CONF)):
            raise TaskFailed(f"{who}: cannot keep this change in kubeadm's {ref}: {why} "
                             f"({PERSIST_VAR}: true; set it to auto or false for a cluster "
                             "kubeadm does not manage)")
        facts.persist_notes[note_key] = f"node only, not kept in {ref}: {why}"
        return []
    old = state.data[key]
    try:
        new = edit(old)
    except CannotPersist as exc:
        raise TaskFailed(f"{who}: cannot keep this change in {ref} ({key}): {exc}") from None
    except InputError as exc:
        raise TaskFailed(f"{who}: {ref} ({key}) cannot be edited: {exc}") from None
    if new == old:
        return []
    after = state.with_value(key, new)
    path = state.path(key)
    patch = json.dumps({"metadata": {"resourceVersion": "__HARDEN_RV__"}, "data": {key: new}})
    encoded = base64.encodebytes(patch.encode()).decode()
    script = (f"hb_cm_write {shlex.quote(path)} {state.sha256(key)} {after.sha256(key)} "
              f"<<'HARDEN_EOF'\n{encoded}HARDEN_EOF")
    return [Change(summary=f"update {label(path)}", script=script, diff=text_diff(
        path, old.encode(), new.encode(), False), configmap=after)]


def outcome(facts: Facts, note_key: str, changes: list[Change]) -> dict:
    """What `register` keeps: kubeadm_config is `changed` (this task updates the ConfigMap),
    `kept` (it already holds the change) or why the change stays node-only."""
    if any(c.configmap is not None for c in changes):
        status = "changed"
    else:
        status = facts.persist_notes.get(note_key) or "kept"
    return {"kubeadm_config": status,
            "node_changes": [c.summary for c in changes if c.configmap is None]}
