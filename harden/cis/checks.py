"""The CIS evaluation engine: catalogue checks (data, harden/cis/benchmarks/*.yaml) over probe facts.

Every component check is evaluated on two views of the node:

* effective: what runs now - the process's /proc cmdline, and for the kubelet the config file and
  --config-dir drop-ins its running command line names (kube-proxy: its --config as the container
  sees it);
* configured: what will run after the next restart - the static-pod manifest, or for the kubelet
  the command line systemd would build from its unit, drop-ins and environment files.

The verdict comes from the effective view (a check fails if the running state fails); when the
two views disagree, the result carries a `drift` text. Semantics follow kube-bench's test items
(flag first, then config key, then environment; `set`, eq/noteq/gt/gte/lt/lte, has/nothave as
substring, valid_elements, bitmask as "mode bits are a subset of"); docs/cis-coverage.md lists
where harden deliberately differs.
"""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harden.cis import cluster_checks
from harden.cis.cluster_checks import CAN_I_CHECKS, KUBECTL_CHECKS, Verdict
from harden.errors import HostError, InputError
from harden.cis.probe import Facts, FileStat
from harden.cis.results import CheckResult
from harden.node.paths import DEFAULT_KUBELET_CONFIG, KUBELET_DROPIN_DIRS, KUBELET_ENV_FILES, KUBELET_UNITS, \
    MANIFEST_DIR, PROXY_KUBECONFIGS

BENCHMARK_DIR = Path(__file__).parent / "benchmarks"
ROLES = ("control-plane", "etcd", "worker")
AUDIT_KINDS = ("component", "files", "encryption_providers", "audit_policy", "kubectl", "manual")
OPS = ("eq", "noteq", "gt", "gte", "lt", "lte", "has", "nothave", "valid_elements", "regex")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # C parser when built
ZERO_DURATION = re.compile(r"^(0+(\.0+)?(ns|us|µs|ms|s|m|h)?)+$")
KUBEADM_KUBELET_EXEC = ("kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS "
                        "$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS")
# pflag bool flags take no separate value: "--profiling false" means true plus a stray argument.
BOOL_FLAGS = frozenset({
    "--anonymous-auth", "--profiling", "--service-account-lookup", "--client-cert-auth",
    "--use-service-account-credentials", "--auto-tls", "--peer-client-cert-auth",
    "--peer-auto-tls", "--make-iptables-util-chains", "--rotate-certificates",
    "--seccomp-default", "--service-account-extend-token-expiration", "--audit-log-compress"})
# pflag StringSlice / map flags: repeated occurrences append instead of replacing.
LIST_FLAGS = frozenset({"--enable-admission-plugins", "--disable-admission-plugins",
                        "--authorization-mode", "--tls-cipher-suites", "--feature-gates"})


# ------------------------------------------------------------------------------------ catalogue

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


def load_catalogue(name: str = "cis-1.12", path: str | Path | None = None) -> Catalogue:
    """Load and validate a catalogue, so a typo in the data fails at load, not mid-run."""
    path = Path(path) if path else BENCHMARK_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BENCHMARK_DIR.glob("*.yaml")))
        raise InputError(f"unknown benchmark {name!r} (known: {known})", str(path))
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
    if "kubectl" in audit and audit["kubectl"] not in {**KUBECTL_CHECKS, **CAN_I_CHECKS}:
        raise InputError(f"check {cid}: unknown kubectl evaluator {audit['kubectl']!r}", str(path))
    if "files" in audit and not ("mode_max" in audit or "owner" in audit):
        raise InputError(f"check {cid}: a files audit needs mode_max or owner", str(path))
    for ref in audit.get("files", []):
        if not (ref.startswith(("/", "manifest:")) or ref in _RESOLVERS):
            raise InputError(f"check {cid}: unknown path reference {ref!r}", str(path))
    return Check(cid, str(raw["section"]), section["title"], section["node_type"], raw["title"],
                 bool(raw["scored"]), audit, raw["expected"], raw["remediation"].strip(),
                 raw.get("remediate"))


# ------------------------------------------------------------------------------------ flag views

def parse_flags(args: list[str]) -> dict[str, list[str]]:
    """Every --flag occurrence with its value, as pflag reads `--f=v`, `--f v` and bare `--f`."""
    flags: dict[str, list[str]] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if not eq:
                nxt = args[i + 1] if i + 1 < len(args) else None
                if nxt is not None and not nxt.startswith("-") and name not in BOOL_FLAGS:
                    value, i = nxt, i + 1
                else:
                    value = "true"
            flags.setdefault(name, []).append(value)
        i += 1
    return flags


@dataclass
class View:
    """One source's idea of a component: its flags, its config file keys and environment."""

    source: str                                  # "running process 412", "manifest /etc/..."
    flags: dict[str, list[str]]
    config: dict | None = None
    config_source: str = ""
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    stale: str | None = None     # the config file changed after the process started
    root: str = ""               # running process: /proc/<pid>/root, where its paths are on the node

    def flag(self, name: str) -> str | None:
        values = self.flags.get(name)
        if not values:
            return None
        return ",".join(values) if name in LIST_FLAGS else values[-1]


@functools.lru_cache(maxsize=512)
def _yaml_docs(text: str) -> dict | None:
    """Parse a manifest or config once per run (every check asks again); callers never mutate."""
    try:
        doc = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, dict) else None


def manifest_commands(facts: Facts) -> dict[str, tuple[str, list[str]]]:
    """component -> (manifest path, command+args) for every static pod container on the node."""
    found: dict[str, tuple[str, list[str]]] = {}
    for path in sorted(facts.contents):
        if posixpath.dirname(path) != MANIFEST_DIR or posixpath.basename(path).startswith("."):
            continue
        pod = _yaml_docs(facts.contents[path]) or {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
            if argv:
                found.setdefault(posixpath.basename(argv[0]), (path, argv))
    return found


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _attach_kubelet_config(view: View, facts: Facts) -> View:
    """Load the config file and drop-ins the view's --config/--config-dir name (flags win later)."""
    path = view.flag("--config")
    if path:
        if path in facts.contents:
            view.config = _yaml_docs(facts.contents[path]) or {}
            view.config_source = path
        else:
            view.notes.append(f"config file {path} not found")
    config_dir = view.flag("--config-dir")
    if config_dir:
        for dropin in sorted(p for p in facts.contents if posixpath.dirname(p) == config_dir.rstrip("/")
                             and p.endswith(".conf")):
            view.config = _deep_merge(view.config or {}, _yaml_docs(facts.contents[dropin]) or {})
            view.config_source += f" + {dropin}"
    return view


def _split(text: str) -> list[str]:
    """Shell-like word splitting that tolerates an unbalanced quote in a hand-edited file."""
    try:
        return shlex.split(text)
    except ValueError:
        return text.split()


def _env_file(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            env[key.strip()] = " ".join(_split(value)) if value else ""
    return env


def _systemd_lines(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        key, eq, value = line.strip().partition("=")
        if eq and not key.startswith(("#", ";")):
            out.append((key.strip(), value.strip()))
    return out


def kubelet_unit_files(facts: Facts) -> list[str]:
    """The kubelet's unit and drop-ins in systemd order (main unit first, drop-ins by name)."""
    files = [next((u for u in KUBELET_UNITS if u in facts.contents), None)]
    dropins: dict[str, str] = {}
    for directory in KUBELET_DROPIN_DIRS:
        for path in facts.contents:
            if posixpath.dirname(path) == directory and path.endswith(".conf"):
                dropins[posixpath.basename(path)] = path
    return [f for f in files if f] + [dropins[name] for name in sorted(dropins)]


def configured_kubelet_argv(facts: Facts) -> tuple[list[str], list[str]] | None:
    """The kubelet command line systemd would start now, and the files it came from."""
    units = kubelet_unit_files(facts)
    env_files = [f for f in KUBELET_ENV_FILES if f in facts.contents]
    if not units and not env_files:
        return None
    env: dict[str, str] = {}
    exec_start = ""
    listed_env_files: list[str] = []
    for unit in units:
        for key, value in _systemd_lines(facts.contents[unit]):
            if key == "Environment":
                for assignment in _split(value):
                    name, _, val = assignment.partition("=")
                    env[name] = val
            elif key == "EnvironmentFile":
                listed_env_files.append(value.lstrip("-"))
            elif key == "ExecStart":
                exec_start = value     # an empty ExecStart= resets, a later one replaces
    for env_file in listed_env_files or env_files:
        if env_file in facts.contents:
            env.update(_env_file(facts.contents[env_file]))
    line = exec_start or KUBEADM_KUBELET_EXEC
    for name in sorted(env, key=len, reverse=True):
        line = line.replace("${" + name + "}", env[name]).replace("$" + name, env[name])
    argv = [w for w in _split(line) if not w.startswith("$")]
    return argv, units + [f for f in (listed_env_files or env_files) if f in facts.contents]


def _stale_config(view: View, proc, facts: Facts) -> str | None:
    """A config file written after the kubelet started is not what the kubelet runs with: the
    kubelet reads it only at start, so the new content is pending a restart."""
    path = view.flag("--config")
    stat = facts.stats.get(path) if path else None
    if stat and proc.started and stat.mtime > proc.started + 1:
        return (f"{path} was modified after the running kubelet started; its content takes "
                f"effect only when the kubelet restarts")
    return None


def component_process(facts: Facts, component: str):
    """The running component: the process its static-pod manifest started, when it has one."""
    manifest = manifest_commands(facts).get(component)
    return facts.process(component, manifest[1] if manifest else None)


def component_views(component: str, facts: Facts) -> tuple[View | None, View | None]:
    """(effective, configured) views of a component; either may be None."""
    proc = component_process(facts, component)
    effective = None
    if proc:
        effective = View(f"running process {proc.pid}", parse_flags(proc.argv[1:]), env=proc.env,
                         root=f"/proc/{proc.pid}/root")
    configured = None
    if component == "kubelet":
        built = configured_kubelet_argv(facts)
        if built:
            argv, sources = built
            configured = View("kubelet service (" + ", ".join(sources) + ")", parse_flags(argv[1:]))
            _attach_kubelet_config(configured, facts)
        if effective:
            _attach_kubelet_config(effective, facts)
            effective.stale = _stale_config(effective, proc, facts)
    elif component == "kube-proxy":
        if effective and proc and effective.flag("--config"):
            inside = f"/proc/{proc.pid}/root{effective.flag('--config')}"
            if inside in facts.contents:
                effective.config = _yaml_docs(facts.contents[inside]) or {}
                effective.config_source = f"{effective.flag('--config')} (inside the kube-proxy container)"
    else:
        manifest = manifest_commands(facts).get(component)
        if manifest:
            configured = View(f"manifest {manifest[0]}", parse_flags(manifest[1][1:]))
    return effective, configured


# ------------------------------------------------------------------------------------ test items

def _format(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_format(v) or "" for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={_format(v)}" for k, v in value.items())
    return str(value)


def _config_value(config: dict | None, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _feature_gate(view: View, gate: str) -> str | None:
    gates = view.flag("--feature-gates")
    for pair in (gates or "").split(","):
        name, _, value = pair.partition("=")
        if name.strip() == gate:
            return value.strip() or "true"
    return None


@dataclass
class Lookup:
    found: bool
    value: str | None
    where: str          # "--profiling", "config authentication.anonymous.enabled", "env ETCD_X"

    def describe(self) -> str:
        if not self.found:
            if self.value == "":
                return f"{self.where} is empty (counts as not set)"
            return f"{self.where} is not set"
        return f"{self.where}={self.value}" if self.where.startswith("--") else f"{self.where} = {self.value}"


def lookup(item: dict, view: View) -> Lookup:
    """Find a test item's value: command line first, then config file, then environment."""
    if "gate" in item:
        value = _feature_gate(view, item["gate"])
        if value is not None:
            return Lookup(True, value, f"--feature-gates {item['gate']}")
    elif "flag" in item and item["flag"] in view.flags:
        value = view.flag(item["flag"])
        if value or item["flag"] in BOOL_FLAGS:
            return Lookup(True, value, item["flag"])
        # `--audit-log-path=` turns the feature off, and an explicit flag overrides the
        # kubelet's config file, so an empty value is "not set" and the config is not consulted
        return Lookup(False, "", item["flag"])
    if "key" in item and view.config is not None:
        value = _format(_config_value(view.config, item["key"]))
        if value:      # an empty value is "not set", as kube-bench's JSONPath output is empty
            return Lookup(True, value, f"config {item['key']}")
    if "env" in item and item["env"] in view.env:
        return Lookup(True, view.env[item["env"]], f"env {item['env']}")
    name = item.get("flag") or f"feature gate {item.get('gate')}"
    if "key" in item:
        name += f" / config {item['key']}"
    return Lookup(False, None, name)


def compare(op: str, actual: str, expected: str) -> bool:
    """kube-bench's compare operators (true/false compare case-insensitively)."""
    if op in ("eq", "noteq"):
        if expected == "0" and ZERO_DURATION.match(actual):
            actual = "0"      # "0s", "0m0s": a zero Go duration is zero (kube-bench compares text)
        if expected.lower() in ("true", "false"):
            same = actual.lower() == expected.lower()
        else:
            same = actual == expected
        return same if op == "eq" else not same
    if op in ("gt", "gte", "lt", "lte"):
        try:
            a, e = int(actual), int(expected)
        except ValueError:
            return False
        return {"gt": a > e, "gte": a >= e, "lt": a < e, "lte": a <= e}[op]
    if op == "has":
        return expected in actual
    if op == "nothave":
        return expected not in actual
    if op == "valid_elements":
        allowed = {e.strip() for e in expected.split(",") if e.strip()}
        elements = [e.strip() for e in actual.split(",") if e.strip()]
        return bool(elements) and all(e in allowed for e in elements)
    if op == "regex":
        return re.search(expected, actual) is not None
    raise ValueError(f"unknown op {op}")


def evaluate_item(item: dict, view: View) -> tuple[bool, Lookup]:
    found = lookup(item, view)
    if not item.get("set", True):
        return not found.found, found
    if not found.found:
        return False, found
    if item.get("op"):
        return compare(item["op"], found.value or "", str(item["value"])), found
    return True, found


def run_tests(audit: dict, view: View) -> tuple[bool, list[Lookup]]:
    outcomes = [evaluate_item(item, view) for item in audit["tests"]]
    combine = any if audit.get("bin_op", "and") == "or" else all
    lookups: list[Lookup] = []
    for _, found in outcomes:
        if found.describe() not in [l.describe() for l in lookups]:
            lookups.append(found)
    return combine(ok for ok, _ in outcomes), lookups


# ------------------------------------------------------------------------------------ roles

def detect_roles(facts: Facts, override=None, host: str = "") -> set[str]:
    """Which sections apply: control-plane (apiserver manifest, or an apiserver process outside
    any pod), etcd (the same for etcd), worker (a kubelet process, unit or config).

    A process alone counts only outside kubepods cgroups: without a static-pod manifest, an etcd
    or apiserver in a pod is an ordinary workload (say an application's etcd on a worker) and
    must not turn a worker into an etcd node. `harden_node_role` replaces detection."""
    if override:
        wanted = override if isinstance(override, list) else str(override).split(",")
        roles = {str(r).strip() for r in wanted if str(r).strip()}
        unknown = roles - set(ROLES)
        if unknown:
            raise HostError(host, f"unknown node role(s) {', '.join(sorted(unknown))}; "
                            f"use {', '.join(ROLES)}", "harden_node_role")
        if "control-plane" in roles:
            roles.add("worker")
        return roles
    manifests = manifest_commands(facts)
    roles = set()
    if "kube-apiserver" in manifests or _runs_outside_pods(facts, "kube-apiserver"):
        roles.add("control-plane")
    if "etcd" in manifests or _runs_outside_pods(facts, "etcd"):
        roles.add("etcd")
    if facts.process("kubelet") or kubelet_unit_files(facts) or DEFAULT_KUBELET_CONFIG in facts.contents:
        roles.add("worker")
    return roles


def _runs_outside_pods(facts: Facts, component: str) -> bool:
    return any(not p.in_pod for p in facts.processes.get(component, []))


# ------------------------------------------------------------------------------------ evaluation

def evaluate_host(host: str, facts: Facts, catalogue: Catalogue, role_override=None) -> list[CheckResult]:
    """Every catalogue check that applies to this host's roles, evaluated on its facts."""
    if not facts.complete:
        raise HostError(host, "the fact probe did not run to completion (output truncated)")
    roles = detect_roles(facts, role_override, host)
    context = HostContext(facts)
    results = []
    for check in catalogue.checks:
        if check.node_type in roles:
            results.append(_result(host, check, _evaluate(check, context)))
    return results


def _result(host: str, check: Check, verdict: Verdict) -> CheckResult:
    if verdict.status:
        status = verdict.status
    elif verdict.passed:
        status = "PASS"
    else:
        status = "FAIL" if check.scored else "WARN"
    return CheckResult(host=host, id=check.id, title=check.title, status=status, scored=check.scored,
                       expected=check.expected, actual=verdict.actual, remediation=check.remediation,
                       section=f"{check.section} {check.section_title}", node_type=check.node_type,
                       drift=verdict.drift, facts=verdict.facts)


class HostContext:
    """One host's facts plus its component views, built once and shared by all checks."""

    def __init__(self, facts: Facts):
        self.facts = facts
        self._views: dict[str, tuple[View | None, View | None]] = {}

    def views(self, component: str) -> tuple[View | None, View | None]:
        if component not in self._views:
            self._views[component] = component_views(component, self.facts)
        return self._views[component]


def _evaluate(check: Check, ctx: HostContext) -> Verdict:
    kind = check.kind
    if kind == "manual":
        return Verdict(None, f"manual check: {check.audit['manual']}", status="WARN")
    if kind == "component":
        return _evaluate_component(check.audit, ctx)
    if kind == "files":
        return _evaluate_files(check.audit, ctx)
    if kind == "encryption_providers":
        return cluster_checks.encryption_providers(check.audit["encryption_providers"], ctx)
    if kind == "audit_policy":
        return cluster_checks.audit_policy(ctx)
    return cluster_checks.kubectl_check(check.audit["kubectl"], ctx.facts)


def _describe_view(view: View, lookups: list[Lookup]) -> str:
    where = view.source + (f", config {view.config_source}" if view.config_source else "")
    notes = f"; {'; '.join(view.notes)}" if view.notes else ""
    return f"{'; '.join(l.describe() for l in lookups)} ({where}{notes})"


def _evaluate_component(audit: dict, ctx: HostContext) -> Verdict:
    component = audit["component"]
    effective, configured = ctx.views(component)
    if effective is None and configured is None:
        passed, lookups = run_tests(audit, View("nothing", {}))
        return Verdict(passed, f"{component} is not running and has no configuration on this node; "
                       + "; ".join(l.describe() for l in lookups))
    if effective is None:
        passed, lookups = run_tests(audit, configured)
        text = f"{component} is not running; configured: {_describe_view(configured, lookups)}"
        return Verdict(passed, text, [configured.source],
                       status=None if not passed else "WARN")
    passed, lookups = run_tests(audit, effective)
    used = [effective.source] + ([f"config {effective.config_source}"] if effective.config_source else [])
    drift = None
    if configured is not None:
        conf_passed, conf_lookups = run_tests(audit, configured)
        used.append(configured.source)
        if [l.describe() for l in conf_lookups] != [l.describe() for l in lookups]:
            drift = (f"configured {_describe_view(configured, conf_lookups)} differs from running "
                     f"({'; '.join(l.describe() for l in lookups)}); the configured state would "
                     f"{'pass' if conf_passed else 'fail'} after a restart")
    status = None
    if effective.stale and any("key" in item for item in audit["tests"]):
        # the file no longer shows what the running kubelet read: a pass cannot be confirmed
        drift = f"{drift}; {effective.stale}" if drift else effective.stale
        status = "WARN" if passed else None
    return Verdict(passed, _describe_view(effective, lookups), used, drift, status)


# ------------------------------------------------------------------------------------ files

@dataclass
class Resolved:
    paths: list[str]
    not_used: str | None = None        # the thing the check is about is not used on this node


def resolve_paths(ref: str, ctx: HostContext) -> Resolved:
    """Node paths a catalogue path reference stands for on this host."""
    facts = ctx.facts
    if ref.startswith("/"):
        return Resolved([ref])
    if ref.startswith("manifest:"):
        component = ref.split(":", 1)[1]
        found = manifest_commands(facts).get(component)
        return Resolved([found[0] if found else f"{MANIFEST_DIR}/{component}.yaml"])
    return _RESOLVERS[ref](ctx)     # references were validated when the catalogue was loaded


def _first_flag(ctx: HostContext, component: str, flag: str) -> str | None:
    for view in ctx.views(component):
        if view and view.flag(flag):
            return view.flag(flag)
    return None


def _tree(facts: Facts, root: str, suffix: str = "", include_root: bool = True) -> list[str]:
    root = root.rstrip("/")
    return sorted(p for p in facts.stats
                  if (p.startswith(root + "/") or (include_root and p == root)) and p.endswith(suffix)
                  and (not suffix or facts.stats[p].type == "regular file"))


def _etcd_data_dir(ctx: HostContext) -> Resolved:
    effective, configured = ctx.views("etcd")
    for view in (effective, configured):
        if view and (view.flag("--data-dir") or view.env.get("ETCD_DATA_DIR")):
            return Resolved([view.flag("--data-dir") or view.env["ETCD_DATA_DIR"]])
    return Resolved(["/var/lib/etcd"])


def _cni_files(ctx: HostContext) -> Resolved:
    conf_dir = _first_flag(ctx, "kubelet", "--cni-conf-dir") or "/etc/cni/net.d"
    state = [p for p in _tree(ctx.facts, "/var/lib/cni/networks", include_root=False)
             if ctx.facts.stats[p].type == "regular file"]
    return Resolved(_tree(ctx.facts, conf_dir, include_root=False) + state)


def _kubelet_service(ctx: HostContext) -> Resolved:
    units = [u for u in KUBELET_UNITS if u in ctx.facts.stats]
    dropins = [p for p in ctx.facts.stats
               if posixpath.dirname(p) in KUBELET_DROPIN_DIRS and p.endswith(".conf")]
    return Resolved(units + sorted(dropins))


def _kubelet_config(ctx: HostContext) -> Resolved:
    effective, configured = ctx.views("kubelet")
    if effective is not None and not effective.flag("--config"):
        return Resolved([], not_used="the running kubelet uses no config file (--config is not set)")
    for view in (effective, configured):
        if view and view.flag("--config"):
            return Resolved([view.flag("--config")])
    return Resolved([DEFAULT_KUBELET_CONFIG])


def _kubelet_client_ca(ctx: HostContext) -> Resolved:
    item = {"flag": "--client-ca-file", "key": "authentication.x509.clientCAFile"}
    for view in ctx.views("kubelet"):
        if view:
            found = lookup(item, view)
            if found.found and found.value:
                return Resolved([found.value])
    return Resolved(["/etc/kubernetes/pki/ca.crt"])


def _kubelet_kubeconfig(ctx: HostContext) -> Resolved:
    return Resolved([_first_flag(ctx, "kubelet", "--kubeconfig") or "/etc/kubernetes/kubelet.conf"])


def _proxy_kubeconfig(ctx: HostContext) -> Resolved:
    """The kubeconfig the running kube-proxy uses, as its container sees it, then the host's
    usual places. With --config, kube-proxy takes clientConnection.kubeconfig from that file and
    ignores --kubeconfig (kubeadm's DaemonSet works that way)."""
    paths = list(PROXY_KUBECONFIGS)
    proc = component_process(ctx.facts, "kube-proxy")
    effective, _ = ctx.views("kube-proxy")
    if proc and effective:
        named = effective.flag("--kubeconfig")
        if effective.flag("--config"):
            named = _format(_config_value(effective.config, "clientConnection.kubeconfig"))
        if named and named.startswith("/"):
            paths.insert(0, f"/proc/{proc.pid}/root{named}")
    return Resolved(paths)


_RESOLVERS = {
    "etcd-data-dir": _etcd_data_dir,
    "cni-files": _cni_files,
    "pki-tree": lambda ctx: Resolved(_tree(ctx.facts, "/etc/kubernetes/pki") or ["/etc/kubernetes/pki"]),
    "pki-certs": lambda ctx: Resolved(_tree(ctx.facts, "/etc/kubernetes/pki", ".crt")),
    "pki-keys": lambda ctx: Resolved(_tree(ctx.facts, "/etc/kubernetes/pki", ".key")),
    "admin-kubeconfigs": lambda ctx: Resolved(["/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf"]),
    "kubelet-service": _kubelet_service,
    "kubelet-kubeconfig": _kubelet_kubeconfig,
    "kubelet-client-ca": _kubelet_client_ca,
    "kubelet-config": _kubelet_config,
    "proxy-kubeconfig": _proxy_kubeconfig,
}


def bitmask_ok(mode: int, max_mode: int) -> bool:
    """kube-bench's bitmask: the file's permission bits must be a subset of the maximum."""
    return (max_mode & mode) == mode


def _file_ok(stat: FileStat, audit: dict) -> bool:
    if "mode_max" in audit:
        return bitmask_ok(stat.mode & 0o7777, int(str(audit["mode_max"]), 8))
    return stat.owner == audit["owner"]


def _describe_stat(stat: FileStat, audit: dict) -> str:
    shown = f"{stat.mode & 0o7777:o}" if "mode_max" in audit else stat.owner
    return f"{stat.path}: {shown}"


def _evaluate_files(audit: dict, ctx: HostContext) -> Verdict:
    paths: list[str] = []
    for ref in audit["files"]:
        resolved = resolve_paths(ref, ctx)
        if resolved.not_used:
            return Verdict(True, resolved.not_used)
        paths.extend(resolved.paths)
    seen: set[str] = set()
    stats: list[FileStat] = []
    for path in paths:
        stat = ctx.facts.stats.get(path)
        if stat and stat.inode not in seen:
            seen.add(stat.inode)
            stats.append(stat)
    if not stats:
        return _missing_verdict(audit, paths)
    bad = [s for s in stats if not _file_ok(s, audit)]
    shown = bad or stats
    text = "; ".join(_describe_stat(s, audit) for s in shown[:8])
    if len(shown) > 8:
        text += f"; ... {len(shown) - 8} more"
    if len(stats) > 1:
        text = (f"{len(bad)} of {len(stats)} files fail: " if bad else f"all {len(stats)} files pass: ") + text
    return Verdict(not bad, text, [f"stat {s.path}" for s in stats])


def _missing_verdict(audit: dict, paths: list[str]) -> Verdict:
    looked = ", ".join(paths) if paths else "no candidate files"
    policy = audit.get("missing", "fail")
    reason = audit.get("missing_reason", "")
    text = f"not found: {looked}" + (f" ({reason})" if reason else "")
    if policy == "pass":
        return Verdict(True, text)
    if policy == "skip":
        return Verdict(None, text, status="SKIP")
    return Verdict(False, text)


def explain(check: Check) -> str:
    """The text `harden explain ID` prints: what, how it is inspected, expected, how to fix."""
    audit = dict(check.audit)
    kind = check.kind
    if kind == "component":
        tests = "; ".join(_describe_item(i) for i in audit["tests"])
        joiner = " (any one suffices)" if audit.get("bin_op") == "or" else ""
        inspect = (f"the running {audit['component']} (/proc cmdline; for kubelet/kube-proxy also "
                   f"the config file it names) and its configured state: {tests}{joiner}")
    elif kind == "files":
        test = f"mode at most {audit['mode_max']}" if "mode_max" in audit else f"owner {audit['owner']}"
        inspect = (f"stat of {', '.join(audit['files'])}: {test}; if nothing is found: "
                   f"{audit.get('missing', 'fail')}")
    elif kind == "manual":
        inspect = f"nothing automated ({audit['manual']}); always reported as WARN"
    elif kind == "encryption_providers":
        inspect = ("provider names of the file --encryption-provider-config names (read on the node; "
                   f"keys never leave it); allowed first providers: {', '.join(audit[kind])}")
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


def _describe_item(item: dict) -> str:
    name = item.get("flag") or f"feature gate {item.get('gate')}"
    if item.get("key"):
        name += f" (else config key {item['key']})"
    if item.get("env"):
        name += f" (else env {item['env']})"
    if not item.get("set", True):
        return f"{name} not set"
    if item.get("op"):
        return f"{name} {item['op']} {item['value']}"
    return f"{name} set"
