"""The batched fact probe: one POSIX sh script per host, one exec, parsed on the controller.

Why one script: a check run must cost one SSH exec per host (DESIGN principle 2), so the script
gathers every fact any catalogue check may need, whatever the node's role, and the controller
decides what applies. The node needs only sh, coreutils (stat, base64, tr, head, sed, grep),
find (for a large tree), awk and ps; no Python.

Each process the script starts costs the node about a millisecond of CPU (fork, exec, dynamic
linking), more than most of what it then does, so the script starts few: the files to read
share one stat, one head and one base64 (W), the paths to stat one stat, a process's flags one
tr walked in the shell's memory, and what a command prints is split in memory rather than fed
to a `read` loop (dash's `read` takes a byte per system call). Only what must stay apart for
the controller to trust it gets a process of its own: every process's command line is encoded
alone, since any user can start a process with a command line of their choosing.

Output is line-oriented; every line starts with a record tag and uses `|` as separator, with any
free text (file contents, command lines) base64-encoded, so no byte of a file can be mistaken
for a delimiter:

    HARDEN-PROBE|1|<root>            header; <root> is the test-only path prefix (empty on nodes)
    T|<boot epoch>|<clock ticks/s>    lets the controller turn process start ticks into a time
    P|<pid>|<name>|<start ticks>|<b64 cmdline>   a process of interest, raw /proc/<pid>/cmdline
    G|<pid>                           that process runs in a kubepods cgroup (a pod's container)
    V|<pid>|<b64 env lines>           the ETCD_* variables the etcd checks read (nothing else)
    S|<mode>|<uid>|<gid>|<user>|<group>|<dev:ino>|<mtime>|<type>|<path>   stat of a path
    Y|<b64 link text>|<mode>|...|<type>|<path>   a symlink's target (stat -L), keyed by the link
    Z|<b64 link text>|<path>          a symlink that leads nowhere (dangling, or a loop)
    M|<path>                          a path that was looked for and does not exist
    F|<b64 content>|<path>            a file's content (only files that hold no secrets)
    W|<b64>|<size>|<path>|<size>|...  several files' contents read by one `head -c`, with head's
                                      `==> name <==` lines between them; split by the sizes
                                      stat gave (split_read); paths hold no `|` or newline;
                                      only paths the probe chose itself, never one named by
                                      a process's arguments, under /proc or /sys, or of 0 bytes
    E|size|<bytes>|<path>             a file too large to read (limits.MAX_FILE_BYTES)
    E|type|<file type>|<path>         a path to read that is a FIFO, socket or device
    N|<b64 tokens>|<path>             encryption config reduced to `resources`/provider names
    C|<method>|<prefix or error>      the etcd census: how etcd was read (harden.node.etcd_census)
    Q|<directory>|<provider:key>|<n>  ... and how many stored values each provider:key holds
    L|<tokens>                        ... and the EncryptionConfiguration it was judged against
    O|<flag value>                    ... and the API server's --etcd-servers-overrides
    X|<b64 lines>|<path>              a sysctl file a boot reads: its lines setting a key the
                                      kubelet's protectKernelDefaults requires
    H|<component>|<b64 container path>|<host path>   where a path its static-pod manifest names
                                      is on the host, through the manifest's hostPath volumes
    K|<name>|<rc>|<b64 output>        a kubectl call on a control plane with admin.conf: `get`
                                      (cluster objects), `kubeadm-config` (the ClusterConfiguration,
                                      empty without that ConfigMap) and `can-i` (the
                                      SelfSubjectAccessReviews of CAN_I_QUERIES, read as `kubectl
                                      auth can-i` answers);
                                      stdout, or stderr when it failed with nothing on stdout;
                                      `K|deferred|0|`: another control plane of the cluster
                                      answers `get` and kubeadm-config (harden.cis.cluster_reads);
                                      can-i is always this node's own
    I|<sha256>                        a control plane that can run kubectl: the SHA-256 of its
                                      cluster CA (/etc/kubernetes/pki/ca.crt), naming its cluster
    END|                              the script ran to completion

Secrets policy: files are read in full only when they configure rather than authenticate
(static-pod manifests, kubelet config/units/env files, the kube-proxy config, the audit policy).
Kubeconfigs, keys and the encryption config are only ever stat'ed. The
encryption config's provider names are extracted on the node with `grep -o` of
`<provider>:` tokens, so only the words resources/identity/aescbc/aesgcm/secretbox/kms can leave
the node; key material (base64, never followed by a colon) cannot match.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shlex
from dataclasses import dataclass, field

from harden.errors import HostError
from harden.node import etcd_census
from harden.node.sysctl_boot import KUBELET_TUNABLES, SYSCTL_CONF, SYSCTL_DIRS
from harden.node.limits import MAX_FILE_BYTES, NodeDataError, check_yaml, not_regular, too_large
from harden.ssh.common import SCRIPT_COMMAND
from harden.ssh.session import Session

PROBE_VERSION = "1"
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kubelet",
              "kube-proxy")
PROVIDER_NAMES = ("identity", "aescbc", "aesgcm", "secretbox", "kms")
KUBECTL_KINDS = "namespaces,serviceaccounts,clusterroles,clusterrolebindings,roles,networkpolicies"
# what the probe asks the API server any authenticated user may do ("<verb> <resource>")
CAN_I_QUERIES = ("get secrets", "list secrets", "watch secrets", "create pods")
# why a node has no cluster records (K|unavailable)
NO_KUBECTL = "kubectl is not installed on this node"
NO_ADMIN_CONF = "/etc/kubernetes/admin.conf is not present on this node"

# what every probe script starts with: C locale, one Go P, private temp files, the header, b64
_PRELUDE = r"""
LC_ALL=C; export LC_ALL
# the Go clients run here (kubectl, etcdctl, crictl) wait on the network: with one P instead
# of one per core they spend about a fifth less CPU (idle Ps spinning, GC across cores) on a
# node whose cores its own components need
GOMAXPROCS=1; export GOMAXPROCS
# ... and, living well under a second, collect garbage at 5x the live heap instead of 2x: a
# kubectl call then spends about an eighth less CPU (GC cycles during its start-up). The soft
# memory limit keeps that from growing with the data: on a large cluster (etcdctl's census of
# the whole keyspace, kubectl get -A) the collector runs as it must near 256 MiB instead of
# letting the heap reach 5x what the call holds (Go < 1.19 ignores it)
GOGC=400; export GOGC
GOMEMLIMIT=256MiB; export GOMEMLIMIT
umask 077
echo "HARDEN-PROBE|__VERSION__|$R"
nl='
'
# base64 on one line: -w 0 where base64 has it (GNU, BusyBox), saving a `tr` per value; a
# base64 without -w refuses the option before it reads anything, and the input is then still
# there for the plain one (no process spent asking which it is)
b64() { base64 -w 0 2>/dev/null || base64 | tr -d '\n'; }
"""

# section 5: cluster objects, only where admin.conf is present and kubectl installed. $KASK is
# 1 where this host asks for its cluster, 0 where another control plane of the cluster does
# (harden.cis.cluster_reads): then a control plane with a cluster CA names its cluster (I, the
# CA's sha256) and leaves the shared reads (`get`, kubeadm-config) to the controller
# (`K|deferred` in their place); its access reviews it still asks itself, since each API
# server answers them with its own authorizer.
_CLUSTER_DEFS = r"""
KSTATE=no-admin-conf; KSHARED=''
if [ -f "$R/etc/kubernetes/admin.conf" ]; then
  KSTATE=no-kubectl
  command -v kubectl >/dev/null 2>&1 && KSTATE=run
fi
if [ "$KSTATE" = run ] && [ -f "$R/etc/kubernetes/pki/ca.crt" ]; then
  CAFP=$(sha256sum < "$R/etc/kubernetes/pki/ca.crt" 2>/dev/null); CAFP=${CAFP%% *}
  if [ -n "$CAFP" ]; then echo "I|$CAFP"; [ "$KASK" = 1 ] || KSHARED=1; fi
fi
KC="kubectl --kubeconfig=$R/etc/kubernetes/admin.conf --request-timeout=20s"
# one K record: kubectl's stdout (klog warnings on stderr would corrupt the JSON); stderr
# only when the call failed without an answer on stdout (can-i says "no" with exit 1)
kc() { name=$1; shift
  if [ -n "$KSHARED" ] && [ "$name" != can-i ]; then echo "K|deferred|0|"; return 0; fi
  out=$($KC "$@" 2>"${KERR:-/dev/null}"); rc=$?
  [ "$rc" != 0 ] && [ -z "$out" ] && [ -n "$KERR" ] && out=$(cat "$KERR")
  printf 'K|%s|%s|' "$name" "$rc"; printf '%s' "$out" | b64; echo; return "$rc"; }
# what any authenticated user may do (an impersonated user with only that group): one
# SelfSubjectAccessReview per question, as `kubectl auth can-i -A` asks it, all created by
# one kubectl (one process instead of one per question); reported only when `get` worked
reviews() { kc can-i create --validate=false -f - -o json --as=harden-probe:anyone \
    --as-group=system:authenticated <<'EOF_REVIEWS'
__REVIEWS__
EOF_REVIEWS
}
# kubeadm's ClusterConfiguration (check 1.1.22k; empty output: no such ConfigMap)
kubeadm_config() { kc kubeadm-config -n kube-system get configmap kubeadm-config \
    --ignore-not-found -o 'jsonpath={.data.ClusterConfiguration}'; }
# the K records read one after another (no private temp dir for the background calls), or
# why there are none; the reviews and
# kubeadm's config only when `get` worked
cluster_records() {
  if [ "$KSTATE" = run ]; then
    if kc get get __KINDS__ -A -o json; then kubeadm_config; reviews; fi
  elif [ "$KSTATE" = no-kubectl ]; then
    echo "K|unavailable|127|__NO_KUBECTL__"
  else
    echo "K|unavailable|0|__NO_ADMIN_CONF__"
  fi; }
# the three kubectl calls started at once in the background (when a private temp dir can hold
# their answers), each with its own stderr for its error text: the section takes as long as
# the slowest call, not the sum of all three; cluster_collect waits for them and prints the
# records cluster_records would (the reviews and kubeadm's config only when `get` worked)
KT=''
cluster_start() { [ "$KSTATE" = run ] || return 0
  KT=$(mktemp -d 2>/dev/null) || KT=''
  [ -n "$KT" ] || return 0
  (KERR=$KT/get.err; kc get get __KINDS__ -A -o json > "$KT/get"; echo "$?" > "$KT/get.rc") &
  (KERR=$KT/can-i.err; reviews > "$KT/can-i") &
  (KERR=$KT/kcfg.err; kubeadm_config > "$KT/kcfg") & }
cluster_collect() {
  if [ -n "$KT" ]; then
    wait; read -r grc_ < "$KT/get.rc" 2>/dev/null
    if [ "$grc_" = 0 ]; then cat "$KT/get" "$KT/kcfg" "$KT/can-i"; else cat "$KT/get"; fi
    rm -rf "$KT"
  else cluster_records; fi; }
"""

_SCRIPT = r"""
__CENSUS__
FMT='S|%a|%u|%g|%U|%G|%d:%i|%Y|%F|%n'
# section 5 started first, in the background: the API server's round trips then overlap the
# file probing instead of following it; collected at the end
cluster_start
# a symlink: its text (one level) and the stat of what opening it reaches (stat -L, os.Stat
# semantics: what the kubelet and the components read); Z when it leads nowhere
link_to() { lt=$(printf '%s' "$(readlink "$1")" | b64)
  if ls_=$(stat -L -c '%a|%u|%g|%U|%G|%d:%i|%Y|%F|%n' "$1" 2>/dev/null); then echo "Y|$lt|$ls_"
  else echo "Z|$lt|$1"; fi; }
st() { stat -c "$FMT" "$@" 2>/dev/null; for lp in "$@"; do [ -L "$lp" ] && link_to "$lp"; done; return 0; }
# stat one node path (relative to $R), or record it as missing
stat_path() { stat_paths "$1"; }
# stat a whole tree (the PKI directory, CNI dirs): its paths, found by globs (dot files too)
# rather than by a find, wait in SQ for the one stat of flush_stats (a path with a newline is
# stat'ed at once, as stat_paths does); a symlinked root is followed, links below it are not
# (no loops); st stats each link's target. A tree of more than 500 paths (the shell's queue
# grows by copying) is left to find and a stat of its own instead (tree_find). A root given
# with trailing slashes (--cni-conf-dir=/etc/cni/net.d/) loses them: its paths keep one `/`
stat_tree() { t0_=$1; while :; do case $t0_ in ?*/) t0_=${t0_%/};; *) break;; esac; done
  set -- "$t0_"; [ -n "$1" ] || return 0
  if [ -e "$R$1" ]; then sq0_=$SQ; tn_=0; tree_add "$R$1"
    if [ -d "$R$1" ] && ! tree_walk "$R$1"; then SQ=$sq0_; tree_find "$R$1"; fi
  else stat_path "$1"; fi; }
tree_add() { case $1 in *"$nl"*) st "$1";; *) SQ="$SQ$1$nl";; esac; }
tree_walk() { for e_ in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    [ -e "$e_" ] || [ -L "$e_" ] || continue
    tn_=$((tn_ + 1)); [ "$tn_" -le 500 ] || return 1; tree_add "$e_"
    [ ! -d "$e_" ] || [ -L "$e_" ] || tree_walk "$e_" || return 1; done; }
# (stat's lines printed as they came; only when one may be a symlink's are they walked, split
# in memory, and then the path after nine fields is taken only for such a line: that
# nine-star pattern costs dash ~0.1 ms per line)
tree_find() { t_=$(find -H "$1" -exec stat -c "$FMT" {} + 2>/dev/null)
  [ -z "$t_" ] || printf '%s\n' "$t_"
  case $t_ in *'|symbolic link|'*)
    set -f; i_=$IFS; IFS=$nl; set -- $t_; IFS=$i_; set +f
    for s_ do
      case $s_ in *'|symbolic link|'*) p_=${s_#*|*|*|*|*|*|*|*|*|}
        case $s_ in *"|symbolic link|$p_") link_to "$p_";; esac;; esac; done;; esac; }
# stat node paths (the missing ones recorded as such at once); a path already stat'ed this way
# is not again (the kubelet's kubeconfig is also one of /etc/kubernetes/*.conf). The others wait
# in SQ for flush_stats, which stats them all with one stat at the end (a path with a newline,
# which SQ cannot hold, is stat'ed at once)
STATD=$nl; SQ=''
stat_paths() { for p_ do [ -n "$p_" ] || continue
    case $STATD in *"$nl$p_$nl"*) continue;; esac; STATD="$STATD$p_$nl"
    if [ -e "$R$p_" ] || [ -L "$R$p_" ]; then
      case $p_ in *"$nl"*) st "$R$p_";; *) SQ="$SQ$R$p_$nl";; esac
    else echo "M|$R$p_"; fi
  done; }
flush_stats() { set -f; o_=$IFS; IFS=$nl; set -- $SQ; IFS=$o_; set +f; SQ=''
  [ $# -eq 0 ] || st "$@"; }
# stat and read a file that holds no secrets
# (sized first: one above __MAX__ bytes never leaves the node; a FIFO or device is named, never
# read, since reading it could block or never end)
# (a file read once is not read again: the same S and F records would only repeat)
READ=$nl
read_file() { [ -n "$1" ] || return 0
  case $READ in *"$nl$1$nl"*) return 0;; esac
  if [ -f "$R$1" ]; then
    if [ -L "$R$1" ]; then st "$R$1"; sz=$(stat -L -c %s "$R$1" 2>/dev/null || echo 0)
    else s_=$(stat -c "$FMT|%s" "$R$1" 2>/dev/null); [ -z "$s_" ] || printf '%s\n' "${s_%|*}"
      sz=${s_##*|}; fi
    if [ "${sz:-0}" -gt __MAX__ ]; then echo "E|size|$sz|$R$1"
    else printf 'F|'; head -c __MAX1__ < "$R$1" | b64; printf '|%s\n' "$R$1"; READ="$READ$1$nl"; fi
  elif [ -e "$R$1" ] && [ ! -d "$R$1" ]; then st "$R$1"
    echo "E|type|$(stat -L -c %F "$R$1" 2>/dev/null)|$R$1"
  else stat_path "$1"; fi; }
# read several files as read_file does, with one stat for all the plain regular ones (not
# symlinks; a path with a newline or `|` goes through read_file, whose records it keeps apart)
# and one head and one base64 for their contents: a W record, head's own "==> path <==" lines
# between the files, each file's size by stat after the blob (the controller splits it by
# those sizes, so a file's text can never pass for another's; see split_read). Only paths the
# probe chose itself come here (never one from a process's arguments: read_argv), and of
# them never one under /proc or /sys or one stat sizes at 0 bytes: such a file's size says
# nothing of what a read returns, so it is read alone (read_file's F record)
read_files() { b_=$nl
  for f_ do
    [ -n "$f_" ] || continue
    case $READ$b_ in *"$nl$f_$nl"*) continue;; esac
    case $R$f_ in *"$nl"*|*'|'*) read_file "$f_"; continue;; esac
    case $f_ in /proc/*|/sys/*|//*|*/../*|*/./*) read_file "$f_"; continue;; esac
    if [ -f "$R$f_" ] && [ ! -L "$R$f_" ]; then b_="$b_$f_$nl"; else read_file "$f_"; fi
  done
  set -f; o_=$IFS; IFS=$nl; set -- $b_; IFS=$o_; set +f
  [ $# -gt 0 ] || return 0
  for f_ do shift; set -- "$@" "$R$f_"; done
  # stat's lines split in memory (a `read` loop would take them a byte per system call); no
  # path here holds a newline or `|` (those went to read_file): path and size end each line
  w_=''; ws_=''; t_=$(stat -c "$FMT|%s" "$@" 2>/dev/null)
  set -f; o_=$IFS; IFS=$nl
  for s_ in $t_; do
    sz=${s_##*|}; s_=${s_%|*}; p_=${s_##*|}; printf '%s\n' "$s_"
    if [ "${sz:-0}" -gt __MAX__ ]; then echo "E|size|$sz|$p_"
    elif [ "${sz:-0}" -eq 0 ]; then printf 'F|'; head -c __MAX1__ < "$p_" | b64
      printf '|%s\n' "$p_"; READ="$READ${p_#"$R"}$nl"
    else w_="$w_$p_$nl"; ws_="$ws_|$sz|$p_"; READ="$READ${p_#"$R"}$nl"; fi
  done
  set -- $w_; IFS=$o_; set +f
  # one file: head writes no "==>" line, so it is an F record as read_file writes it
  if [ $# -eq 1 ]; then printf 'F|'; head -c __MAX1__ < "$1" | b64; printf '|%s\n' "$1"
  elif [ $# -gt 1 ]; then printf 'W|'; head -c __MAX1__ -- "$@" 2>/dev/null | b64
    printf '%s\n' "$ws_"; fi; }
# files to read, kept in RQ until read_queued reads them all with one read_files (one stat, one
# head, one base64); a path with a newline, which RQ cannot hold, is read at once. Only paths
# the probe chose itself (fixed ones, or named by root's manifests, unit and env files)
RQ=''
defer_read() { for f_ do [ -n "$f_" ] || continue
    case $f_ in *"$nl"*) read_file "$f_";; *) RQ="$RQ$f_$nl";; esac; done; }
# a file named by a process's arguments, read at once and alone (read_file): any user can start
# a process named like a component whose flags name /proc/self/cmdline or a file they keep
# changing, whose text must never reach the batch's split. A path the probe queued itself
# anyway is left to the batch (the same file, chosen by the probe)
read_argv() { for f_ do case $nl$RQ in *"$nl$f_$nl"*) ;; *) read_file "$f_";; esac; done; }
read_queued() { set -f; o_=$IFS; IFS=$nl; set -- $RQ; IFS=$o_; set +f; RQ=''
  [ $# -eq 0 ] || read_files "$@"; }
# concatenate the regular files among the arguments (never a FIFO: cat would wait forever),
# each after head's "==> NAME <==" line when there are several: head ends a file's last line
# before the next header, so a file without a final newline is not joined to the next one
catf() { for f_ do shift; [ -f "$f_" ] && set -- "$@" "$f_"; done
  [ $# -eq 0 ] || head -c __MAX1__ -- "$@"; :; }
# value of a flag in a static-pod manifest's command/args list (kubeadm's "- --f=v" form), the
# last occurrence; several flags with one sed: `mfvals FILE --a --b` sets M1 (of --a), M2 (of --b)
mfvals() { m_=$1; shift; i_=0
  for fl_ do shift; i_=$((i_ + 1)); eval "M$i_=''"
    set -- "$@" -e "s/^[[:space:]]*-[[:space:]]*[\"']\{0,1\}$fl_=\([^\"']*\)[\"']\{0,1\}[[:space:]]*\$/$i_|\1/p"; done
  [ -f "$R$m_" ] || return 0
  while IFS= read -r l_; do [ -n "$l_" ] && eval "M${l_%%|*}=\${l_#*|}"; done <<EOF_MF
$(sed -n "$@" "$R$m_")
EOF_MF
}
# the host path behind a container path, from a static-pod manifest's hostPath volumes and the
# volumeMounts (with subPath) naming them; the longest covering mountPath wins; prints nothing when
# no hostPath volume covers the path. Block-style YAML, as kubeadm and kubectl write it.
host_path() { [ -f "$R$1" ] || return 0
  awk -v want="$2" '
  function ind(s) { match(s, /^ */); return RLENGTH }
  function val(s) { sub(/^[^:]*:[ \t]*/, "", s); sub(/[ \t]+#.*$/, "", s); sub(/[ \t]+$/, "", s)
    gsub(/^["\047]|["\047]$/, "", s); return s }
  function close_item() { if (sect == "m" && nm != "") { mount[nm] = mp; subp[nm] = sp }
    if (sect == "v" && nm != "" && hp != "") host[nm] = hp
    nm = mp = sp = hp = ""; inhp = 0 }
  /^[ \t]*(#.*)?$/ { next }
  { line = $0; i = ind(line) }
  sect != "" && (i < sind || (i == sind && line !~ /^ *- /)) { close_item(); sect = "" }
  line ~ /^ *(- +)?(volumeMounts|volumes):[ \t]*$/ {
    close_item(); sect = (line ~ /volumeMounts/) ? "m" : "v"
    match(line, /^ *(- +)?/); sind = RLENGTH; kind = 0; next }
  sect == "" { next }
  line ~ /^ *- / && (kind == 0 || i < kind) {
    close_item(); match(line, /^ *- +/); kind = RLENGTH
    line = sprintf("%" kind "s", "") substr(line, kind + 1); i = kind }
  { key = line; sub(/^ */, "", key); sub(/:.*/, "", key); gsub(/["\047]/, "", key) }
  i == kind { inhp = (key == "hostPath")
    if (key == "name") nm = val(line); else if (key == "mountPath") mp = val(line)
    else if (key == "subPath") sp = val(line)
    else if (inhp && line ~ /\{/ && match(line, /path:[ \t]*[^,} \t]+/)) hp = val(substr(line, RSTART, RLENGTH)) }
  i > kind && inhp && key == "path" { hp = val(line) }
  END { close_item(); best = -1
    for (n in mount) { m = mount[n]; sub(/\/+$/, "", m)
      if (!(n in host) || !(want == m || index(want, m "/") == 1) || length(m) <= best) continue
      best = length(m); h = host[n]; sub(/\/+$/, "", h); if (subp[n] != "") h = h "/" subp[n]
      out = h substr(want, length(m) + 1) }
    if (best >= 0) print out }' "$R$1"; }
# "pid argv0 ..." for every process: one ps call on a node, a /proc walk where ps cannot help
# (a ps without -o, such as busybox's, or the test tree)
list_procs() {
  if [ -z "$R" ] && ps -ww -e -o pid= -o args= 2>/dev/null; then :
  else for d in "$R"/proc/[0-9]*; do
      [ -r "$d/cmdline" ] || continue
      printf '%s ' "${d##*/}"; tr '\000' '\n' < "$d/cmdline" 2>/dev/null | head -n 1
    done; fi; }
# boot time from /proc/stat with shell builtins
bt=''
while read -r k_ v_ r_; do case $k_ in btime*) bt=$v_; break;; esac; done 2>/dev/null <"$R/proc/stat"
# (getconf's output or 100 when it fails; one process, the substitution's own)
tk_=$(getconf CLK_TCK 2>/dev/null) || tk_=100
echo "T|$bt|$tk_"
PIDS=''
# the listing split in memory (a `read` loop takes it a byte per system call, and ps lists
# every process's whole command line); each line's pid and argv0 as `read pid a0 rest` took them
PL_=$(list_procs)
set -f; ifs_=$IFS; IFS=$nl
for l_ in $PL_; do IFS=$ifs_
  l_=${l_#"${l_%%[! __TAB__]*}"}; pid=${l_%%[ __TAB__]*}; a0=${l_#"$pid"}
  a0=${a0#"${a0%%[! __TAB__]*}"}; a0=${a0%%[ __TAB__]*}
  n=${a0##*/}
  case "$n" in
    __COMPONENTS__)
      [ -r "$R/proc/$pid/cmdline" ] || continue
      # a process that exited since ps listed it leaves an empty cmdline: not a running component
      c=$(b64 < "$R/proc/$pid/cmdline" 2>/dev/null); [ -n "$c" ] || continue
      # field 20 after the command name (which may hold spaces or parentheses): its start time
      t=''; if read -r s_ 2>/dev/null < "$R/proc/$pid/stat"; then
        set -f; set -- ${s_##*) }; set +f; t=${20}; fi
      printf 'P|%s|%s|%s|%s\n' "$pid" "$n" "$t" "$c"
      g_=''; while IFS= read -r l_ || [ -n "$l_" ]; do case $l_ in *kubepods*) g_=1; break;; esac
      done 2>/dev/null < "$R/proc/$pid/cgroup"; [ -z "$g_" ] || echo "G|$pid"
      PIDS="$PIDS $n:$pid" ;;
  esac
done
IFS=$ifs_; set +f; PL_=''
# every pid of a component: the controller picks which one is the component (Facts.process)
pids_of() { for e in $PIDS; do [ "${e%%:*}" = "$1" ] && echo "${e#*:}"; done; }

MDIR=/etc/kubernetes/manifests
# (the manifests are read with the other files the probe chose itself, by read_queued)
stat_path $MDIR
K8S=/etc/kubernetes
stat_paths $K8S/admin.conf $K8S/super-admin.conf $K8S/scheduler.conf $K8S/controller-manager.conf \
  $K8S/kubelet.conf $K8S/proxy.conf
stat_tree /etc/kubernetes/pki

# etcd: data dir (running and configured), and only the ETCD_* variables the checks read
mfvals $MDIR/etcd.yaml --data-dir; stat_paths /var/lib/etcd "$M1"
for EPID in $(pids_of etcd); do
  argvals "$EPID" --data-dir; stat_path "$A1"
  [ -r "$R/proc/$EPID/environ" ] || continue
  # the variables read once (one tr), the wanted ones picked in the shell's memory (lines, as
  # a grep of them would take them), then ETCD_DATA_DIR (the last one) among them; over
  # 8 KiB (anyone can name a process etcd) grep picks them, as each pick here copies the kept
  ea_=$(tr '\000' '\n' < "$R/proc/$EPID/environ"); ev=''; dd_=''
  set -f; ifs_=$IFS; IFS=$nl
  if [ "${#ea_}" -le 8192 ]; then
    for l_ in $ea_; do
      case $l_ in ETCD_CERT_FILE=*|ETCD_KEY_FILE=*|ETCD_CLIENT_CERT_AUTH=*|ETCD_AUTO_TLS=*|\
        ETCD_PEER_CERT_FILE=*|ETCD_PEER_KEY_FILE=*|ETCD_PEER_CLIENT_CERT_AUTH=*|\
        ETCD_PEER_AUTO_TLS=*|ETCD_TRUSTED_CA_FILE=*|ETCD_DATA_DIR=*) ev="${ev:+$ev$nl}$l_";; esac
    done
  else ev=$(printf '%s\n' "$ea_" | grep -E '^ETCD_(CERT_FILE|KEY_FILE|CLIENT_CERT_AUTH|AUTO_TLS|PEER_CERT_FILE|PEER_KEY_FILE|PEER_CLIENT_CERT_AUTH|PEER_AUTO_TLS|TRUSTED_CA_FILE|DATA_DIR)=')
  fi
  for l_ in $ev; do case $l_ in ETCD_DATA_DIR=*) dd_=${l_#ETCD_DATA_DIR=};; esac; done
  IFS=$ifs_; set +f; ea_=''
  printf 'V|%s|' "$EPID"; [ -z "$ev" ] || printf '%s\n' "$ev" | b64; echo
  stat_path "$dd_"
done

# kube-apiserver: audit policy and authorization config content, encryption config stat + provider names
enc_names() { [ -n "$1" ] || return 0
  if [ -f "$R$1" ]; then st "$R$1"; printf 'N|'
    grep -o -E '(resources|identity|aescbc|aesgcm|secretbox|kms)"?[[:space:]]*:' "$R$1" | tr -d '": \t' | b64
    printf '|%s\n' "$R$1"
  else stat_path "$1"; fi; }
# the running server's files as its container sees them (/proc/<pid>/root); the manifest's on the
# host, through the manifest's hostPath volumes
EPC_PID=''
for APID in $(pids_of kube-apiserver); do
  argvals "$APID" --audit-policy-file --authorization-config --encryption-provider-config
  v2=$A2; v3=$A3; [ -n "$EPC_PID" ] || { EPC_PID=$APID; EPC=$v3; }
  case $A1 in /*) read_argv "/proc/$APID/root$A1";; esac
  case $v2 in /*) read_argv "/proc/$APID/root$v2";; esac
  case $v3 in /*) enc_names "/proc/$APID/root$v3";; esac
done
AMF=$MDIR/kube-apiserver.yaml
mfvals $AMF --audit-policy-file --authorization-config --encryption-provider-config
for flag in 1 2 3; do
  eval "v=\$M$flag"; [ -n "$v" ] || continue
  h=$(host_path $AMF "$v")
  [ -n "$h" ] && printf 'H|kube-apiserver|%s|%s\n' "$(printf '%s' "$v" | b64)" "$h"
  if [ "$flag" = 3 ]; then enc_names "${h:-$v}"; else defer_read "${h:-$v}"; fi
done

# kube-scheduler: the KubeSchedulerConfiguration its --config names (with --config the scheduler
# ignores its deprecated flags, --profiling among them), as the running container sees it and
# on the host through the manifest's hostPath volumes
for SPID in $(pids_of kube-scheduler); do
  argvals "$SPID" --config; v=$A1; case $v in /*) read_argv "/proc/$SPID/root$v";; esac
done
SMF=$MDIR/kube-scheduler.yaml
mfvals $SMF --config; v=$M1
if [ -n "$v" ]; then h=$(host_path $SMF "$v")
  [ -n "$h" ] && printf 'H|kube-scheduler|%s|%s\n' "$(printf '%s' "$v" | b64)" "$h"
  defer_read "${h:-$v}"; fi

# kubelet: unit files and drop-ins of both locations, env files, config files, kubeconfig, CA
# (and the static-pod manifests), all read together by read_queued
set --
if [ -d "$R$MDIR" ]; then
  for f in "$R$MDIR"/* ; do [ -f "$f" ] && set -- "$@" "${f#"$R"}"; done; fi
set -- "$@" /lib/systemd/system/kubelet.service /usr/lib/systemd/system/kubelet.service /etc/systemd/system/kubelet.service
for d in /usr/lib/systemd/system/kubelet.service.d /lib/systemd/system/kubelet.service.d /etc/systemd/system/kubelet.service.d; do
  if [ -d "$R$d" ]; then for f in "$R$d"/*.conf; do [ -f "$f" ] && set -- "$@" "${f#"$R"}"; done
  else echo "M|$R$d"; fi
done
defer_read "$@" /var/lib/kubelet/kubeadm-flags.env /etc/default/kubelet /etc/sysconfig/kubelet /var/lib/kubelet/config.yaml
# --config and --config-dir values of the unit files and env files (sed: h/g, so each is
# taken from the unchanged line)
CFGS=''; CDIRS=''
set -- "$R"/usr/lib/systemd/system/kubelet.service.d/*.conf "$R"/lib/systemd/system/kubelet.service.d/*.conf \
  "$R"/etc/systemd/system/kubelet.service.d/*.conf "$R"/var/lib/kubelet/kubeadm-flags.env \
  "$R"/etc/default/kubelet "$R"/etc/sysconfig/kubelet
set -f   # after the globs: a command substitution inherits it
for l_ in $(catf "$@" 2>/dev/null |
  sed -n -e '/^==> .* <==$/d' -e h -e 's/.*--config=\([^ "]*\).*/C\1/p' -e g \
    -e 's/.*--config-dir=\([^ "]*\).*/D\1/p'); do
  case $l_ in C*) CFGS="$CFGS ${l_#C}";; D*) CDIRS="$CDIRS ${l_#D}";; esac
done
set +f
CNIDIR=/etc/cni/net.d
# (those of the unit and env files join the batch; those of a kubelet's arguments are read alone)
for c in $CFGS; do defer_read "$c"; done
for d in $CDIRS; do
  if [ -d "$R$d" ]; then for f in "$R$d"/*.conf; do [ -f "$f" ] && defer_read "${f#"$R"}"; done
  else echo "M|$R$d"; fi
done
KCFGS=''
for KPID in $(pids_of kubelet); do
  argvals "$KPID" --config --config-dir --kubeconfig --client-ca-file --cni-conf-dir
  KCFGS="$KCFGS $A1"
  stat_paths "$A3" "$A4"
  [ -n "$A5" ] && CNIDIR=$A5
  read_argv "$A1"; d=$A2; [ -n "$d" ] || continue
  if [ -d "$R$d" ]; then for f in "$R$d"/*.conf; do [ -f "$f" ] && read_argv "${f#"$R"}"; done
  else echo "M|$R$d"; fi
done
SEEN=$nl
for c in $CFGS $KCFGS /var/lib/kubelet/config.yaml; do
  case $SEEN in *"$nl$c$nl"*) continue;; esac; SEEN="$SEEN$c$nl"
  [ -f "$R$c" ] || continue
  v_=$(sed -n 's/^[[:space:]]*clientCAFile:[[:space:]]*["'\'']\{0,1\}\([^"'\'' ]*\).*/\1/p' "$R$c")
  stat_path "${v_##*"$nl"}"
done
stat_path /etc/kubernetes/pki/ca.crt
# kernel tunables as the next boot sets them: every sysctl file a boot reads (a masking symlink
# to /dev/null included: it hides the same name further down), only its lines setting a key
# the kubelet's protectKernelDefaults requires (harden.node.sysctl_boot)
# One grep reads every regular one ("path:line"); a file's lines are then picked from it in
# the shell, so a file without such a line (most) costs no process. Paths with a colon keep
# a grep of their own (a "path:" prefix could then be another file's).
set --
for f in __SYSCTL_FILES__; do [ -f "$f" ] && set -- "$@" "$f"; done
XL=''; XONE=''
case "$*" in *:*) XONE=1;; *) [ $# -eq 0 ] || XL=$(grep -E -H '__SYSCTL_KEYS__' "$@" 2>/dev/null);; esac
for f in __SYSCTL_FILES__; do
  [ -f "$f" ] || [ -L "$f" ] || continue
  m_=''
  if [ -f "$f" ] && [ -n "$XONE" ]; then m_=$(grep -E '__SYSCTL_KEYS__' "$f" 2>/dev/null; echo x)
    m_=${m_%x}
  elif [ -f "$f" ] && [ -n "$XL" ]; then
    while IFS= read -r l_; do case $l_ in "$f:"*) m_="$m_${l_#"$f:"}$nl";; esac; done <<EOF_X
$XL
EOF_X
  fi
  if [ -z "$m_" ]; then printf 'X||%s\n' "$f"
  else printf 'X|'; printf '%s' "$m_" | head -c 65536 | b64; printf '|%s\n' "$f"; fi
done
stat_tree "$CNIDIR"
stat_tree /var/lib/cni/networks

# kube-proxy: its config file and the kubeconfig it names (clientConnection.kubeconfig, the only
# `kubeconfig` key of a KubeProxyConfiguration) or --kubeconfig names, as its container sees them;
# the kubeconfig candidates on the host
for PPID_ in $(pids_of kube-proxy); do
  PROOT=/proc/$PPID_/root; k=''
  argvals "$PPID_" --config --kubeconfig; v=$A1; kv=$A2
  if [ -n "$v" ]; then read_argv "$PROOT$v"
    [ -f "$R$PROOT$v" ] && k=$(sed -n 's/^[[:space:]]*["'\'']\{0,1\}kubeconfig["'\'']\{0,1\}[[:space:]]*:[[:space:]]*["'\'']\{0,1\}\([^"'\'' ,}]*\).*/\1/p' "$R$PROOT$v")
    k=${k##*"$nl"}
    case $k in /*) stat_path "$PROOT$k";; esac
  fi
  case $kv in /*) stat_path "$PROOT$kv";; esac
done
stat_paths /etc/kubernetes/kube-proxy.conf /var/lib/kube-proxy/kubeconfig.conf

# the queued files read before the census, which can take seconds on a large keyspace
read_queued
# encryption at rest as stored: etcd values counted per resource and provider:key, read as the
# first running API server does (values and keys never leave the node; see etcd_census.py)
for APID in $(pids_of kube-apiserver); do
  # the first server's flag, as read above (no second tr and awk for it)
  if [ "$APID" = "$EPC_PID" ]; then v=$EPC; else argvals "$APID" --encryption-provider-config; v=$A1; fi
  lay=''; case $v in /*) lay=$(enc_layout "$R/proc/$APID/root$v"); printf 'L|%s\n' "$lay";; esac
  etcd_census "$APID" "$(census_names "$lay")"; break
done

flush_stats
# section 5, started first: its answers collected at the end
cluster_collect
echo "END|"
"""


def _sysctl_key_pattern() -> str:
    """An ERE for an assignment of one of the kubelet's protected keys (`.` or `/` between the
    parts, an optional leading `-`)."""
    keys = "|".join(key.replace(".", "[./]") for key in KUBELET_TUNABLES)
    return f"^[[:space:]]*-?[[:space:]]*({keys})[[:space:]]*="


def build_probe_script(root: str = "", ask_cluster: bool = True) -> str:
    """The probe as one sh script. `root` prefixes every node path; it exists so tests can run the
    real script against a fake node tree, and is empty on real nodes. With `ask_cluster` off,
    a control plane that can name its cluster leaves section 5's shared reads (`get`,
    kubeadm-config) to another control plane of that cluster (harden.cis.cluster_reads); it
    still asks its own access reviews."""
    return _script(_PRELUDE + _CLUSTER_DEFS + _SCRIPT, root, ask_cluster)


def build_cluster_script(root: str = "") -> str:
    """Only the section-5 reads (header, I and K records, END): what the controller asks of
    another control plane of a cluster when the one that was to answer did not. Its three
    kubectl calls run at once, as in the probe (cluster_start, cluster_collect)."""
    return _script(_PRELUDE + _CLUSTER_DEFS + 'cluster_start\ncluster_collect\necho "END|"\n',
                   root, True)


def _script(text: str, root: str, ask_cluster: bool) -> str:
    body = (text.replace("__VERSION__", PROBE_VERSION).replace("__KINDS__", KUBECTL_KINDS)
            .replace("__REVIEWS__", access_reviews())
            .replace("__NO_KUBECTL__", _b64_text(NO_KUBECTL))
            .replace("__NO_ADMIN_CONF__", _b64_text(NO_ADMIN_CONF))
            .replace("__CENSUS__", etcd_census.SCRIPT.strip())
            .replace("__COMPONENTS__", "|".join(COMPONENTS))
            .replace("__SYSCTL_FILES__", " ".join(f'"$R"{d}/*.conf' for d in SYSCTL_DIRS)
                     + f' "$R"{SYSCTL_CONF}')
            .replace("__SYSCTL_KEYS__", _sysctl_key_pattern())
            .replace("__TAB__", "\t")
            .replace("__MAX1__", str(MAX_FILE_BYTES + 1)).replace("__MAX__", str(MAX_FILE_BYTES)))
    return (f"#!/bin/sh\n# harden fact probe v{PROBE_VERSION}\nR={shlex.quote(root)}\n"
            f"KASK={int(ask_cluster)}\n{body}")


def _b64_text(text: str) -> str:
    """A fixed message as the node's b64 would encode it (computed here: no process for it)."""
    return base64.b64encode(text.encode()).decode()


def access_reviews() -> str:
    """The SelfSubjectAccessReviews of CAN_I_QUERIES as one List (for `kubectl create -f -`):
    cluster-wide (no namespace, as `can-i -A`), core group (secrets and pods are core)."""
    items = [{"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": verb, "resource": resource}}}
             for verb, resource in (query.split(" ", 1) for query in CAN_I_QUERIES)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, separators=(",", ":"))


def can_i_answers(rc: int, output: str) -> dict[str, tuple[int, str]]:
    """What `kubectl auth can-i <query>` would have printed for each of CAN_I_QUERIES, from the
    reviews the probe's one `kubectl create` returned: (0, "yes"), or (1, "no") with kubectl's
    " - <reason>" and " - <evaluation error>"; a question without a review gets the call's
    exit status and output (an error, so no answer)."""
    reviews: dict[str, dict] = {}
    for obj in _json_objects(output):
        for review in (obj.get("items") or [] if obj.get("kind") == "List" else [obj]):
            spec = review.get("spec") if isinstance(review, dict) else None
            attrs = spec.get("resourceAttributes") if isinstance(spec, dict) else None
            status = review.get("status") if isinstance(review, dict) else None
            if isinstance(attrs, dict) and isinstance(status, dict):
                reviews[f"{attrs.get('verb')} {attrs.get('resource')}"] = status
    answers = {}
    for query in CAN_I_QUERIES:
        status = reviews.get(query)
        if status is None:
            answers[f"can-i {query}"] = (rc or 1, output)
        elif status.get("allowed") is True:
            answers[f"can-i {query}"] = (0, "yes")
        else:
            why = "".join(f" - {status[key]}" for key in ("reason", "evaluationError")
                          if status.get(key))
            answers[f"can-i {query}"] = (1, "no" + why)
    return answers


def _json_objects(text: str) -> list[dict]:
    """The JSON objects kubectl printed one after another (`create -o json` of a List prints
    each created object); stops at the first thing that is not one."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while True:
        at = len(text) - len(text[at:].lstrip())
        if at >= len(text):
            return found
        try:
            obj, at = decoder.raw_decode(text, at)
        except ValueError:
            return found
        if not isinstance(obj, dict):
            return found
        found.append(obj)


def gather_facts(session: Session, host: str, timeout: float = 120.0,
                 ask_cluster: bool = True) -> Facts:
    """Run the probe on a host over its Session (one exec, as root via become) and parse it.

    The script goes to `sh -s` on stdin (SCRIPT_COMMAND, as every node-side script), so a
    non-POSIX login shell never interprets it, and not in argv: there the node's `ps` would
    list it twice (the login shell's `-c` and sh's), and the probe's own process listing, which
    the shell's `read` takes a byte per system call, cost a worker about 18 ms of CPU more.
    Any failure is a HostError naming the host: the caller reports the host, not a verdict.
    `ask_cluster` off: section 5's shared reads are left to another control plane (see
    build_probe_script).
    """
    return _run_probe(session, host, build_probe_script(ask_cluster=ask_cluster), timeout)


def gather_cluster_facts(session: Session, host: str, timeout: float = 60.0) -> Facts:
    """Only the section-5 reads of a control plane (build_cluster_script), in one exec."""
    return _run_probe(session, host, build_cluster_script(), timeout)


def _run_probe(session: Session, host: str, script: str, timeout: float) -> Facts:
    result = session.run(SCRIPT_COMMAND, become=True, stdin=script.encode(), timeout=timeout)
    if result.rc != 0:
        # its end says why (a login banner the OpenSSH transport passes on comes first)
        error = result.stderr.decode("utf-8", "replace").strip()[-300:]
        raise HostError(host, f"fact probe exited with {result.rc}: {error}")
    try:
        facts = parse_probe_output(result.stdout.decode("utf-8", "replace"))
    except ProbeParseError as exc:
        raise HostError(host, f"fact probe output unusable: {exc}") from exc
    problems = [str(e) for e in facts.unreadable] + _yaml_problems(facts)
    if problems:
        raise HostError(host, "; ".join(problems))
    return facts


def _yaml_problems(facts: Facts) -> list[str]:
    """Every file read is scanned before any check parses it as YAML (limits.check_yaml)."""
    problems = []
    for path, text in facts.contents.items():
        try:
            check_yaml(text, path)
        except NodeDataError as exc:
            problems.append(str(exc))
    return problems


@dataclass
class FileStat:
    path: str
    mode: int          # permission bits, e.g. 0o600
    uid: int
    gid: int
    user: str
    group: str
    inode: str         # "dev:ino": two paths to the same file (/lib -> /usr/lib) count once
    type: str          # "regular file", "directory", "symbolic link", ...
    mtime: int = 0     # seconds since the epoch
    link: str | None = None   # set on a symlink's target stat: the link's text, for reports

    @property
    def owner(self) -> str:
        return f"{self.user}:{self.group}"


@dataclass
class Process:
    pid: int
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    started: float | None = None    # epoch seconds; None when /proc/<pid>/stat was unreadable
    in_pod: bool = False            # its cgroup is under kubepods: a static pod or a workload


@dataclass
class Facts:
    """Everything the probe saw on one host, keyed by the node's own paths."""

    processes: dict[str, list[Process]] = field(default_factory=dict)
    stats: dict[str, FileStat] = field(default_factory=dict)
    # symlink path -> the stat of what it leads to (path stays the link's; `link` is its text)
    targets: dict[str, FileStat] = field(default_factory=dict)
    dangling: dict[str, str] = field(default_factory=dict)     # symlink path -> its text
    missing: set[str] = field(default_factory=set)
    contents: dict[str, str] = field(default_factory=dict)
    encryption_providers: dict[str, list[list[str]]] = field(default_factory=dict)
    kubectl: dict[str, tuple[int, str]] = field(default_factory=dict)
    census: etcd_census.Census | None = None      # etcd values by provider:key (control planes)
    # component -> {path its manifest names (container view): the host path behind it}
    host_paths: dict[str, dict[str, str]] = field(default_factory=dict)
    # files the probe would not read: over limits.MAX_FILE_BYTES, or not regular files
    unreadable: list[NodeDataError] = field(default_factory=list)
    # files read together whose text could not be told apart (one changed size while the probe
    # read it): path -> why; the checks that read node files report ERROR naming them
    unread: dict[str, str] = field(default_factory=dict)
    clock: tuple[int, int] | None = None      # (boot time epoch, clock ticks per second)
    # sysctl file -> its lines setting a key of sysctl_boot.KUBELET_TUNABLES (every file a
    # boot reads is a key, also with no such line)
    sysctl_files: dict[str, str] = field(default_factory=dict)
    complete: bool = False
    cluster_ca: str | None = None     # sha256 of the cluster CA, on a control plane with kubectl
    kubectl_deferred: bool = False    # section 5 left to another control plane of the cluster
    kubectl_from: str | None = None   # the host whose `get`/kubeadm-config these are, when not this one
    kubectl_cluster: str | None = None  # the harden_cluster they were shared within

    def process(self, name: str, manifest_argv: list[str] | None = None) -> Process | None:
        """The component's process among every process of that name.

        A node can run a second etcd or apiserver as an ordinary pod, so the first pid is not
        necessarily the component. With its static-pod manifest, the process running exactly the
        manifest's command+args is it; failing that (a manifest edited since the pod started),
        the newest one started from the manifest's binary. Without a manifest, a process outside
        any pod (a systemd service) is preferred over pod containers.
        """
        found = self.processes.get(name) or []
        if not found:
            return None
        if manifest_argv:
            exact = [p for p in found if p.argv == manifest_argv]
            same_binary = [p for p in found if p.argv[0] == manifest_argv[0]]
            return exact[0] if exact else _newest(same_binary or found)
        return next((p for p in found if not p.in_pod), found[0])

    def followed(self, path: str) -> FileStat | None:
        """What a component opening `path` finds: for a symlink its target (os.Stat follows
        links), None when the link leads nowhere; else the path's own stat."""
        stat = self.stats.get(path)
        if stat is not None and stat.type == "symbolic link":
            return self.targets.get(path)
        return stat

    def kubectl_objects(self) -> tuple[list[dict] | None, str]:
        """The cluster objects from `kubectl get`, or None and why they are not available."""
        if "get" in self.kubectl:
            rc, out = self.kubectl["get"]
            if rc != 0:
                return None, f"kubectl failed (exit {rc}): {kubectl_error(out)}"
            try:
                return list(json.loads(out).get("items", [])), ""
            except (ValueError, AttributeError) as exc:
                return None, f"kubectl output is not JSON: {exc}"
        rc, why = self.kubectl.get("unavailable", (0, "the probe did not query the cluster"))
        return None, why

    def can_i(self, query: str) -> bool | None:
        """`kubectl auth can-i <query>` for any authenticated user; None when not asked or
        the answer is neither yes nor no (an error)."""
        if f"can-i {query}" not in self.kubectl:
            return None
        answer = self.kubectl[f"can-i {query}"][1].strip().splitlines()
        last = answer[-1].strip().lower() if answer else ""
        return {"yes": True, "no": False}.get(last)


def _newest(processes: list[Process]) -> Process:
    """The last started (a restarted static pod is newer than the workloads it sits among)."""
    return max(processes, key=lambda p: (p.started or 0.0, p.pid))


class ProbeParseError(ValueError):
    """The probe output is not what the script writes (truncated, or not from this probe)."""


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProbeParseError(f"bad base64 field: {exc}") from exc


def parse_probe_output(output: str) -> Facts:
    """Facts from the probe's stdout; raises ProbeParseError on output the probe cannot produce.

    Whatever precedes the header line is dropped: a login shell's rc file (~/.bashrc) may print
    before the probe runs, and that text is not the probe's.
    """
    lines = output.splitlines()
    start = next((n for n, line in enumerate(lines) if line.startswith("HARDEN-PROBE|")), None)
    if start is None:
        raise ProbeParseError("probe output has no HARDEN-PROBE header line")
    lines = lines[start:]
    header = lines[0].split("|", 2)
    if header[1] != PROBE_VERSION:
        raise ProbeParseError(f"probe version {header[1]!r}, expected {PROBE_VERSION!r}")
    root = header[2] if len(header) > 2 else ""
    facts = Facts()
    for number, line in enumerate(lines[1:], start=start + 2):
        if line:
            try:
                _parse_line(facts, line, root)
            except (IndexError, ValueError) as exc:
                raise ProbeParseError(f"probe output line {number}: {exc}: {line[:120]!r}") from exc
    return facts


def _strip(path: str, root: str) -> str:
    return path[len(root):] if root and path.startswith(root) else path


def _parse_line(facts: Facts, line: str, root: str) -> None:
    tag, _, rest = line.partition("|")
    if tag == "T":
        boot, ticks = rest.split("|", 1)
        facts.clock = (int(boot), int(ticks or 100)) if boot else None
    elif tag == "P":
        pid, name, start, raw = rest.split("|", 3)
        argv = [a.decode("utf-8", "replace") for a in _b64(raw).split(b"\0")]
        while argv and argv[-1] == "":
            argv.pop()
        if not argv or not argv[0]:
            return     # it exited while the probe read it: not a running component
        started = facts.clock[0] + int(start) / facts.clock[1] if start and facts.clock else None
        facts.processes.setdefault(name, []).append(Process(int(pid), name, argv, started=started))
    elif tag == "G":
        for proc in _with_pid(facts, int(rest)):
            proc.in_pod = True
    elif tag == "V":
        pid, raw = rest.split("|", 1)
        env = dict(l.split("=", 1) for l in _b64(raw).decode("utf-8", "replace").splitlines() if "=" in l)
        for proc in _with_pid(facts, int(pid)):
            proc.env = env
    elif tag == "S":
        mode, uid, gid, user, group, inode, mtime, ftype, path = rest.split("|", 8)
        path = _strip(path, root)
        facts.stats[path] = FileStat(path, int(mode, 8), int(uid), int(gid), user, group, inode,
                                     ftype, int(mtime))
    elif tag == "Y":
        text, mode, uid, gid, user, group, inode, mtime, ftype, path = rest.split("|", 9)
        path = _strip(path, root)
        facts.targets[path] = FileStat(path, int(mode, 8), int(uid), int(gid), user, group, inode,
                                       ftype, int(mtime), _b64(text).decode("utf-8", "replace"))
    elif tag == "Z":
        text, path = rest.split("|", 1)
        facts.dangling[_strip(path, root)] = _b64(text).decode("utf-8", "replace")
    elif tag == "M":
        facts.missing.add(_strip(rest, root))
    elif tag == "F":
        raw, path = rest.split("|", 1)
        _add_content(facts, _strip(path, root), _b64(raw))
    elif tag == "W":
        raw, *fields = rest.split("|")
        if not fields or len(fields) % 2:
            raise ValueError("a W record names each file with its size")
        files = [(int(size), path) for size, path in zip(fields[0::2], fields[1::2])]
        found, changed = split_read(_b64(raw), files)
        for path, content in found:
            _add_content(facts, _strip(path, root), content)
        for path, why in changed:
            facts.unread[_strip(path, root)] = why
    elif tag == "E":
        kind, detail, path = rest.split("|", 2)
        path = _strip(path, root)
        facts.unreadable.append(too_large(path, int(detail)) if kind == "size"
                                else not_regular(path, detail or "special file"))
    elif tag == "N":
        raw, path = rest.split("|", 1)
        facts.encryption_providers[_strip(path, root)] = _provider_entries(
            _b64(raw).decode("ascii", "replace").split())
    elif tag == "X":
        raw, path = rest.split("|", 1)
        facts.sysctl_files[_strip(path, root)] = _b64(raw).decode("utf-8", "replace")
    elif tag == "H":
        component, raw, host = rest.split("|", 2)
        facts.host_paths.setdefault(component, {})[_b64(raw).decode("utf-8", "replace")] = host
    elif tag in ("C", "Q", "L", "O"):  # the etcd census (harden.node.etcd_census)
        if facts.census is None:
            facts.census = etcd_census.Census()
        etcd_census.parse_line(facts.census, line)
    elif tag == "I":
        if not _SHA256.fullmatch(rest):
            raise ValueError("not a SHA-256 digest")
        facts.cluster_ca = rest
    elif tag == "K":
        name, rc, raw = rest.split("|", 2)
        text = _b64(raw).decode("utf-8", "replace")
        if name == "deferred":
            facts.kubectl_deferred = True
        elif name == "can-i":        # every question's review, from one kubectl call
            facts.kubectl.update(can_i_answers(int(rc), text))
        else:
            facts.kubectl[name] = (int(rc), text)
    elif tag == "END":
        facts.complete = True
    else:
        raise ValueError(f"unknown record tag {tag!r}")


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _add_content(facts: Facts, path: str, content: bytes) -> None:
    if len(content) > MAX_FILE_BYTES:         # grew after it was sized
        facts.unreadable.append(too_large(path, len(content)))
    else:
        facts.contents[path] = content.decode("utf-8", "replace")


def split_read(blob: bytes, files: list[tuple[int, str]]
               ) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """Each file's content from one `head -c` over several files (a W record), and the files
    it could not be told for. head writes a `==> name <==` line before each file (after a
    newline from the second on; newer coreutils quote a name with a space: '...'); `files`
    are the (size by stat, path) of each, in order. The split goes by those
    sizes, each header checked where they put it, so a line in a file that looks like a header
    cannot pass its text off as another file's. A file that changed size between its stat and
    its read, or vanished (kubeadm rewriting a manifest), makes them miss: from that file on
    nothing is guessed; each is returned with why (path, message) instead of its content, so
    only the checks reading them are affected, never the whole host. No header where the
    sizes put one means the file before it changed, so it is out too; another file's header
    there means this one vanished."""
    found, at = [], 0
    for number, (size, path) in enumerate(files):
        start = _header_end(blob, at, number, path, [p for _, p in files[number + 1:]])
        if start < 0:
            first = number if start == _OTHER_FILE else max(number - 1, 0)
            return found[:first], _changed(files[first:])
        if start + size > len(blob):
            return found, _changed(files[number:])
        found.append((path, blob[start:start + size]))
        at = start + size
    if at != len(blob):
        return found[:-1], _changed(files[-1:])
    return found, []


def _changed(files: list[tuple[int, str]]) -> list[tuple[str, str]]:
    return [(path, f"{path} changed while the probe read it (stat said {size} bytes)")
            for size, path in files]


_NO_HEADER, _OTHER_FILE = -1, -2


def _header_end(blob: bytes, at: int, number: int, path: str, later: list[str]) -> int:
    """Where the content after head's header line for `path` at `at` starts; _NO_HEADER when
    no header line is there, _OTHER_FILE when one for a later file is (this one vanished). A
    name quoted some other way (coreutils' shell-escape style) is taken as this file's."""
    lead = b"==> " if number == 0 else b"\n==> "
    if not blob.startswith(lead, at):
        return _NO_HEADER
    end = blob.find(b" <==\n", at + len(lead))
    if end < 0 or b"\n" in blob[at + len(lead):end]:
        return _NO_HEADER
    name = blob[at + len(lead):end].decode("utf-8", "replace")
    if name not in (path, f"'{path}'") and any(name in (p, f"'{p}'") for p in later):
        return _OTHER_FILE
    return end + len(b" <==\n")


def _with_pid(facts: Facts, pid: int) -> list[Process]:
    return [p for procs in facts.processes.values() for p in procs if p.pid == pid]


def _provider_entries(tokens: list[str]) -> list[list[str]]:
    """Provider names per `resources` entry, in file order (the first one encrypts writes).
    The top-level `resources:` key also yields a token; it starts an entry with no providers,
    which is dropped (the API server rejects an entry without providers anyway)."""
    entries: list[list[str]] = []
    for token in tokens:
        if token == "resources":
            entries.append([])
        elif token in PROVIDER_NAMES:
            if not entries:
                entries.append([])
            entries[-1].append(token)
    return [entry for entry in entries if entry]


_KLOG_PREFIX = re.compile(r"^[EWIF]\d{4} [\d:.]+\s+\d+ [\w.]+:\d+\] ")
_KLOG_ERR = re.compile(r'err="([^"]*)"')


def kubectl_error(output: str) -> str:
    """kubectl's last distinct complaint, without klog's timestamp/pid/file prefix and repeats,
    so a report says "the server could not find the requested resource", not a log dump."""
    lines = []
    for raw in output.strip().splitlines():
        line = _KLOG_PREFIX.sub("", raw.strip())
        quoted = _KLOG_ERR.search(line)
        line = quoted.group(1) if quoted else line
        if line and line not in lines:
            lines.append(line)
    return (lines[-1] if lines else "no output")[:300]
