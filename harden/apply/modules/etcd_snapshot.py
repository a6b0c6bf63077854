"""`etcd_snapshot`: `etcdctl snapshot save` on this control plane, before a step that cannot be
undone from files alone (retiring an encryption key: the official procedure backs etcd up first).

Reaches etcd as the API server does (its first --etcd-servers endpoint and its etcd client
certificate, read through /proc/<pid>/root, as the etcd census does); uses etcdctl on the host,
else etcdctl inside the etcd container through `crictl exec` (kubeadm nodes often have no
etcdctl): the container writes into etcd's data dir, a hostPath, and the file is moved from
there. Taken right after a task that rewrote kube-apiserver's manifest, it finds the static pod
restarting: it waits for the API server to run again (APISERVER_WAIT) instead of failing.
The snapshot is written under umask 077 (mode 0600, root's), then checked with
`etcdctl snapshot status`; the task line shows where it is, its size and revision. It holds
every object etcd stores (secrets included, encrypted or not): keep it like the keys.

Its own exec (like `command`): never run in check mode; output on the task line. A file
already at `path` is kept and the task does nothing (like `command`'s `creates`): a snapshot
is never overwritten; the rotation's default path carries the run id.
"""

from __future__ import annotations

import posixpath
import shlex

from harden.apply.facts import APISERVER_WAIT, FILE, FactRequest, Facts, census_functions
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed


class EtcdSnapshotModule(Module):
    name = "etcd_snapshot"
    check_mode_safe = False
    args = (
        Arg("path", required=True),
        Arg("show_output", "bool", default=True),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(FILE, str(args["path"]))]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        path = str(args["path"])
        if not path.startswith("/") or path.endswith("/") or "\n" in path:
            raise TaskFailed(f"etcd_snapshot: path must be an absolute file path, got {path!r}")
        if facts.file(path) is not None:
            return []               # a snapshot already there is kept, never overwritten
        return [Change(summary=f"etcd snapshot to {path}", script=snapshot_script(path))]


def snapshot_script(path: str) -> str:
    """sh, run on the node as root: the snapshot, its status, one line naming it."""
    target = shlex.quote(path)
    directory = shlex.quote(posixpath.dirname(path) or "/")
    return f"""(
{census_functions()}
umask 077
fail() {{ echo "etcd snapshot: $*" >&2; exit 1; }}
tries=0
while :; do
  apiserver_pid {APISERVER_WAIT} ||
    fail "no kube-apiserver has run here for {APISERVER_WAIT} s: its etcd endpoint and certificate are not known"
  argvals "$apid" --etcd-servers --etcd-cafile --etcd-certfile --etcd-keyfile
  ep=${{A1%%,*}}; ca=$A2; cert=$A3; key=$A4
  [ -r "$R/proc/$apid/cmdline" ] && break     # still the same process: its flags read whole
  tries=$((tries + 1)); [ "$tries" -lt {APISERVER_WAIT} ] || fail "kube-apiserver keeps restarting"
  sleep 1
done
aroot="$R/proc/$apid/root"
[ -n "$ep" ] || fail "kube-apiserver has no --etcd-servers"
mkdir -p {directory} || fail "cannot create {directory}"
rm -f {target}.part
if command -v etcdctl >/dev/null 2>&1; then
  how=etcdctl
  out=$(ETCDCTL_API=3 etcdctl --endpoints="$ep" ${{ca:+--cacert="$aroot$ca"}} ${{cert:+--cert="$aroot$cert"}} \\
    ${{key:+--key="$aroot$key"}} --dial-timeout=5s --command-timeout=300s snapshot save {target} 2>&1) ||
    fail "etcdctl snapshot save failed: $(printf '%s' "$out" | tail -n 1)"
  status=$(ETCDCTL_API=3 etcdctl snapshot status {target} -w simple 2>/dev/null | tail -n 1)
elif command -v crictl >/dev/null 2>&1; then
  how="etcdctl in the etcd container (crictl exec)"
  cid=$(crictl ps -q --name '^etcd$' 2>/dev/null | head -n 1)
  [ -n "$cid" ] || fail "no etcdctl here and no running etcd container"
  inside=/var/lib/etcd/harden-snapshot.db
  out=$(crictl exec "$cid" etcdctl --endpoints="$ep" --cacert=/etc/kubernetes/pki/etcd/ca.crt \\
    --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \\
    --key=/etc/kubernetes/pki/etcd/healthcheck-client.key snapshot save "$inside" 2>&1) ||
    fail "etcdctl snapshot save in the etcd container failed: $(printf '%s' "$out" | tail -n 1)"
  status=$(crictl exec "$cid" etcdctl snapshot status "$inside" -w simple 2>/dev/null | tail -n 1)
  mv /var/lib/etcd/harden-snapshot.db {target} || fail "cannot move the snapshot to {path}"
else
  fail "neither etcdctl nor crictl is installed on this node"
fi
chmod 0600 {target} && chown 0:0 {target} || fail "cannot make {path} 0600 root's"
size=$(wc -c < {target} | tr -d ' ')
[ "$size" -gt 0 ] || fail "{path} is empty"
echo "etcd snapshot: {path} ($size bytes, mode 0600; $how${{status:+; hash, revision, keys, size: $status}})"
)"""


MODULE = EtcdSnapshotModule()
