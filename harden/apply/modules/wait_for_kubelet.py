"""`wait_for_kubelet`: the kubelet service is active and its /healthz answers, N times in a row.

Address and port come from the KubeletConfiguration the running kubelet uses
(healthzBindAddress / healthzPort, defaults 127.0.0.1:10248), so a hardened config that moves
them is followed. The waiting itself is the runner's (see wait_for_static_pod.WaitSpec).
"""

from __future__ import annotations

import yaml

from harden.apply.facts import KUBELET, FactRequest, Facts
from harden.apply.modules.base import Arg, Change, Module, PlanContext, TaskFailed
from harden.apply.modules.wait_for_static_pod import HttpProbe, WaitSpec, pace
from harden.node import limits
from harden.node.paths import DEFAULT_KUBELET_CONFIG


class WaitForKubeletModule(Module):
    name = "wait_for_kubelet"
    args = (
        Arg("successes", "int"),
        Arg("timeout", "int", default=120),
        Arg("interval", "number"),
        Arg("service", default="kubelet"),
    )

    def facts_needed(self, args: dict) -> list[FactRequest]:
        return [FactRequest(KUBELET, DEFAULT_KUBELET_CONFIG, content=True)]

    def plan(self, args: dict, facts: Facts, ctx: PlanContext) -> list[Change]:
        self.wait_spec(args, facts)
        return []

    def wait_spec(self, args: dict, facts: Facts, variables: dict | None = None) -> WaitSpec:
        kubelet = facts.kubelet()
        state = facts.file(kubelet.config_path, content=True)
        config = {}
        if state is not None:
            try:
                config = limits.safe_load(state.content, kubelet.config_path) or {}
            except limits.NodeDataError as exc:
                raise TaskFailed(f"wait_for_kubelet: {exc}") from None
            except yaml.YAMLError as exc:
                raise TaskFailed(f"wait_for_kubelet: {kubelet.config_path}: {exc}") from None
        address = str(config.get("healthzBindAddress") or "127.0.0.1")
        port = int(config.get("healthzPort", 10248))
        if port == 0:
            raise TaskFailed("wait_for_kubelet: healthzPort is 0 (healthz disabled); "
                             "nothing to wait for")
        successes, interval = pace(args, variables)
        return WaitSpec("kubelet", None, [HttpProbe("HTTP", address, port, "/healthz")],
                        successes, args["timeout"], interval, service=args["service"])


MODULE = WaitForKubeletModule()
