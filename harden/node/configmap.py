"""ConfigMap keys as things a run backs up, changes, records and restores, like files.

kubeadm's source of truth (`kube-system/kubeadm-config`, `kube-system/kubelet-config`) lives in
the API, not on a node, yet a run that changes it must back it up, a rollback must put it back
byte for byte, and a manual rollback must see whether someone changed it since. So one key of
one ConfigMap gets a path of its own, `/configmap:<namespace>/<name>/<key>`, and the backup
index (kind `cm`, sha256 of the value, `-` when the object does not exist) treats it like a
file: the copies live under the run's backup dir at that path. Every sh helper that meets such
a path dispatches to the functions here, which reach the API with kubectl and the node's
admin.conf (control planes only). Nothing at that path is ever touched on the node's disk.

An earlier change of the same run may have restarted the API server (its manifest, etcd's),
so kubectl calls that cannot reach it are retried for about two minutes; the apply script puts
ConfigMap changes before the file changes of its batch, and a rollback restores ConfigMap keys
only once the restored static pods are healthy again.

Writes are merge patches that carry the resourceVersion read just before, so a concurrent
writer gets 409 Conflict and the write is retried on the new version (at most 5 times), but
only while the key still holds what the plan was made from: a key someone else changed since
harden read it fails the task ("run again"), never overwritten.
"""

from __future__ import annotations

import re

PREFIX = "/configmap:"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
# An API server that does not answer (restarting after its manifest changed) is waited for,
# 2 s between tries: about two minutes, then the script fails. $HB_KC_TRIES overrides it (the
# rollback's look at the current state must not wait: the API server may be the thing broken).
API_WAIT_TRIES = 60
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def path_of(namespace: str, name: str, key: str) -> str:
    """The backup-index path of one ConfigMap key (parts checked: they become shell words
    and a jsonpath)."""
    for part in (namespace, name, key):
        if not _PART.match(part):
            raise ValueError(f"not a ConfigMap namespace/name/key part: {part!r}")
    return f"{PREFIX}{namespace}/{name}/{key}"


def is_configmap_path(path: str) -> bool:
    return path.startswith(PREFIX)


def parts_of(path: str) -> tuple[str, str, str]:
    namespace, name, key = path[len(PREFIX):].split("/", 2)
    return namespace, name, key


def label(path: str) -> str:
    """How people see it: `configmap kube-system/kubeadm-config (ClusterConfiguration)`."""
    namespace, name, key = parts_of(path)
    return f"configmap {namespace}/{name} ({key})"


# hb_cm_read PATH OUT: the key's value into OUT (exact bytes; empty when the key is absent) and
# hb_rv to the object's resourceVersion (empty: no such object); non-zero on a kubectl error.
# hb_cm_record PATH LIST [DIR]: the state now ("cm - - - sha256|-|? path", ? when kubectl
# failed) appended to LIST, the value copied under $HB/DIR (default after).
# hb_json_string FILE: FILE's bytes as a JSON string (for a merge patch built on the node).
# hb_cm_patch PATH PATCH_WITH___HARDEN_RV__ : the merge patch at the current resourceVersion,
# retried on 409 Conflict; the caller's check (hb_cm_ok) decides whether to go on.
CONFIGMAP_SH = r"""hb_kc() {
  hb_try=0
  while :; do
    hb_kerr=$(mktemp) || return 1
    if kubectl --kubeconfig=__ADMIN__ --request-timeout=20s "$@" < /dev/null 2>"$hb_kerr"; then
      rm -f -- "$hb_kerr"; return 0
    fi
    if grep -qi 'refused\|reset by peer\|EOF\|timeout\|ServiceUnavailable\|TLS handshake' \
        "$hb_kerr" && [ "$hb_try" -lt "${HB_KC_TRIES:-__TRIES__}" ]; then
      hb_try=$((hb_try + 1)); rm -f -- "$hb_kerr"; sleep 2; continue
    fi
    cat -- "$hb_kerr" >&2; rm -f -- "$hb_kerr"; return 1
  done
}
hb_cm_parts() {
  hb_r=${1#/configmap:}; hb_ns=${hb_r%%/*}; hb_r=${hb_r#*/}; hb_name=${hb_r%%/*}
  hb_key=${hb_r#*/}
}
hb_cm_read() {
  hb_cm_parts "$1"
  hb_o="$2.raw"
  hb_jk=$(printf '%s' "$hb_key" | sed 's/\./\\./g')
  hb_kc -n "$hb_ns" get configmap "$hb_name" --ignore-not-found \
    -o "jsonpath={.metadata.resourceVersion}{\"\\n\"}{.data.$hb_jk}" > "$hb_o" || return 1
  hb_rv=$(head -n 1 "$hb_o")
  tail -n +2 "$hb_o" > "$2"; rm -f -- "$hb_o"
}
hb_sha() { sha256sum < "$1" | cut -d' ' -f1; }
hb_cm_record() {
  hb_d=${3:-after}
  (umask 077; mkdir -p -- "$HB/$hb_d$(dirname -- "$1")")
  if ! hb_cm_read "$1" "$HB/$hb_d$1"; then
    echo "cannot read $1 with kubectl" >&2; printf 'cm\t-\t-\t-\t?\t%s\n' "$1" >> "$2"
    return 0
  fi
  if [ -z "$hb_rv" ]; then rm -f -- "$HB/$hb_d$1"; printf 'cm\t-\t-\t-\t-\t%s\n' "$1" >> "$2"
  else printf 'cm\t-\t-\t-\t%s\t%s\n' "$(hb_sha "$HB/$hb_d$1")" "$1" >> "$2"; fi
}
hb_json_string() {
  if tr -d '\t\r\n' < "$1" | grep -q '[[:cntrl:]]'; then
    echo "$1 holds control characters; not written" >&2; return 1
  fi
  printf '"'
  awk '{ gsub(/\\/, "&&"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); gsub(/\r/, "\\r")
         if (NR > 1) printf "\\n"; printf "%s", $0 }' "$1"
  if [ -s "$1" ] && [ "$(tail -c 1 "$1" | od -An -c | tr -d ' ')" = '\n' ]; then printf '\\n'; fi
  printf '"'
}
hb_cm_patch() {
  hb_tries=0
  while :; do
    hb_cm_read "$1" "$hb_cur" || return 1
    [ -n "$hb_rv" ] || { echo "$1: the ConfigMap no longer exists" >&2; return 1; }
    hb_cm_ok "$(hb_sha "$hb_cur")" || return $?
    [ "$hb_done" = 1 ] && return 0
    sed "s/__HARDEN_RV__/$hb_rv/" "$2" > "$2.rv"
    if hb_kc -n "$hb_ns" patch configmap "$hb_name" --type merge --patch-file "$2.rv" \
        >/dev/null 2>"$2.err"; then
      return 0
    fi
    if grep -qi 'conflict\|has been modified' "$2.err" && [ "$hb_tries" -lt 5 ]; then
      hb_tries=$((hb_tries + 1)); continue
    fi
    cat -- "$2.err" >&2; return 1
  done
}
""".replace("__ADMIN__", ADMIN_CONF).replace("__TRIES__", str(API_WAIT_TRIES))

# Apply side: back the key up once per run, then patch it from the planned-from value ($2) to
# the planned value ($3; the patch, base64, on stdin).
CONFIGMAP_APPLY_SH = r"""hb_cm_backup() {
  hn_where "$HB_ROOT"
  mkdir -p "$HB" && chmod 0700 "$HB_ROOT" "$HB"
  [ -f "$HB/index" ] || (umask 077; : >> "$HB/index")
  if HB_P="$1" awk -F '\t' '$6 == ENVIRON["HB_P"] {f=1} END {exit !f}' "$HB/index"; then
    return 0
  fi
  (umask 077; mkdir -p -- "$HB/files$(dirname -- "$1")")
  hb_cm_read "$1" "$HB/files$1" || { echo "cannot read $1 with kubectl" >&2; exit 1; }
  if [ -z "$hb_rv" ]; then printf 'cm\t-\t-\t-\t-\t%s\n' "$1" >> "$HB/index"
  else printf 'cm\t-\t-\t-\t%s\t%s\n' "$(hb_sha "$HB/files$1")" "$1" >> "$HB/index"; fi
  sync -- "$HB/index"
}
hb_cm_write() {
  hn_where "$HB_ROOT"; mkdir -p "$HB" && chmod 0700 "$HB_ROOT" "$HB"
  hb_tmp="$HB/cm-tmp"; rm -rf -- "$hb_tmp"; (umask 077; mkdir -p -- "$hb_tmp")
  base64 -d > "$hb_tmp/patch"; hb_cur="$hb_tmp/current"; hb_from=$2; hb_to=$3
  # already as planned (another control plane of the same batch wrote it): nothing of this
  # host's to back up, so its rollback never puts back a value another host wrote
  hb_cm_read "$1" "$hb_cur" || { echo "cannot read $1 with kubectl" >&2; exit 1; }
  if [ -n "$hb_rv" ] && [ "$(hb_sha "$hb_cur")" = "$hb_to" ]; then rm -rf -- "$hb_tmp"; return 0; fi
  hb_cm_backup "$1"
  hb_cm_ok() {
    hb_done=0
    [ "$1" = "$hb_to" ] && { hb_done=1; return 0; }
    [ "$1" = "$hb_from" ] && return 0
    echo "$hb_ns/$hb_name ($hb_key) was changed by someone else since harden read it; run again" >&2
    return 1
  }
  hb_cm_patch "$1" "$hb_tmp/patch" || exit 1
  rm -rf -- "$hb_tmp"
  [ -f "$HB/after-partial" ] || (umask 077; : >> "$HB/after-partial")
  hb_cm_record "$1" "$HB/after-partial"; sync -- "$HB/after-partial"
}
"""

# Rollback side: put the key back to its backed-up bytes ($2: their sha256, `-`: there was no
# such object, which a run never creates, so there is nothing to put back). It runs once the
# API answers again, so it compares there: a key that holds neither the backup nor what the
# run left was changed since by someone else and is left alone (W line) unless $HR_FORCE.
CONFIGMAP_RESTORE_SH = r"""hr_cm() {
  [ "$2" = - ] && { echo "W $1 did not exist before the run: left as it is"; return 0; }
  b="$HB/files$1"
  [ -f "$b" ] || { echo "no backup copy of $1" >&2; exit 3; }
  [ "$(hb_sha "$b")" = "$2" ] || { echo "backup copy of $1 does not match its recorded sha256" >&2
    exit 3; }
  hb_tmp="$HB/cm-restore"; rm -rf -- "$hb_tmp"; (umask 077; mkdir -p -- "$hb_tmp")
  hb_cm_parts "$1"
  { printf '{"metadata":{"resourceVersion":"__HARDEN_RV__"},"data":{"%s":' "$hb_key"
    hb_json_string "$b" || exit 3; printf '}}'; } > "$hb_tmp/patch"
  hb_cur="$hb_tmp/current"; hb_to=$2; hb_left=$(hr_cm_left "$1")
  hb_cm_ok() {
    hb_done=0
    [ "$1" = "$hb_to" ] && { hb_done=1; return 0; }
    [ -n "${HR_FORCE:-}" ] || [ -z "$hb_left" ] || [ "$1" = "$hb_left" ] && return 0
    echo "W $hb_ns/$hb_name ($hb_key) changed since the run: not restored (--force restores it)"
    return 4
  }
  hb_cm_patch "$1" "$hb_tmp/patch" || { [ $? = 4 ] || exit 3; }
  rm -rf -- "$hb_tmp"
}
hr_cm_left() {      # sha256 the run left the key with (after-index, else after-partial)
  for hb_f in "$HB/after-index" "$HB/after-partial"; do
    [ -f "$hb_f" ] || continue
    HB_P="$1" awk -F '\t' '$6 == ENVIRON["HB_P"] {s = $5} END {if (s != "") print s}' "$hb_f"
    return 0
  done
}
"""
