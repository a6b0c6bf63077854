"""`kubelet_config`: set keys in the KubeletConfiguration the running kubelet really reads.

The file is the one named by the running kubelet's `--config` (not an assumed path), edited at
line level. Command-line flags override the file, so a hardened file can be silently undone by
`KUBELET_KUBEADM_ARGS` (kubeadm-flags.env) or `KUBELET_EXTRA_ARGS` (/etc/default/kubelet,
/etc/sysconfig/kubelet): such flags are removed when they disagree with the wanted value
(`fix_flags`, default), or reported as a failure otherwise.
"""

from __future__ import annotations

import re
import shlex

from harden.apply import kubeadm_persist
from harden.apply.facts import FILE, KUBELET, FactRequest, Facts
from harden.apply.manifest import YamlText
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed, plan_write
from harden.kubeadm import kubelet_config as kubeadm_kubelet
from harden.node.paths import DEFAULT_KUBELET_CONFIG, KUBEADM_FLAGS_ENV, KUBELET_EXTRA_ARGS_ENVS


# KubeletConfiguration key → the command-line flag that overrides it.
KEY_FLAGS = {
    "address": "address",
    "authentication.anonymous.enabled": "anonymous-auth",
    "authentication.webhook.enabled": "authentication-token-webhook",
    "authentication.x509.clientCAFile": "client-ca-file",
    "authorization.mode": "authorization-mode",
    "eventRecordQPS": "event-qps",
    "healthzBindAddress": "healthz-bind-address",
    "healthzPort": "healthz-port",
    "makeIPTablesUtilChains": "make-iptables-util-chains",
    "podPidsLimit": "pod-max-pids",
    "port": "port",
    "protectKernelDefaults": "protect-kernel-defaults",
    "readOnlyPort": "read-only-port",
    "rotateCertificates": "rotate-certificates",
    "seccompDefault": "seccomp-default",
    "serverTLSBootstrap": "rotate-server-certificates",
    "streamingConnectionIdleTimeout": "streaming-connection-idle-timeout",
    "tlsCertFile": "tls-cert-file",
    "tlsCipherSuites": "tls-cipher-suites",
    "tlsMinVersion": "tls-min-version",
    "tlsPrivateKeyFile": "tls-private-key-file",
}
_ENV_LINE = re.compile(r"^(?P<var>KUBELET_[A-Z_]+)=(?P<value>.*)$")


class KubeletConfigModule(Module):
    name = "kubelet_config"
    args = (
        Arg("set", "dict", required=True),
        Arg("config", default=DEFAULT_KUBELET_CONFIG),
        Arg("fix_flags", "bool", default=True),
        Arg("flags_env", default=KUBEADM_FLAGS_ENV),
        Arg("extra_args_env", "list", default=list(KUBELET_EXTRA_ARGS_ENVS)),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        envs = [args["flags_env"], *args["extra_args_env"]]
        return [FactRequest(KUBELET, args["config"], content=True),
                kubeadm_persist.request(kubeadm_persist.KUBELET_CONFIG)] + \
            [FactRequest(FILE, p, content=True) for p in envs]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        kubelet = facts.kubelet()
        state = facts.file(kubelet.config_path, content=True)
        if state is None:
            raise TaskFailed(f"kubelet_config: {kubelet.config_path} (the kubelet's --config) "
                             "does not exist on this host")
        doc = YamlText(state.content.decode(), kubelet.config_path)
        kind = doc.value(["kind"])
        if kind != "KubeletConfiguration":
            raise TaskFailed(f"kubelet_config: {kubelet.config_path} is a {kind!r}, "
                             "not a KubeletConfiguration")
        for key, value in args["set"].items():
            doc.set(str(key).split("."), value)
        changes = plan_write(kubelet.config_path, doc.text.encode(), state, None, None, None,
                             secret=False)
        wanted = {KEY_FLAGS.get(k) or _kebab(k): _flag_text(v) for k, v in args["set"].items()
                  if not k.startswith("featureGates.")}
        removed: set[str] = set()
        for env_path in [args["flags_env"], *args["extra_args_env"]]:
            env_state = facts.file(env_path, content=True)
            if env_state is None:
                continue
            text, dropped = _without_overrides(env_state.content.decode(), wanted)
            if not dropped:
                continue
            if not args["fix_flags"]:
                raise TaskFailed(f"kubelet_config: {env_path} sets {', '.join(dropped)}, which "
                                 "override(s) the config file (fix_flags: true removes them)")
            removed.update(dropped)
            changes += plan_write(env_path, text.encode(), env_state, None, None, None, False)
        _check_running_flags(kubelet.argv, wanted, removed)
        return changes + kubeadm_persist.plan(
            facts, ctx, kubeadm_persist.KUBELET_CONFIG, kubeadm_persist.KUBELET_KEY,
            kubeadm_persist.KUBELET_CONFIG,
            lambda text: kubeadm_kubelet.persist(text, kubeadm_persist.KUBELET_CONFIG,
                                                 args["set"]), "kubelet_config",
            cluster_wide=True)

    def result(self, args: dict, facts: Facts, changes: list[Change]) -> dict:
        """Whether the keys are kept in kubelet-config (where `kubeadm upgrade node` writes
        every node's file from); node-only says why on the task line."""
        kept = kubeadm_persist.outcome(facts, kubeadm_persist.KUBELET_CONFIG, changes)
        note = kept["kubeadm_config"]
        return {**kept, **({"msg": note} if note.startswith("node only,") else {})}


def _kebab(key: str) -> str:
    last = key.split(".")[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "-", last).lower()


def _flag_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def _parse_flags(tokens: list[str]) -> list[tuple[str, str | None, int, int]]:
    """(name, value, first token index, token count) for each --flag in a token list."""
    out, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        if token.startswith("-"):
            name, eq, value = token.lstrip("-").partition("=")
            if eq:
                out.append((name, value, i, 1))
            elif i + 1 < len(tokens) and not tokens[i + 1].startswith("-"):
                out.append((name, tokens[i + 1], i, 2))
                i += 1
            else:
                out.append((name, None, i, 1))
        i += 1
    return out


def _without_overrides(text: str, wanted: dict[str, str]) -> tuple[str, list[str]]:
    """The env file without flags that contradict `wanted`, and which flags were dropped."""
    lines = text.splitlines(keepends=True)
    dropped: list[str] = []
    for index, line in enumerate(lines):
        match = _ENV_LINE.match(line.rstrip("\n"))
        if not match:
            continue
        raw = match.group("value")
        quote = raw[0] if raw[:1] in ("'", '"') else ""
        tokens = shlex.split(raw)
        tokens = shlex.split(tokens[0]) if len(tokens) == 1 and quote else tokens
        doomed: set[int] = set()
        for name, value, start, count in _parse_flags(tokens):
            if name in wanted and (value if value is not None else "true") != wanted[name]:
                doomed.update(range(start, start + count))
                dropped.append(f"--{name}")
        if doomed:
            kept = " ".join(t for i, t in enumerate(tokens) if i not in doomed)
            lines[index] = f"{match.group('var')}={quote}{kept}{quote}\n"
    return "".join(lines), dropped


def _check_running_flags(argv, wanted: dict[str, str], removed: set[str]) -> None:
    """A contradicting flag that is in none of the env files comes from somewhere harden does
    not manage (e.g. a systemd drop-in): say so rather than report success."""
    if not argv:
        return
    for name, value, _, _ in _parse_flags(list(argv[1:])):
        if name in wanted and f"--{name}" not in removed and \
                (value if value is not None else "true") != wanted[name]:
            raise TaskFailed(f"kubelet_config: the running kubelet has --{name}="
                             f"{value}, set outside kubeadm-flags.env and KUBELET_EXTRA_ARGS "
                             f"(a systemd drop-in?); it overrides {wanted[name]!r} from the "
                             "config file")


MODULE = KubeletConfigModule()
