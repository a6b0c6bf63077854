"""Lab nodes have their own /etc, /usr and /var (overlays over the machine's): a role that edits
login.defs, suid bits or /var/lib on a node changes that node only, and `lab down` + `up` starts
from the machine's files again. Everything is done through ssh + sudo, as a playbook would."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import pytest

from harden.lab import cluster

pytestmark = pytest.mark.lab

MARKER = "HARDEN_LAB_OVERLAY_MARKER"
BINARY = "/usr/bin/true"
VAR_FILE = "/var/lib/harden-lab-overlay/state"


def sudo(lab, node: str, command: str, check: bool = True):
    return lab.ssh(node, f"sudo -S -p '' sh -c {shlex.quote(command)}", user="labops",
                   stdin=lab.become_password + "\n", check=check)


def node_view(lab, node: str) -> tuple[bool, str, str]:
    """(marker in login.defs, mode of BINARY, VAR_FILE's content or '') as the node sees them."""
    out = lab.ssh(node, f"grep -c {MARKER} /etc/login.defs; stat -c %a {BINARY}; "
                        f"cat {VAR_FILE} 2>/dev/null; true", check=False).stdout.split("\n")
    return out[0].strip() != "0", out[1].strip(), out[2].strip() if len(out) > 2 else ""


def test_writes_to_etc_usr_var_stay_on_their_node_until_the_lab_restarts(lab_factory):
    host_mode = stat.S_IMODE(os.stat(BINARY).st_mode)
    host_defs = Path("/etc/login.defs").read_bytes()
    untouched = (False, f"{host_mode:o}", "")
    with lab_factory.running(control_planes=1, workers=1) as lab:
        sudo(lab, "cp1", f"echo {MARKER} >> /etc/login.defs; chmod 4700 {BINARY}; "
                         f"mkdir -p {os.path.dirname(VAR_FILE)}; echo cp1-state > {VAR_FILE}")
        assert node_view(lab, "cp1") == (True, "4700", "cp1-state")
        assert node_view(lab, "w1") == untouched
        assert Path("/etc/login.defs").read_bytes() == host_defs
        assert stat.S_IMODE(os.stat(BINARY).st_mode) == host_mode
        assert not os.path.exists(VAR_FILE)
        upper = lab.dir / "nodes/cp1/overlay"
        assert MARKER in (upper / "etc/upper/login.defs").read_text()
        assert (upper / "var/upper" / VAR_FILE.split("/var/", 1)[1]).read_text() == "cp1-state\n"
        cluster.down(lab.dir)
        cluster.up(lab.dir, control_planes=1, workers=1, net=lab.net)
        assert node_view(lab, "cp1") == untouched
        assert node_view(lab, "w1") == untouched


def test_usermod_renames_over_the_nodes_passwd_and_leaves_the_machines_alone(lab3):
    host_passwd = Path("/etc/passwd").read_bytes()
    try:
        sudo(lab3, "w1", "usermod -c overlay-test labops")
        assert "labops:x:" in lab3.ssh("w1", "getent passwd labops").stdout
        assert ":overlay-test:" in lab3.ssh("w1", "getent passwd labops").stdout
        assert ":overlay-test:" not in lab3.ssh("cp1", "getent passwd labops").stdout
        assert Path("/etc/passwd").read_bytes() == host_passwd
        mounts = lab3.ssh("w1", "cat /proc/self/mountinfo").stdout
        assert not any(line.split()[4] == "/etc/passwd" for line in mounts.splitlines())
    finally:
        sudo(lab3, "w1", "usermod -c 'harden lab operator' labops")


@pytest.mark.parametrize("under", ["/etc/harden-lab", "/usr/local/lab", "/var/tmp/lab"])
def test_up_refuses_a_lab_dir_its_nodes_would_hide(under):
    with pytest.raises(Exception, match="cannot be under"):
        cluster.check_lab_dir(Path(under))
