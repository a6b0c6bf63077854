"""The node-side record of the state a run left a path in, shared by every change the apply
script makes and by the run's commit (harden.runs.journal.commit_script)."""

from harden.node.configmap import CONFIGMAP_SH

# `hb_record PATH FILE` appends the state PATH is in now ("kind mode uid gid sha256 path") to
# FILE and keeps a copy of a regular file under $HB/after/: the state a run left behind, which a
# manual rollback compares with the node to see (and show) what someone changed since. Shared by
# every change (after-partial, for runs cut off before their commit) and by the commit
# (after-index, see harden.runs.journal.commit_script). A ConfigMap key's path
# (harden.node.configmap) is recorded from the API.
HB_RECORD = CONFIGMAP_SH + r"""hb_record() {
  case $1 in /configmap:*) hb_cm_record "$1" "$2"; return;; esac
  if [ -L "$1" ]; then      # only a re-pointed link is indexed unresolved: its target here
    printf 'link\t-\t-\t-\t%s\t%s\n' "$(readlink -- "$1")" "$1" >> "$2"
  elif [ -f "$1" ] && [ "${1#/proc/}" = "$1" ]; then
    (umask 077; mkdir -p -- "$HB/after${1%/*}"); cp -p -- "$1" "$HB/after$1"
    hb_rs=$(sha256sum < "$HB/after$1" || :)
    printf 'file\t%s\t%s\t%s\n' "$(stat -L -c '%a	%u	%g' -- "$1")" "${hb_rs%% *}" "$1" >> "$2"
  elif [ -d "$1" ]; then
    printf 'dir\t%s\t-\t%s\n' "$(stat -L -c '%a	%u	%g' -- "$1")" "$1" >> "$2"
  elif [ -e "$1" ]; then
    printf 'proc\t-\t-\t-\t-\t%s\n' "$1" >> "$2"
  else
    printf 'absent\t-\t-\t-\t-\t%s\n' "$1" >> "$2"
  fi
}
"""
