"""The node-side record of the state a run left a path in, shared by every change the apply
script makes and by the run's commit (harden.runs.journal.commit_script)."""

from harden.node.configmap import CONFIGMAP_SH

# `hb_record PATH FILE [SHA256 [MODE UID GID]]` appends the state PATH is in now ("kind mode
# uid gid sha256 path") to FILE and keeps a copy of a regular file under $HB/after/: the state a
# run left behind, which a manual rollback compares with the node to see (and show) what someone
# changed since. Shared by every change (after-partial, for runs cut off before their commit) and
# by the commit (after-index, see harden.runs.journal.commit_script). SHA256, when given, is the
# file's content hash the caller already knows (what it just wrote, or a backup's content a chmod
# kept): the copy is not hashed again; MODE UID GID (one tab-separated argument), when known,
# saves the `stat`. Else one `stat` prints the whole line (nothing when it fails, so never half a
# line). A ConfigMap key's path (harden.node.configmap) is recorded from the API.
# `hb_private_dir`/`hb_private_file` make the run's private dirs (0700) and files (0600) under a
# 077 umask and then switch back to the one in force ($hb_um, read once), without a subshell.
HB_RECORD = CONFIGMAP_SH + r"""hb_um=${hb_um:-}
hb_private_um() { [ -n "$hb_um" ] || hb_um=$(umask); }
hb_private_dir() {
  hb_private_um; umask 077
  mkdir -p -- "$@" || { hb_rc=$?; umask "$hb_um"; return "$hb_rc"; }
  umask "$hb_um"
}
hb_private_file() {
  hb_private_um; umask 077
  : >> "$1" || { hb_rc=$?; umask "$hb_um"; return "$hb_rc"; }
  umask "$hb_um"
}
hb_record() {
  case $1 in /configmap:*) hb_cm_record "$1" "$2"; return;; esac
  if [ -L "$1" ]; then      # only a re-pointed link is indexed unresolved: its target here
    printf 'link\t-\t-\t-\t%s\t%s\n' "$(readlink -- "$1")" "$1" >> "$2"
  elif [ -f "$1" ] && [ "${1#/proc/}" = "$1" ]; then
    [ -d "$HB/after${1%/*}" ] || hb_private_dir "$HB/after${1%/*}"
    cp -p -- "$1" "$HB/after$1"
    hb_rs=${3:-}
    if [ -z "$hb_rs" ]; then hb_rs=$(sha256sum < "$HB/after$1") || hb_rs=; fi
    if [ -n "${4:-}" ]; then printf 'file\t%s\t%s\t%s\n' "$4" "${hb_rs%% *}" "$1" >> "$2"
    else stat -L --printf "file\t%a\t%u\t%g\t${hb_rs%% *}\t%n\n" -- "$1" >> "$2"; fi
  elif [ -d "$1" ]; then
    stat -L --printf 'dir\t%a\t%u\t%g\t-\t%n\n' -- "$1" >> "$2"
  elif [ -e "$1" ]; then
    printf 'proc\t-\t-\t-\t-\t%s\n' "$1" >> "$2"
  else
    printf 'absent\t-\t-\t-\t-\t%s\n' "$1" >> "$2"
  fi
}
"""
