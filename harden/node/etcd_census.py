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

PROVIDER_KINDS = ("identity", "aescbc", "aesgcm", "secretbox", "kms")
# the words of the EncryptionConfiguration format itself, never a resource name
STRUCTURE = {"kind", "apiVersion", "EncryptionConfiguration", "resources", "providers", "keys",
             "name", "apiserver.config.k8s.io", "v1", "config.k8s.io", "apiserver", "k8s.io",
             "endpoint", "timeout", "cachesize", "apiversion"} | set(PROVIDER_KINDS)

# kube-apiserver's SpecialDefaultResourcePrefixes: the resources whose etcd directory is not
# their name (pkg/kubeapiserver/default_storage_factory_builder.go)
_SPECIAL_PREFIXES = {"replicationcontrollers": "controllers", "endpoints": "services/endpoints",
                     "nodes": "minions", "services": "services/specs",
                     "ingresses.networking.k8s.io": "ingress", "ingresses.extensions": "ingress"}
# the groups whose resources are stored under <group>/<resource>, as custom resources are
_GROUP_DIRECTORIES = ("apiextensions.k8s.io", "apiregistration.k8s.io")

# sh function definitions; `etcd_census PID NAMES` prints Q| records and one C| (see parse_line).
SCRIPT = r"""
# One page of etcd's JSON (etcdctl -w json or the v3 JSON gateway; one line, split here at
# , { } [ ] so an error line is kept whole for the message): the first characters of each
# "key"/"value" base64-decoded and the values counted per (storage directory, provider:key),
# values themselves never printed. The directory is the key's first component under the
# prefix, or its first two for services/ and for a group's directory (one with a dot: CRDs,
# APIServices, custom resources); the controller names the resource (resource_of). The page's
# first key is left out when it is `skip`, the last key of the page before (a page starts at
# it). Prints Q| records and `N|<more>|<revision>|<last key>`, or `F|<why>` when etcd did not
# answer the page
census_awk='
function dec(s, n,   i, c, v, bits, nb, out) {
  out = ""; bits = 0; nb = 0
  for (i = 1; i <= length(s) && length(out) < n; i++) {
    c = substr(s, i, 1); if (c == "=") break
    v = index(B, c) - 1; if (v < 0) continue
    bits = bits * 64 + v; nb += 6
    if (nb >= 8) { nb -= 8; out = out sprintf("%c", int(bits / P[nb])); bits = bits % P[nb] }
  }
  return out }
function field(s) { sub(/^[^:]*:[[:space:]]*"/, "", s); sub(/".*$/, "", s); return s }
function directory(k,   p) {
  split(substr(k, length(pfx) + 2), p, "/")
  return p[1] == "services" || index(p[1], ".") ? p[1] "/" p[2] : p[1] }
function piece(s,   v, f, tag) {
  if (s ~ /^[[:space:]]*"header":/) hdr = 1
  else if (s ~ /^[[:space:]]*"revision":/) { rev = s; gsub(/[^0-9]/, "", rev) }
  else if (s ~ /^[[:space:]]*"more":[[:space:]]*true/) more = 1
  else if (s ~ /^[[:space:]]*"key":/) {
    kb = field(s); k = dec(kb, 4096); drop = first && skip != "" && k == skip; first = 0
    if (!drop) { last = k; lastb = kb; res = directory(k) } }
  else if (s ~ /^[[:space:]]*"value":/) {
    if (drop) { drop = 0; return }
    v = dec(substr(field(s), 1, 120), 80)
    if (substr(v, 1, 8) == "k8s:enc:") { split(v, f, ":"); tag = f[3] ":" f[5] } else tag = "identity"
    n[res "|" tag]++ } }
BEGIN { B = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"; first = 1
  skip = ENVIRON["census_skip"]; pfx = ENVIRON["census_pfx"]; SEP = "[],{}[]"
  P[0] = 1; for (i = 1; i <= 8; i++) P[i] = P[i - 1] * 2 }
{ np = split($0, parts, SEP); for (i = 1; i <= np; i++) piece(parts[i]) }
!hdr && NF { line = $0 }
END { if (!hdr) { why = line
    if (match(line, /"message":"[^"]*"/)) why = substr(line, RSTART + 11, RLENGTH - 12)
    printf "F|%s\n", substr(why, 1, 300); exit }
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
# `etcd_census PID NAMES`: the values of the resources NAMES (as an EncryptionConfiguration
# names them; secrets always) read as the API server PID reads etcd, in pages of $census_limit
# keys at one revision (the first page's), so neither etcd nor this node holds more than a page
etcd_census() { apid=$1; aroot="$R/proc/$apid/root"
  argvals "$apid" --etcd-servers --etcd-cafile --etcd-certfile --etcd-keyfile --etcd-prefix \
    --etcd-servers-overrides
  ep=${A1%%,*}; ca=$A2; cert=$A3; key=$A4; pfx=${A5:-/registry}
  [ -z "$A6" ] || printf 'O|%s\n' "$(printf '%s' "$A6" | tr '|\n' '  ')"
  # the API server's own rule, path.Join("/", prefix): one leading slash, none trailing ("/"
  # stays "/"); keys are <base>/<directory>/..., base being "" for "/"
  while :; do case $pfx in ?*/) pfx=${pfx%/};; *) break;; esac; done; pfx="/${pfx#/}"
  base=${pfx%/}
  [ -n "$ep" ] || { echo "C|none|--etcd-servers not set"; return 0; }
  how=''; crev=''; cerr=''
  # census_dirs prints only [A-Za-z0-9._/-] and --all: nothing to glob in the loop
  for d in $(census_dirs "$2"); do
    case $d in --all) cs="$base/"; ce="${base}0";; *) cs="$base/$d/"; ce="$base/${d}0";; esac
    census_range "$cs" "$ce" || { printf 'C|none|%s\n' "$(printf '%s' "$cerr" | tr '|\n' '  ')"
      return 0; }
  done
  printf 'C|%s|%s\n' "$(census_label)" "$pfx"; }
census_limit=${HARDEN_CENSUS_PAGE:-500}
case $census_limit in ''|*[!0-9]*|0|1) census_limit=500;; esac
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
# no etcdctl on the host); 1 with $cerr (every way tried, and why it failed) when none answered
census_page() {
  if [ -n "$how" ]; then census_read "$@" || { cerr="$(census_label): $cerr"; return 1; }; return 0; fi
  errs=''
  for how in etcdctl curl crictl; do
    command -v "$how" >/dev/null 2>&1 || continue
    if [ "$how" = crictl ]; then cid=$(crictl ps -q --name '^etcd$' 2>/dev/null | head -n 1)
      [ -n "$cid" ] || continue; fi
    census_read "$@" && return 0
    errs="$errs${errs:+; }$(census_label): $cerr"
  done; how=''; cerr=${errs:-no etcdctl, curl or crictl (with an etcd container) on this node}
  return 1; }
census_label() { case $how in curl) echo "etcd JSON gateway (curl)";;
  crictl) echo "etcdctl in the etcd container (crictl exec)";; *) echo "$how";; esac; }
census_read() {
  cres=$(census_get "$1" "$2" 2>&1 | census_skip=$3 census_pfx=$base awk "$census_awk")
  case ${cres##*"$cnl_"} in N\|*) return 0;; esac
  cerr=${cres##*F|}; cerr=${cerr:-no answer}; return 1; }
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
# the resource names an EncryptionConfiguration's entries list, from enc_layout's tokens (the
# words between a `resources` key and a `providers` key that are not the format's own)
census_names() { [ -n "$1" ] || return 0
  awk -v t="$1" -v st="__STRUCTURE__" 'BEGIN { n = split(st, x, " "); for (i = 1; i <= n; i++) S[x[i]]
  n = split(t, a, " ")
  for (i = 1; i <= n; i++)
    if (a[i] == "providers") on = 0
    else if (a[i] == "resources") on = 1
    else if (on && !(a[i] in S)) printf "%s ", a[i] }'; }
# the etcd directories (under the prefix) that hold secrets and the resources named, as
# kube-apiserver lays them out: its renamed ones (SpecialDefaultResourcePrefixes), a built-in
# group's resources in a directory of the resource's name, a custom resource's (a group with a
# dot) in <group>/<plural>; a group ending in .k8s.io may be either (built in, or a CRD's such as
# snapshot.storage.k8s.io): both are read. `--all` for a wildcard; names that cannot be a
# resource are left out
census_dirs() { [ -n "$1" ] || { echo secrets; return 0; }
  awk -v t="secrets $1" 'function add(x) { if (!(x in seen)) { seen[x]; d = d " " x } }
  BEGIN { n = split("__SPECIAL__", x, " ")
    for (i = 1; i <= n; i++) { j = index(x[i], "="); S[substr(x[i], 1, j - 1)] = substr(x[i], j + 1) }
    n = split(t, a, " ")
    for (i = 1; i <= n; i++) { r = a[i]; sub(/\.$/, "", r)
      if (index(r, "*")) { print "--all"; exit }
      if (r !~ /^[A-Za-z0-9][A-Za-z0-9._-]*$/) continue
      h = r; g = ""; j = index(r, "."); if (j) { h = substr(r, 1, j - 1); g = substr(r, j + 1) }
      if (r in S) add(S[r])
      else if (g ~ /\.k8s\.io$/) { add(h); add(g "/" h) }
      else if (index(g, ".")) add(g "/" h)
      else add(h) }
    # a range inside another read one (services/specs in services) would be counted twice
    m = split(substr(d, 2), o, " "); d = ""
    for (i = 1; i <= m; i++) { j = index(o[i], "/")
      if (!(j && (substr(o[i], 1, j - 1) in seen))) d = d " " o[i] }
    print substr(d, 2) }'; }
# the EncryptionConfiguration reduced to names: resources, provider kinds, key names; every
# `secret:` value is dropped here, on the node
enc_layout() { [ -f "$1" ] || return 0
  sed -e 's/#.*//' -e 's/secret[[:space:]"]*:[^,}]*//g' "$1" | tr -c 'A-Za-z0-9*._-' '\n' |
    grep -v '^[-.]*$' | tr '\n' ' '; }
""".replace("__STRUCTURE__", " ".join(sorted(STRUCTURE))).replace(
    "__SPECIAL__", " ".join(f"{name}={directory}" for name, directory in _SPECIAL_PREFIXES.items()))


@dataclass
class Census:
    """What one control plane's etcd holds, as counts."""

    method: str = ""                 # how etcd was read, or "" when it could not be
    error: str = ""
    counts: dict[str, dict[str, int]] = field(default_factory=dict)   # resource -> tag -> n
    # values in directories outside BUILTIN_STORAGE that no config name claims (the service IP
    # and port ranges, masterleases, a removed API's leftovers): not judged, but their keys
    # count for the retire gate (encryption_census)
    unknown: dict[str, dict[str, int]] = field(default_factory=dict)  # directory -> tag -> n
    overrides: str = ""              # the API server's --etcd-servers-overrides (other etcds)
    # resource -> directory, for a resource found under a directory BUILTIN_STORAGE lacks
    found_in: dict[str, str] = field(default_factory=dict)
    layout: list[dict] = field(default_factory=list)   # [{resources, providers: [kind:key]}]

    @property
    def available(self) -> bool:
        return bool(self.method)

    def directory(self, resource: str) -> str:
        """Where this census found (or would look for) a resource's values."""
        return self.found_in.get(resource) or directory_of(resource)

    def kept(self, keep: str) -> set[str]:
        """The provider:key tags of the key named `keep` in the configuration."""
        return {p for entry in self.layout for p in entry["providers"]
                if p.partition(":")[2] == keep}


def parse_line(census: Census, line: str) -> None:
    """C|<method>|<prefix or error>, Q|<storage directory>|<provider:key or identity>|<count>,
    L|<EncryptionConfiguration tokens> (before the Q records), O|<--etcd-servers-overrides>."""
    tag, _, rest = line.partition("|")
    if tag == "C":
        method, _, detail = rest.partition("|")
        if method == "none":
            census.error = detail.strip()
        else:
            census.method = method
    elif tag == "Q":
        directory, kind, count = rest.rsplit("|", 2)    # one record per page: summed
        resource = resource_of(directory)
        if resource is None:
            resource = _named_in(census.layout, directory)
            if resource:
                census.found_in[resource] = directory
        counts = census.counts if resource else census.unknown
        tags = counts.setdefault(resource or directory, {})
        tags[kind] = tags.get(kind, 0) + int(count)
    elif tag == "O":
        census.overrides = rest.strip()
    elif tag == "L":
        census.layout = layout_from_tokens(rest.split())


def layout_from_tokens(tokens: list[str]) -> list[dict]:
    """Entries in file order: the resource names each covers and its providers as
    `kind:keyname` (identity as `identity`), first one writing. An entry's two keys may come
    in either order (a YAML dump sorts them: providers first): a key the current entry already
    has starts the next one. The top-level `resources` key is the one followed by a key."""
    entries: list[dict] = []
    keys: set[str] = set()          # the keys the current entry has had
    state, i = "", 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "resources" and following in ("resources", "providers"):
            state = ""
        elif token in ("resources", "providers"):
            if not entries or token in keys:
                entries.append({"resources": [], "providers": []})
                keys = set()
            keys.add(token)
            state = token
        elif state == "resources" and token not in STRUCTURE:
            entries[-1]["resources"].append(token)
        elif state == "providers" and token in PROVIDER_KINDS:
            entries[-1]["providers"].append(token if token == "identity" else f"{token}:")
        elif state == "providers" and token == "name" and following and entries[-1]["providers"]:
            last = entries[-1]["providers"][-1]
            kind, _, key = last.partition(":")
            if key:
                entries[-1]["providers"].append(f"{kind}:{following}")
            else:
                entries[-1]["providers"][-1] = f"{kind}:{following}"
            i += 1
        i += 1
    return [e for e in entries if e["resources"]]


# kube-apiserver's stored built-in resources, by group; BUILTIN_STORAGE gives each one's etcd
# directory. A resource is named as an EncryptionConfiguration names it: `resource` in the core
# group, `resource.group` in the others.
_BUILTIN_GROUPS = {
    "": "configmaps endpoints events limitranges namespaces nodes persistentvolumeclaims "
        "persistentvolumes pods podtemplates replicationcontrollers resourcequotas secrets "
        "serviceaccounts services",
    "apps": "controllerrevisions daemonsets deployments replicasets statefulsets",
    "autoscaling": "horizontalpodautoscalers",
    "batch": "cronjobs jobs",
    "policy": "poddisruptionbudgets",
    "rbac.authorization.k8s.io": "clusterrolebindings clusterroles rolebindings roles",
    "networking.k8s.io": "ingressclasses ingresses ipaddresses networkpolicies servicecidrs",
    "discovery.k8s.io": "endpointslices",
    "storage.k8s.io": "csidrivers csinodes csistoragecapacities storageclasses "
                      "volumeattachments volumeattributesclasses",
    "scheduling.k8s.io": "priorityclasses",
    "coordination.k8s.io": "leasecandidates leases",
    "node.k8s.io": "runtimeclasses",
    "certificates.k8s.io": "certificatesigningrequests clustertrustbundles podcertificaterequests",
    "admissionregistration.k8s.io": "mutatingadmissionpolicies mutatingadmissionpolicybindings "
                                    "mutatingwebhookconfigurations validatingadmissionpolicies "
                                    "validatingadmissionpolicybindings "
                                    "validatingwebhookconfigurations",
    "flowcontrol.apiserver.k8s.io": "flowschemas prioritylevelconfigurations",
    "resource.k8s.io": "deviceclasses devicetaintrules podschedulingcontexts resourceclaimparameters "
                       "resourceclaims resourceclaimtemplates resourceclasses "
                       "resourceclassparameters resourceslices",
    "storagemigration.k8s.io": "storageversionmigrations",
    "internal.apiserver.k8s.io": "storageversions",
    "apiextensions.k8s.io": "customresourcedefinitions",
    "apiregistration.k8s.io": "apiservices",
}
BUILTIN_STORAGE = {
    name: _SPECIAL_PREFIXES.get(name) or (f"{g}/{r}" if g in _GROUP_DIRECTORIES else r)
    for g, rs in _BUILTIN_GROUPS.items() for r in rs.split() for name in [f"{r}.{g}" if g else r]}
_BY_DIRECTORY = {directory: name for name, directory in BUILTIN_STORAGE.items()}


def resource_of(directory: str) -> str | None:
    """The resource whose values a storage directory holds, named as an EncryptionConfiguration
    names it; None for a directory no served resource uses."""
    if directory in _BY_DIRECTORY:
        return _BY_DIRECTORY[directory]
    group, slash, plural = directory.partition("/")
    if slash and "." in group and plural:       # a custom resource's: <group>/<plural>
        return f"{plural}.{group}"
    return None


def _named_in(layout: list[dict], directory: str) -> str | None:
    """The config's name for a directory of a built-in resource newer than BUILTIN_STORAGE: a
    name of a built-in group (or the core one) whose resource is the directory's name."""
    for entry in layout:
        for name in entry["resources"]:
            head, _, group = name.rstrip(".").partition(".")
            if head == directory and (not group or "." not in group or group.endswith(".k8s.io")):
                return name.rstrip(".")
    return None


def directory_of(resource: str) -> str:
    """Where kube-apiserver stores a resource's values (the inverse of resource_of)."""
    if resource in BUILTIN_STORAGE:
        return BUILTIN_STORAGE[resource]
    plural, dot, group = resource.partition(".")
    return f"{group}/{plural}" if dot else resource


def covers(name: str, resource: str) -> bool:
    """Whether an EncryptionConfiguration resource name covers a resource, as kube-apiserver
    matches them: `*.*` every resource, `*.` the core group's, `*.<group>` that group's,
    `resource.group` (or a core `resource`) that one only."""
    if name == "*.*":
        return True
    head, _, group = name.partition(".")
    own_head, _, own_group = resource.partition(".")
    return group == own_group and head in ("*", own_head)


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
