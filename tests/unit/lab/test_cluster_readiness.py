"""When the lab calls a node ready: the kubelet process must have started serving, not just
been spawned (the supervisor marks a service active the moment it forks)."""
from harden.lab import cluster


def _report(service_pid, kubelet):
    return {"nodes": [{"name": "w1", "role": "worker", "sshd_up": True,
                       "services": {"kubelet": {"state": "active", "pid": service_pid}},
                       "kubelet": kubelet, "pods": {}}]}


def test_a_kubelet_that_wrote_running_under_its_own_pid_is_ready():
    assert cluster.unready(_report(41, {"pid": 41, "state": "running"})) == []


def test_a_just_spawned_kubelet_with_the_previous_process_state_is_not_ready():
    # the state file still says what the last kubelet (pid 40) wrote: failed, or running
    for previous in ({"pid": 40, "state": "failed"}, {"pid": 40, "state": "running"}, {}):
        assert cluster.unready(_report(41, previous)) == ["w1: kubelet not serving yet"]


def test_a_kubelet_that_failed_on_its_config_is_not_ready():
    assert cluster.unready(_report(41, {"pid": 41, "state": "failed"})) == [
        "w1: kubelet not serving yet"]
