"""A lab node's `kubectl` is one binary, as a kubeadm node's is: where the machine's `kubectl`
is the Google Cloud SDK dispatcher (which starts a versioned kubectl as a second process on
every call), the node's /usr overlay holds the versioned binary at the same path; the machine's
own /usr/bin is left as it is."""

from __future__ import annotations

import os

import pytest

from harden.lab import cluster

pytestmark = pytest.mark.lab


def test_a_nodes_kubectl_is_a_single_binary_that_talks_to_the_lab_api_server(lab3):
    lab3.wait_ready()
    machine = cluster.node_kubectl()
    out = lab3.ssh("cp1", "p=$(command -v kubectl); echo $p; readlink -f $p; kubectl "
                          "--kubeconfig=/etc/kubernetes/admin.conf version").stdout.splitlines()
    if machine is None:
        assert os.path.realpath(out[0]) == out[1]          # the machine's own kubectl, untouched
    else:
        assert out[0] == machine[0] and out[1] == os.path.realpath(machine[1])
        assert os.path.realpath(machine[0]) != out[1]        # the machine keeps its dispatcher
    assert any(line.startswith("Server Version: v1.") for line in out)
