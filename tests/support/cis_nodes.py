"""Node fixtures for the CIS verdict tests: Facts as the probe would report them for a control
plane whose static pods use the `command:` + `args:` form, or a kubelet with a config file."""

from __future__ import annotations

import yaml

from harden.cis.catalogue import load_catalogue
from harden.cis.evaluate import evaluate_host
from harden.cis.probe import Facts, Process

MANIFESTS = "/etc/kubernetes/manifests"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
CATALOGUE = load_catalogue()


def static_pod(component: str, args: list[str], running: list[str] | None = None,
               facts: Facts | None = None) -> Facts:
    """A static pod written in the args form; the process runs `running` (default: the same)."""
    facts = facts or Facts(complete=True)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": component, "namespace": "kube-system"},
           "spec": {"containers": [{"name": component, "image": f"registry.k8s.io/{component}:v1.31.0",
                                    "command": [component], "args": args}]}}
    facts.contents[f"{MANIFESTS}/{component}.yaml"] = yaml.safe_dump(pod, sort_keys=False)
    argv = [component, *(args if running is None else running)]
    pid = 100 + len(facts.processes)
    facts.processes[component] = [Process(pid, component, argv, in_pod=True)]
    return facts


def kubelet(config: dict | None, *flags: str, facts: Facts | None = None) -> Facts:
    """A running kubelet; with a config dict, `--config` names it (first on the command line)."""
    facts = facts or Facts(complete=True)
    argv = ["/usr/bin/kubelet", "--kubeconfig=/etc/kubernetes/kubelet.conf"]
    if config is not None:
        argv.append(f"--config={KUBELET_CONFIG}")
        facts.contents[KUBELET_CONFIG] = yaml.safe_dump(
            {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration", **config})
    facts.processes["kubelet"] = [Process(900, "kubelet", argv + list(flags))]
    return facts


def results(facts: Facts, role: str = "control-plane") -> dict:
    return {r.id: r for r in evaluate_host("node", facts, CATALOGUE, role)}
