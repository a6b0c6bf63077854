"""Encryption at rest as it is stored: etcd values counted by resource and by provider/key name.

Runs on a control plane inside one exec (the CIS probe's, or the rotation playbook's), as the
API server sees etcd: its --etcd-servers and its etcd client certificate (read through
/proc/<pid>/root, where the container sees them). Each value's prefix
(`k8s:enc:<provider>:v1:<key>:`) is decoded on the node; only counts leave it, never a value
or a key. Reads etcd with, in order of preference: `etcdctl` on the host; etcd's v3 JSON
gateway over HTTPS with `curl`; `etcdctl` inside the etcd container through `crictl exec`
(real kubeadm nodes often have no etcdctl on the host). The method used is reported.

It runs on production control planes at every check, beside the etcd and API server it
measures, so it reads only what a verdict uses (secrets and the resources the configuration
covers) and in pages of 500 keys, the chunk kubectl and the API server list in, all at the
revision of the first page: one range over a large keyspace would make etcd build, and the
node hold, the whole of it at once. A read that fails part-way (a revision compacted under a
census of more than the API server's 5-minute compaction interval) is reported, never partial
counts.

Also extracts, from the running EncryptionConfiguration, only what the verdict needs: per
entry the resource names, provider kinds and key names (`secret:` values are dropped on the
node before anything is printed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# sh function definitions; `etcd_census PID DIRS` prints Q| records and one C| (see parse_line).
SCRIPT = r"""
# One page of etcd's JSON (etcdctl -w json or the v3 JSON gateway), one field a line after tr:
# the first characters of each "key"/"value" base64-decoded and the values counted per
# (resource, provider:key); values themselves are never printed. The page's first key is left
# out when it is `skip`, the last key of the page before (a page starts at it). Prints Q|
# records and `N|<more>|<revision>|<last key>`, or `F|<why>` when etcd did not answer a page
census_awk='
function dec(s, n,   i, c, v, bits, nb, out) {
  out = ""; bits = 0; nb = 0
  for (i = 1; i <= length(s) && length(out) < n; i++) {
    c = substr(s, i, 1); if (c == "=") break
    v = index(B, c) - 1; if (v < 0) continue
    bits = bits * 64 + v; nb += 6
    if (nb >= 8) { nb -= 8; out = out sprintf("%c", int(bits / 2 ^ nb)); bits = bits % (2 ^ nb) }
  }
  return out }
BEGIN { B = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"; first = 1
  skip = ENVIRON["census_skip"]; pfx = ENVIRON["census_pfx"] }
function field(s) { sub(/^[^:]*:[[:space:]]*"/, "", s); sub(/".*$/, "", s); return s }
/^[[:space:]]*"header":/ { hdr = 1 }
/^[[:space:]]*"revision":/ { rev = $0; gsub(/[^0-9]/, "", rev) }
/^[[:space:]]*"more":[[:space:]]*true/ { more = 1 }
/^[[:space:]]*"error":/ && why == "" { why = field($0) }
/^[[:space:]]*"key":/ { kb = field($0); k = dec(kb, 4096); drop = first && skip != "" && k == skip
  first = 0; if (drop) next
  last = k; lastb = kb; r = substr(k, length(pfx) + 2); sub(/\/.*/, "", r); res = r }
/^[[:space:]]*"value":/ { if (drop) { drop = 0; next }
  v = dec(substr(field($0), 1, 120), 80)
  if (substr(v, 1, 8) == "k8s:enc:") { split(v, f, ":"); tag = f[3] ":" f[5] } else tag = "identity"
  n[res "|" tag]++ }
NF { line = $0 }
END { if (!hdr) { printf "F|%s\n", substr(why != "" ? why : line, 1, 200); exit }
  for (t in n) printf "Q|%s|%d\n", t, n[t]
  sub(/=+$/, "", lastb)
  if (more && (index(last, "\n") || length(last) != int(length(lastb) * 3 / 4))) {
    print "F|a key etcd returned cannot be paged past (over 4096 bytes or not text)"; exit }
  printf "N|%d|%s|%s\n", more, rev, more ? last : "" }'
# the values of several flags of a process's argv (--f=v or --f v, the last occurrence of each
# wins, as in pflag), read in one pass: `argvals PID --a --b` sets A1 (of --a) and A2 (of --b).
# The arguments, one a line after tr (a newline in one splits it, as awk's records did), are
# walked in the shell's memory: tr is the one process, and a process's arguments are read once
# per script (AV_<pid>; the trailing `.` keeps the empty arguments $(...) would strip). Taking
# a line off the front copies the rest, so arguments over 8 KiB (no component's; anyone can
# start a process of a component's name) go to awk instead, which reads them in one pass
argvals() { n_='
'; a_=''; case $1 in ''|*[!0-9]*) ;; *) eval "a_=\${AV_$1-}";; esac
  if [ -z "$a_" ]; then a_=$(tr '\000' '\n' < "$R/proc/$1/cmdline" 2>/dev/null; echo .)
    case $1 in ''|*[!0-9]*) ;; *) eval "AV_$1=\$a_";; esac; fi
  a_=${a_%.}; shift; i_=0; for f_ do i_=$((i_ + 1)); eval "A$i_=''"; done; tk_=''
  [ "${#a_}" -le 8192 ] || { argvals_awk "$@"; return 0; }
  while [ -n "$a_" ]; do
    case $a_ in *"$n_"*) l_=${a_%%"$n_"*}; a_=${a_#*"$n_"};; *) l_=$a_; a_='';; esac
    # the line is the value of every flag the previous line named alone; else tried on each
    t_=$tk_; tk_=''; i_=0
    for f_ do i_=$((i_ + 1))
      case $t_ in *" $i_ "*) eval "A$i_=\$l_"; continue;; esac
      case $l_ in "$f_") tk_="$tk_ $i_ ";; "$f_="*) eval "A$i_=\${l_#\"\$f_=\"}";; esac
    done
  done; }
argvals_awk() { a_=$(printf '%s' "$a_" | awk -v fl="x $*" '
  BEGIN { n = split(fl, f, " ") }
  { for (i = 2; i <= n; i++)
      if (take[i]) { v[i] = $0; take[i] = 0 }
      else if ($0 == f[i]) take[i] = 1
      else if (index($0, f[i] "=") == 1) v[i] = substr($0, length(f[i]) + 2) }
  END { for (i = 2; i <= n; i++) print "x" v[i] }')
  i_=0; while IFS= read -r l_; do i_=$((i_ + 1)); eval "A$i_=\${l_#x}"; done <<EOF_ARGV
$a_
EOF_ARGV
}
# `etcd_census PID DIRS`: the values under the resource directories DIRS (`--all`: every one;
# empty: secrets) read as the API server PID reads etcd, in pages of $census_limit keys at one
# revision (the first page's), so neither etcd nor this node ever holds more than a page
etcd_census() { apid=$1; aroot="$R/proc/$apid/root"
  argvals "$apid" --etcd-servers --etcd-cafile --etcd-certfile --etcd-keyfile --etcd-prefix
  ep=${A1%%,*}; ca=$A2; cert=$A3; key=$A4; pfx=${A5:-/registry}
  [ -n "$ep" ] || { echo "C|none|--etcd-servers not set"; return 0; }
  how=''; crev=''; cerr=''; dirs=${2:-secrets}
  # more than four directories are read as one range: fewer etcd clients to start
  set -- $dirs; [ $# -le 4 ] || dirs=--all
  for d in $dirs; do
    case $d in --all) cs="$pfx/"; ce="${pfx}0";; *) cs="$pfx/$d/"; ce="$pfx/${d}0";; esac
    census_range "$cs" "$ce" || { printf 'C|none|%s\n' "$(printf '%s' "$cerr" | tr '|\n' '  ')"
      return 0; }
  done
  case $how in curl) how="etcd JSON gateway (curl)";;
    crictl) how="etcdctl in the etcd container (crictl exec)";; esac
  printf 'C|%s|%s\n' "$how" "$pfx"; }
census_limit=${HARDEN_CENSUS_PAGE:-500}
cnl_='
'
# the keys in [$1, $2), page by page: Q| records on stdout, 1 with $cerr when a page failed
census_range() { cs=$1; skip=''
  while :; do
    census_page "$cs" "$2" "$skip" || return 1
    case $cres in *"$cnl_"*) st=${cres##*"$cnl_"}; printf '%s\n' "${cres%"$cnl_"*}";; *) st=$cres;; esac
    st=${st#N|}; more=${st%%|*}; st=${st#*|}; crev=${crev:-${st%%|*}}; last=${st#*|}
    [ "$more" = 1 ] || return 0
    [ -n "$last" ] && [ "$last" != "$cs" ] || { cerr="etcd paged no further than $cs"; return 1; }
    cs=$last; skip=$last
  done; }
# one page into $cres, read the way chosen on the first page: etcdctl on the host, else etcd's
# v3 JSON gateway with curl, else etcdctl in the etcd container (real kubeadm nodes often have
# no etcdctl on the host); 1 with $cerr when none answered it
census_page() {
  if [ -n "$how" ]; then census_read "$@"; return; fi
  cerr='no etcdctl, curl or crictl on this node'
  for how in etcdctl curl crictl; do
    command -v "$how" >/dev/null 2>&1 || continue
    if [ "$how" = crictl ]; then cid=$(crictl ps -q --name '^etcd$' 2>/dev/null | head -n 1)
      [ -n "$cid" ] || continue; fi
    census_read "$@" && return 0
  done; how=''; return 1; }
census_read() {
  cres=$(census_get "$1" "$2" 2>&1 | tr ',{}[]' '\n\n\n\n\n' |
    census_skip=$3 census_pfx=$pfx awk "$census_awk")
  case ${cres##*"$cnl_"} in N\|*) return 0;; esac
  cerr="$how: ${cres##*F|}"; return 1; }
census_get() {
  case $how in
  etcdctl) ETCDCTL_API=3 etcdctl --endpoints="$ep" ${ca:+--cacert="$aroot$ca"} \
      ${cert:+--cert="$aroot$cert"} ${key:+--key="$aroot$key"} --dial-timeout=3s \
      --command-timeout=15s get "$1" "$2" --limit="$census_limit" ${crev:+--rev="$crev"} -w json;;
  curl) curl -sS --connect-timeout 3 --max-time 15 ${ca:+--cacert "$aroot$ca"} \
      ${cert:+--cert "$aroot$cert"} ${key:+--key "$aroot$key"} -X POST "$ep/v3/kv/range" \
      -d "{\"key\":\"$(census_b64 "$1")\",\"range_end\":\"$(census_b64 "$2")\",\"limit\":$census_limit${crev:+,\"revision\":$crev}}";;
  crictl) crictl exec "$cid" etcdctl --endpoints="$ep" --cacert=/etc/kubernetes/pki/etcd/ca.crt \
      --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
      --key=/etc/kubernetes/pki/etcd/healthcheck-client.key get "$1" "$2" \
      --limit="$census_limit" ${crev:+--rev="$crev"} -w json;;
  esac; }
census_b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
# the resource directories to read for an EncryptionConfiguration reduced to names (enc_layout's
# output): the heads of every name its entries' `resources` list (etcd keys carry no API
# group), `--all` when one covers every resource; secrets always (the verdict without a
# configuration)
census_dirs() { [ -n "$1" ] || { echo secrets; return 0; }
  awk -v t="$1" 'BEGIN { n = split(t, a, " "); d = "secrets"; s["secrets"]
  for (i = 1; i <= n; i++) {
    if (a[i] == "providers") on = 0
    else if (a[i] == "resources") on = 1
    else if (on) { h = a[i]; sub(/\..*/, "", h)
      if (index(h, "*")) { print "--all"; exit }
      if (h != "" && !(h in s)) { s[h]; d = d " " h } } }
  print d }'; }
# the EncryptionConfiguration reduced to names: resources, provider kinds, key names; every
# `secret:` value is dropped here, on the node
enc_layout() { [ -f "$1" ] || return 0
  sed -e 's/#.*//' -e 's/secret[[:space:]"]*:[^,}]*//g' "$1" | tr -c 'A-Za-z0-9*._-' '\n' |
    grep -v '^[-.]*$' | tr '\n' ' '; }
"""


@dataclass
class Census:
    """What one control plane's etcd holds, as counts."""

    method: str = ""                 # how etcd was read, or "" when it could not be
    error: str = ""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)   # resource -> tag -> n
    layout: list[dict] = field(default_factory=list)   # [{resources, providers: [kind:key]}]

    @property
    def available(self) -> bool:
        return bool(self.method)


def parse_line(census: Census, line: str) -> None:
    """C|<method>|<prefix or error>, Q|<resource>|<provider:key or identity>|<count>,
    L|<EncryptionConfiguration tokens>."""
    tag, _, rest = line.partition("|")
    if tag == "C":
        method, _, detail = rest.partition("|")
        if method == "none":
            census.error = detail.strip()
        else:
            census.method = method
    elif tag == "Q":
        resource, kind, count = rest.rsplit("|", 2)    # one record per page: summed
        tags = census.counts.setdefault(resource, {})
        tags[kind] = tags.get(kind, 0) + int(count)
    elif tag == "L":
        census.layout = layout_from_tokens(rest.split())


PROVIDER_KINDS = ("identity", "aescbc", "aesgcm", "secretbox", "kms")
STRUCTURE = {"kind", "apiVersion", "EncryptionConfiguration", "resources", "providers", "keys",
             "name", "apiserver.config.k8s.io", "v1", "config.k8s.io", "apiserver", "k8s.io",
             "endpoint", "timeout", "cachesize", "apiversion"} | set(PROVIDER_KINDS)


def layout_from_tokens(tokens: list[str]) -> list[dict]:
    """Entries in file order: the resource names each covers and its providers as
    `kind:keyname` (identity as `identity`), first one writing."""
    entries: list[dict] = []
    state, i = "", 0
    while i < len(tokens):
        token = tokens[i]
        if token == "resources":
            if i + 1 < len(tokens) and tokens[i + 1] not in STRUCTURE:
                entries.append({"resources": [], "providers": []})
                state = "resources"
            elif i + 1 < len(tokens) and tokens[i + 1] == "resources":
                pass            # the top-level key followed by the first entry's key
            else:
                state = ""
        elif token == "providers":
            state = "providers"
        elif state == "resources" and token not in STRUCTURE:
            entries[-1]["resources"].append(token)
        elif state == "providers" and token in PROVIDER_KINDS and entries:
            entries[-1]["providers"].append(token if token == "identity" else f"{token}:")
        elif state == "providers" and token == "name" and i + 1 < len(tokens) and entries \
                and entries[-1]["providers"]:
            last = entries[-1]["providers"][-1]
            kind, _, key = last.partition(":")
            name = tokens[i + 1]
            if key:
                entries[-1]["providers"].append(f"{kind}:{name}")
            else:
                entries[-1]["providers"][-1] = f"{kind}:{name}"
            i += 1
        i += 1
    return [e for e in entries if e["resources"]]


def covers(name: str, resource: str) -> bool:
    """Whether an EncryptionConfiguration resource name covers an etcd resource directory.
    etcd keys do not carry the API group, so `roles.rbac.authorization.k8s.io` matches `roles`;
    `*.` and `*.*` match every directory (the storage layout cannot tell groups apart)."""
    head = name.split(".", 1)[0]
    return head == "*" or head == resource


def primary_for(layout: list[dict], resource: str) -> str | None:
    """The provider:key that writes `resource`, or None when no entry covers it."""
    for entry in layout:
        if any(covers(n, resource) for n in entry["resources"]):
            return entry["providers"][0] if entry["providers"] else None
    return None


def off_primary(census: Census) -> dict[str, int]:
    """`resource stored as tag` -> count, for every value not under its resource's primary
    provider/key (plaintext included), over the resources the configuration covers."""
    found: dict[str, int] = {}
    for resource, tags in sorted(census.counts.items()):
        primary = primary_for(census.layout, resource)
        if primary is None:
            continue
        for tag, count in sorted(tags.items()):
            if tag != primary:
                found[f"{resource} as {tag}"] = count
    return found


def entry_for(layout: list[dict], resource: str) -> dict | None:
    """The EncryptionConfiguration entry that covers `resource` (the first match), or None."""
    return next((entry for entry in layout
                 if any(covers(n, resource) for n in entry["resources"])), None)


def unreadable(census: Census) -> dict[str, int]:
    """`resource stored as tag` -> count, for values of a covered resource that no provider of
    its entry can read: the API server answers every read of them with an error."""
    found: dict[str, int] = {}
    for resource, tags in sorted(census.counts.items()):
        entry = entry_for(census.layout, resource)
        if entry is None:
            continue
        for tag, count in sorted(tags.items()):
            if tag not in entry["providers"]:
                found[f"{resource} as {tag}"] = count
    return found


def stored_under(census: Census, provider_key: str) -> int:
    """How many values of the covered resources are still stored under `provider_key`."""
    return sum(count for resource, tags in census.counts.items()
               if primary_for(census.layout, resource) is not None
               for tag, count in tags.items() if tag == provider_key)


def covered_total(census: Census) -> int:
    return sum(sum(tags.values()) for resource, tags in census.counts.items()
               if primary_for(census.layout, resource) is not None)
