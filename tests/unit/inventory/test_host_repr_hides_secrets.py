"""A Host printed in a traceback or a debug log must not show its connection password."""

from __future__ import annotations

from harden.inventory.loader import Host


def test_host_repr_hides_vars():
    host = Host("cp1", {"ansible_become_password": "hunter2-secret", "ansible_host": "10.0.0.5"},
                ["all", "control_plane"])
    text = repr(host)
    assert "hunter2-secret" not in text
    assert "cp1" in text and "control_plane" in text
