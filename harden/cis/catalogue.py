"""The CIS catalogue: loading and validating harden/cis/benchmarks/*.yaml, and `harden explain`.

Content is data: every check's audit, expected state and remediation live in the YAML file; this
module only makes sure a typo in that data fails at load, naming the file, not mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from harden.errors import InputError

BENCHMARK_DIR = Path(__file__).parent / "benchmarks"
AUDIT_KINDS = ("component", "files", "encryption_providers", "encryption_stored", "audit_policy",
               "kernel_tunables", "kubectl", "kubeadm_config", "manual")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # C parser when built


@dataclass(frozen=True)
class Check:
    id: str
    section: str
    section_title: str
    node_type: str
    title: str
    scored: bool
    audit: dict
    expected: str
    remediation: str
    remediate: dict | None

    @property
    def kind(self) -> str:
        return next(k for k in AUDIT_KINDS if k in self.audit)


@dataclass
class Catalogue:
    benchmark: str
    title: str
    checks: list[Check]

    def get(self, check_id: str) -> Check | None:
        return next((c for c in self.checks if c.id == check_id), None)


def benchmark_path(name: str, path: str | Path | None = None) -> Path:
    """The catalogue file of benchmark `name` (or `path`); InputError naming the known ones when
    there is none. Cheap on purpose: `harden check` asks it before any host is contacted and
    loads the file itself while the hosts are probed (harden.cis.run)."""
    path = Path(path) if path else BENCHMARK_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BENCHMARK_DIR.glob("*.yaml")))
        raise InputError(f"unknown benchmark {name!r} (known: {known})", str(path))
    return path


def load_catalogue(name: str = "cis-1.12", path: str | Path | None = None) -> Catalogue:
    """Load and validate a catalogue, so a typo in the data fails at load, not mid-run."""
    path = benchmark_path(name, path)
    try:
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"invalid YAML: {exc}", str(path), mark.line + 1 if mark else None) from exc
    sections = {s["id"]: s for s in data.get("sections", [])}
    checks = [_check_from(raw, sections, path) for raw in data.get("checks", [])]
    ids = [c.id for c in checks]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"duplicate check ids: {', '.join(duplicates)}", str(path))
    return Catalogue(data.get("benchmark", name), data.get("title", name), checks)


def _check_from(raw: dict, sections: dict, path: Path) -> Check:
    # the evaluators' tables, imported with the first check rather than with this module:
    # benchmark_path above must stay cheap to import
    from harden.cis.cluster_checks import CAN_I_CHECKS, KUBECTL_CHECKS
    from harden.cis.file_checks import RESOLVERS
    from harden.cis.operators import OPS

    cid = str(raw.get("id"))
    missing = [k for k in ("id", "section", "title", "scored", "audit", "expected", "remediation")
               if k not in raw]
    if missing:
        raise InputError(f"check {cid}: missing {', '.join(missing)}", str(path))
    section = sections.get(str(raw["section"]))
    if not section:
        raise InputError(f"check {cid}: unknown section {raw['section']!r}", str(path))
    audit = raw["audit"]
    kinds = [k for k in AUDIT_KINDS if k in audit]
    if len(kinds) != 1:
        raise InputError(f"check {cid}: audit needs exactly one of {', '.join(AUDIT_KINDS)}", str(path))
    for item in audit.get("tests", []):
        if item.get("op") and item["op"] not in OPS:
            raise InputError(f"check {cid}: unknown op {item['op']!r}", str(path))
        zero = str(item.get("zero_means", "unlimited"))
        if zero != "unlimited" and not zero.isdigit():
            raise InputError(f"check {cid}: zero_means is 'unlimited' or a number, not {zero!r}", str(path))
    if "kubectl" in audit and audit["kubectl"] not in {**KUBECTL_CHECKS, **CAN_I_CHECKS}:
        raise InputError(f"check {cid}: unknown kubectl evaluator {audit['kubectl']!r}", str(path))
    if "files" in audit and not ("mode_max" in audit or "owner" in audit):
        raise InputError(f"check {cid}: a files audit needs mode_max or owner", str(path))
    for ref in audit.get("files", []):
        if not (ref.startswith(("/", "manifest:")) or ref in RESOLVERS):
            raise InputError(f"check {cid}: unknown path reference {ref!r}", str(path))
    return Check(cid, str(raw["section"]), section["title"], section["node_type"], raw["title"],
                 bool(raw["scored"]), audit, raw["expected"], raw["remediation"].strip(),
                 raw.get("remediate"))


def explain(check: Check) -> str:
    """The text `harden explain ID` prints: what, how it is inspected, expected, how to fix."""
    audit = dict(check.audit)
    kind = check.kind
    if kind == "component":
        tests = "; ".join(_describe_item(i, audit["component"]) for i in audit["tests"])
        joiner = " (any one suffices)" if audit.get("bin_op") == "or" else ""
        inspect = (f"the running {audit['component']} (/proc cmdline; for kubelet/kube-proxy also "
                   f"the config file it names) and its configured state: {tests}{joiner}")
        if audit["component"] == "kube-scheduler" and any("key" in i for i in audit["tests"]):
            inspect += ("; with --config the scheduler ignores --profiling and "
                        "--contention-profiling, so the KubeSchedulerConfiguration it names "
                        "decides (read inside its container; the key's default applies)")
        if "authorizers" in audit:
            inspect += (f"; with --authorization-config, instead the authorizer types of that file "
                        f"({audit['authorizers'].get('op', 'has')} {audit['authorizers']['value']})")
    elif kind == "files":
        test = f"mode at most {audit['mode_max']}" if "mode_max" in audit else f"owner {audit['owner']}"
        inspect = (f"stat of {', '.join(audit['files'])}: {test}; if nothing is found: "
                   f"{audit.get('missing', 'fail')}")
    elif kind == "manual":
        inspect = f"nothing automated ({audit['manual']}); always reported as WARN"
    elif kind == "encryption_providers":
        inspect = ("provider names of the file --encryption-provider-config names (read on the node; "
                   f"keys never leave it); allowed first providers: {', '.join(audit[kind])}")
    elif kind == "encryption_stored":
        inspect = ("etcd's stored values, read on the node with the API server's etcd client "
                   "certificate (etcdctl, else the etcd JSON gateway with curl, else etcdctl in "
                   "the etcd container); only counts per provider and key name leave the node")
    elif kind == "kubeadm_config":
        inspect = ("the ClusterConfiguration in kube-system/kubeadm-config (kubectl with "
                   "/etc/kubernetes/admin.conf) against each static-pod manifest: these flags, "
                   "where set, and the hostPath volumes their files need: " + "; ".join(
                       f"{c} {', '.join(f)}" for c, f in audit[kind].items()))
    elif kind == "kernel_tunables":
        inspect = ("whether the kubelet runs with protectKernelDefaults, and the lines of every "
                   "sysctl file a boot reads (sysctl.d directories in file-name order, then "
                   "/etc/sysctl.conf) that set one of the six tunables it requires")
    elif kind == "audit_policy":
        inspect = "the rules of the file --audit-policy-file names, evaluated first-match like the API server"
    else:
        inspect = f"cluster objects via kubectl with /etc/kubernetes/admin.conf on the node ({audit[kind]})"
    fix = (f"harden apply -i INV playbooks/{check.remediate['playbook']}.yml"
           + (f" -t {','.join(check.remediate.get('tags') or [])}" if check.remediate.get("tags") else "")
           if check.remediate else "no harden playbook; fix by hand")
    return "\n".join([
        f"{check.id}  {check.title}",
        f"section:     {check.section} {check.section_title} ({check.node_type} nodes)",
        f"assessment:  {'Automated (scored: a failure is FAIL)' if check.scored else 'Manual (not scored: a failure is WARN)'}",
        f"audit:       {inspect}",
        f"expected:    {check.expected}",
        f"remediation: {check.remediation}",
        f"harden:      {fix}",
    ])


def _describe_item(item: dict, component: str = "") -> str:
    name = item.get("flag") or f"feature gate {item.get('gate')}"
    if item.get("key"):
        name += f" (else config key {item['key']})"
    if item.get("env"):
        name += f" (else env {item['env']})"
    if item.get("key") and component == "kubelet" and not item.get("explicit"):
        name += " (else the kubelet's default)"
    if item.get("explicit"):
        name += " (must be written: a default does not count)"
    if not item.get("set", True):
        return f"{name} not set"
    if item.get("op"):
        zero = f" (0 means {item['zero_means']})" if "zero_means" in item else ""
        return f"{name} {item['op']} {item['value']}{zero}"
    return f"{name} set"
