"""`encryption_census`: what etcd really holds, and a rewrite that ends only when it is right.

The census (harden.node.etcd_census, the same measurement as check 1.2.28e) counts the stored
values of every resource the running EncryptionConfiguration covers, per provider:key, on the
node; only counts come back. Registered for the rotation's gates:

* `readable`, `error`: whether etcd could be read (with `required: false` an unreadable etcd
  is a result, not a failed task); `method`: how etcd was read; `total`: values of covered resources;
* `off_primary`: values not under their resource's first (writing) provider:key;
* `on_other_keys`: values under a key of a provider other than `keep` (what retiring the other
  keys would make unreadable); `by_key`: provider:key -> count.

With `rewrite: true` the task rewrites (kubectl get + replace with admin.conf, one resource
at a time, all on the node in one exec) every covered resource that has values off its
primary key, measures again, and repeats until none is left (conflicting writers are simply
retried by the next pass); it fails after `passes` passes that still leave some.
"""

from __future__ import annotations

import shlex

from harden.apply.facts import APISERVER_WAIT, CENSUS, FactRequest, Facts, census_functions
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.node import etcd_census


class EncryptionCensusModule(Module):
    name = "encryption_census"
    args = (
        Arg("keep", required=True),
        Arg("rewrite", type="bool", default=False),
        Arg("passes", type="int", default=5),
        Arg("required", type="bool", default=True),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(CENSUS, "kube-apiserver")]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        if not args["rewrite"] and not args["required"]:
            return []
        census = _readable(facts)
        off = etcd_census.off_primary(census)
        if not args["rewrite"] or not off:
            return []
        primaries = {r: etcd_census.primary_for(census.layout, r) for r in census.counts
                     if etcd_census.primary_for(census.layout, r)}
        summary = ", ".join(f"{n} {what}" for what, n in off.items())
        return [Change(summary=f"rewrite until every object is under its primary key ({summary})",
                       script=rewrite_script(primaries, args["passes"],
                                             {r: census.directory(r) for r in primaries}))]

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        census = facts.etcd_census()
        if not census.available and not args["required"]:
            return {"readable": False, "error": census.error, "method": "", "total": 0,
                    "off_primary": 0, "on_other_keys": 0, "by_key": {}, "elsewhere": {}}
        census = _readable(facts)
        kept = census.kept(args["keep"])
        by_key: dict[str, int] = {}
        elsewhere: dict[str, int] = {}
        for resource, tags in census.counts.items():
            covered = etcd_census.primary_for(census.layout, resource) is not None
            for tag, count in tags.items():
                if covered:
                    by_key[tag] = by_key.get(tag, 0) + count
                elif tag != "identity" and tag not in kept:
                    elsewhere[f"{resource} as {tag}"] = count
        for directory, tags in census.unknown.items():
            for tag, count in tags.items():
                if tag != "identity" and tag not in kept:
                    elsewhere[f"{directory}/ as {tag}"] = count
        other = sum(n for tag, n in by_key.items() if tag != "identity" and tag not in kept)
        return {"readable": True, "error": "", "method": census.method,
                "total": etcd_census.covered_total(census),
                "off_primary": sum(etcd_census.off_primary(census).values()),
                "on_other_keys": other, "by_key": by_key, "elsewhere": elsewhere}


def _readable(facts: Facts) -> etcd_census.Census:
    census = facts.etcd_census()
    if not census.available:
        raise TaskFailed(f"encryption_census: etcd could not be read: {census.error}")
    return census


def rewrite_script(primaries: dict[str, str], passes: int,
                   directories: dict[str, str] | None = None) -> str:
    """sh, run on the node: measure, rewrite the resources with values off their primary
    key, measure again; at most `passes` passes; progress on stdout, never a value.
    `directories`: where the census found each resource (default: where kube-apiserver
    stores it)."""
    where = directories or {}
    # directory=resource=primary: the census counts storage directories, kubectl takes names
    expected = " ".join(f"{where.get(r) or etcd_census.directory_of(r)}={r}={t}"
                        for r, t in sorted(primaries.items()))
    names = " ".join(sorted(primaries))       # the resources the census reads, page by page
    return f"""(
export KUBECONFIG=/etc/kubernetes/admin.conf
command -v kubectl >/dev/null || {{ echo "kubectl is not installed here" >&2; exit 1; }}
{census_functions()}
expected={shlex.quote(expected)}
measure() {{
  apiserver_pid {APISERVER_WAIT} || {{ echo "no kube-apiserver has run here for {APISERVER_WAIT} s" >&2; return 1; }}
  etcd_census "$apid" {shlex.quote(names)} | awk -F'|' -v want="$expected" '
    BEGIN {{ n = split(want, w, " ")
      for (i = 1; i <= n; i++) {{ split(w[i], kv, "="); name[kv[1]] = kv[2]; p[kv[1]] = kv[3] }} }}
    $1 == "C" && $2 == "none" {{ print "etcd could not be read: " $3 > "/dev/stderr"; bad = 1 }}
    $1 == "C" && $2 != "none" && $2 != "" {{ read = 1 }}
    $1 == "Q" && ($2 in p) {{ total += $4; if ($3 != p[$2]) {{ off += $4; res[name[$2]] += $4 }} }}
    END {{ if (bad || !read) exit 1; printf "%d %d", off + 0, total + 0; for (r in res) printf " %s", r; print "" }}'; }}
pass=0
while :; do
  m=$(measure) || exit 1
  set -- $m; off=$1; total=$2; shift 2
  pass=$((pass + 1))
  if [ "$off" -eq 0 ]; then echo "pass $pass: all $total objects under their primary key"; break; fi
  if [ "$pass" -gt {int(passes)} ]; then
    echo "after {int(passes)} passes $off of $total objects are still not under their primary key" >&2
    exit 1
  fi
  echo "pass $pass: $off of $total objects not under their primary key; rewriting $*"
  for resource in "$@"; do
    objects=$(kubectl get "$resource" --all-namespaces -o json) ||
      {{ echo "pass $pass: kubectl get $resource failed: nothing of it can be rewritten" >&2; exit 1; }}
    printf '%s' "$objects" | kubectl replace -f - >/dev/null ||
      echo "pass $pass: some $resource changed meanwhile (conflict); measuring again"
  done
done
)"""


MODULE = EncryptionCensusModule()
