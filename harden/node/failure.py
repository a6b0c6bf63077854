"""Node-side shell shared by apply and restore scripts: a temp file being written (`hn_tmp`)
is removed when the script fails, and the failure names a full or read-only mount of the
directory being written (`hn_where`), e.g. "no space left on /etc/kubernetes". Without it a
full disk left `.harden-tmp` / `.harden-restore` files in the static-pod directory and the
message was only the failing tool's."""

NODE_FAILURE = r"""
hn_tmp=; hn_dir=
hn_where() { hn_dir=$1; }
hn_flush() { :; }     # what a script still has to make durable on its way out (apply: hb_sync)
hn_exit() {
  hn_rc=$?
  hn_flush 2>/dev/null || :
  [ "$hn_rc" = 0 ] || [ -z "$hn_dir" ] || hn_why "$hn_dir"    # while still full
  [ -z "$hn_tmp" ] || rm -f -- "$hn_tmp"
}
hn_why() {
  d=$1; while [ ! -d "$d" ] && [ "$d" != / ]; do d=$(dirname -- "$d"); done
  m=$(df -P -- "$d" 2>/dev/null | awk 'NR == 2 {print $4 " " $6}')
  i=$(df -P -i -- "$d" 2>/dev/null | awk 'NR == 2 {print $4}')
  if [ "${m%% *}" = 0 ]; then echo "no space left on ${m#* }" >&2
  elif [ "$i" = 0 ]; then echo "no free inodes left on ${m#* }" >&2
  elif [ ! -w "$d" ]; then echo "${m#* } is read-only (cannot write in $d)" >&2; fi
}
trap hn_exit EXIT
"""
