"""4.3.1 on a node without kube-proxy: no metrics service is bound anywhere, so it PASSes, and
`actual` says kube-proxy is absent (kube-bench FAILs there; docs/cis-coverage.md deviation 14)."""

from __future__ import annotations

from support.cis_nodes import kubelet, results


def test_no_kube_proxy_passes_and_says_so():
    result = results(kubelet({}), "worker")["4.3.1"]
    assert result.status == "PASS"
    assert result.actual == ("kube-proxy is not running and has no configuration on this node; "
                             "--metrics-bind-address / config metricsBindAddress is not set")
