"""What a component is told to do: its command line, config file and environment, seen two ways.

* effective: what runs now - the process's /proc cmdline, and for the kubelet the config file and
  --config-dir drop-ins its running command line names (kube-proxy: its --config as the container
  sees it);
* configured: what will run after the next restart - the static-pod manifest, or for the kubelet
  the command line systemd would build from its unit, drop-ins and environment files.

Flags are read as pflag reads them (harden/cis/lookup.py then finds a test item's value in a view).
"""

from __future__ import annotations

import functools
import posixpath
import shlex
from dataclasses import dataclass, field

import yaml

from harden.cis.probe import Facts
from harden.node.paths import KUBELET_DROPIN_DIRS, KUBELET_ENV_FILES, KUBELET_UNITS, MANIFEST_DIR

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # C parser when built
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


def stray_arguments(args: list[str]) -> list[str]:
    """Words that are neither a flag nor a flag's value, each with what it follows.

    pflag leaves such words as positional arguments, and the components refuse any non-empty
    one: kube-apiserver, kube-controller-manager, kube-scheduler and kube-proxy through cobra
    ("... does not take any arguments"), the kubelet ("unknown command"), etcd ("... is not a
    valid flag"). `--profiling false` is the usual case: a bool flag takes no separate value.
    """
    stray: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            stray.extend(f"{a!r} (after --)" for a in args[i + 1:] if a)
            break
        if arg.startswith("-") and len(arg) > 1:
            name, eq, _ = arg.partition("=")
            nxt = args[i + 1] if i + 1 < len(args) else None
            if not eq and name not in BOOL_FLAGS and nxt is not None and not nxt.startswith("-"):
                i += 1                      # `--flag value`: the next word is the value
            elif not eq and name in BOOL_FLAGS and nxt and not nxt.startswith("-"):
                stray.append(f"{nxt!r} after {name}, a flag that takes no separate value "
                             f"(write {name}={nxt})")
                i += 1
        elif arg:
            stray.append(repr(arg))
        i += 1
    return stray


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
    component: str = ""          # which component's defaults apply to unset settings
    stray: list[str] = field(default_factory=list)   # arguments the component would refuse
    # flags on the command line the component does not apply (why, per flag): kube-scheduler
    # with --config
    ignored_flags: dict[str, str] = field(default_factory=dict)

    def flag(self, name: str) -> str | None:
        values = self.flags.get(name)
        if not values:
            return None
        return ",".join(values) if name in LIST_FLAGS else values[-1]


@functools.lru_cache(maxsize=512)
def yaml_docs(text: str) -> dict | None:
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
        pod = yaml_docs(facts.contents[path]) or {}
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
            view.config = yaml_docs(facts.contents[path]) or {}
            view.config_source = path
        else:
            view.notes.append(f"config file {path} not found")
    config_dir = view.flag("--config-dir")
    if config_dir:
        for dropin in sorted(p for p in facts.contents if posixpath.dirname(p) == config_dir.rstrip("/")
                             and p.endswith(".conf")):
            view.config = _deep_merge(view.config or {}, yaml_docs(facts.contents[dropin]) or {})
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
    stat = facts.followed(path) if path else None
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
                         root=f"/proc/{proc.pid}/root", component=component,
                         stray=stray_arguments(proc.argv[1:]))
    configured = None
    if component == "kubelet":
        built = configured_kubelet_argv(facts)
        if built:
            argv, sources = built
            configured = View("kubelet service (" + ", ".join(sources) + ")", parse_flags(argv[1:]),
                              component=component, stray=stray_arguments(argv[1:]))
            _attach_kubelet_config(configured, facts)
        if effective:
            _attach_kubelet_config(effective, facts)
            effective.stale = _stale_config(effective, proc, facts)
    elif component == "kube-proxy":
        if effective and proc and effective.flag("--config"):
            inside = f"/proc/{proc.pid}/root{effective.flag('--config')}"
            if inside in facts.contents:
                effective.config = yaml_docs(facts.contents[inside]) or {}
                effective.config_source = f"{effective.flag('--config')} (inside the kube-proxy container)"
    else:
        manifest = manifest_commands(facts).get(component)
        if manifest:
            configured = View(f"manifest {manifest[0]}", parse_flags(manifest[1][1:]), component=component,
                              stray=stray_arguments(manifest[1][1:]))
        if component == "kube-scheduler":
            if effective:
                _attach_scheduler_config(effective, facts, effective.root, "in the kube-scheduler container")
            if configured:
                _attach_scheduler_config(configured, facts, "", "on the host")
    return effective, configured


# Flags kube-scheduler ignores once --config is given: with a config file it applies only the
# leader-election flags besides serving, authn/authz, metrics and logs; the deprecated options
# (--profiling, --contention-profiling among them) apply only without --config
# (cmd/kube-scheduler/app/options/options.go, Options.ApplyTo).
SCHEDULER_IGNORED_WITH_CONFIG = ("--profiling", "--contention-profiling")


def _attach_scheduler_config(view: View, facts: Facts, root: str, where: str) -> None:
    """The KubeSchedulerConfiguration the view's --config names: read inside the running
    container (`root`), or on the host through the manifest's hostPath volumes."""
    path = view.flag("--config")
    if not path:
        return
    view.ignored_flags = {flag: f"the scheduler runs with --config {path}"
                          for flag in SCHEDULER_IGNORED_WITH_CONFIG}
    node_path = root + path if root else facts.host_paths.get("kube-scheduler", {}).get(path, path)
    if node_path in facts.contents:
        view.config = yaml_docs(facts.contents[node_path]) or {}
        view.config_source = f"{path} ({where})" if node_path == root + path else \
            f"{path} (host {node_path})"
    else:
        view.config = {}
        view.notes.append(f"config file {path} not found {where}")
