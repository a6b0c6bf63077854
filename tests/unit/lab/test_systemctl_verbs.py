"""The lab's systemctl answers for any unit from the node's unit files, as systemd would: the
enablement state from [Install] and the links in /etc/systemd/system, masks as /dev/null links,
active states from the processes the supervisor runs, and listings Ansible's service_facts
parses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from harden.lab.systemctl_verbs import Systemctl, parse
from harden.lab.units import Units, unit_name

SERVICE = "[Unit]\nDescription={d}\n[Service]\nExecStart=/bin/true\n"
INSTALL = "[Install]\nWantedBy=multi-user.target\n"


@dataclass
class FakeProcess:
    name: str
    state: str = "active"
    pid: int | None = 42
    error: str = ""


@pytest.fixture
def node(tmp_path: Path):
    lib = tmp_path / "usr/lib/systemd/system"
    etc = tmp_path / "etc/systemd/system"
    lib.mkdir(parents=True)
    (etc / "multi-user.target.wants").mkdir(parents=True)
    (lib / "auditd.service").write_text(SERVICE.format(d="Security Auditing") + INSTALL)
    (lib / "rsync.service").write_text(SERVICE.format(d="rsync daemon") + INSTALL)
    (lib / "static.service").write_text(SERVICE.format(d="no install section"))
    (lib / "ssh.service").write_text(SERVICE.format(d="OpenBSD Secure Shell server") + INSTALL
                                     + "Alias=sshd.service\n")
    os.symlink("/usr/lib/systemd/system/auditd.service",
               etc / "multi-user.target.wants/auditd.service")
    os.symlink("/usr/lib/systemd/system/ssh.service", etc / "sshd.service")
    processes = {"ssh.service": FakeProcess("sshd")}
    started, stopped = [], []
    ctl = Systemctl(Units(str(tmp_path)), processes,
                    lambda p: (started.append(p.name), setattr(p, "state", "active")),
                    lambda p: (stopped.append(p.name), setattr(p, "state", "inactive")))
    ctl.started, ctl.stopped = started, stopped
    return ctl, tmp_path


def test_a_name_without_type_is_a_service():
    assert unit_name("auditd") == "auditd.service"
    assert unit_name("apt-daily.timer") == "apt-daily.timer"


def test_enablement_states_come_from_install_sections_and_links(node):
    ctl, _ = node
    assert ctl.handle(["is-enabled", "auditd"]) == (0, "enabled\n", "")
    assert ctl.handle(["is-enabled", "rsync"]) == (1, "disabled\n", "")
    assert ctl.handle(["is-enabled", "static"]) == (0, "static\n", "")
    assert ctl.handle(["is-enabled", "sshd"])[1] == "alias\n"
    rc, out, err = ctl.handle(["is-enabled", "nosuch"])
    assert rc == 1 and out == "" and "No such file" in err


def test_enable_and_disable_write_the_links_systemctl_writes(node):
    ctl, root = node
    link = root / "etc/systemd/system/multi-user.target.wants/rsync.service"
    assert ctl.handle(["enable", "rsync.service"])[0] == 0
    assert os.readlink(link) == "/usr/lib/systemd/system/rsync.service"
    assert ctl.handle(["is-enabled", "rsync"])[1] == "enabled\n"
    assert ctl.handle(["disable", "rsync"])[0] == 0
    assert not os.path.lexists(link)
    assert "no installation config" in ctl.handle(["enable", "static"])[2]


def test_mask_links_to_dev_null_and_refuses_to_start(node):
    ctl, root = node
    assert ctl.handle(["mask", "rsync"])[0] == 0
    assert os.readlink(root / "etc/systemd/system/rsync.service") == "/dev/null"
    assert ctl.handle(["is-enabled", "rsync"]) == (1, "masked\n", "")
    assert ctl.handle(["show", "rsync", "-p", "LoadState", "--value"])[1] == "masked\n"
    rc, _, err = ctl.handle(["start", "rsync"])
    assert rc == 1 and "masked" in err
    ctl.handle(["unmask", "rsync"])
    assert ctl.handle(["is-enabled", "rsync"])[1] == "disabled\n"


def test_units_without_a_process_are_inactive_until_started(node):
    ctl, _ = node
    assert ctl.handle(["is-active", "auditd"]) == (3, "inactive\n", "")
    assert ctl.handle(["start", "auditd"])[0] == 0
    assert ctl.handle(["show", "auditd", "--property=ActiveState,SubState"])[1] == \
        "ActiveState=active\nSubState=exited\n"
    ctl.handle(["stop", "auditd"])
    assert ctl.handle(["is-active", "auditd"])[1] == "inactive\n"
    assert ctl.handle(["start", "nosuch"])[0] == 5


def test_a_supervised_unit_reports_its_process_and_restarts_it(node):
    ctl, _ = node
    shown = dict(line.split("=", 1) for line in ctl.handle(["show", "ssh"])[1].split("\n")
                 if "=" in line)
    assert shown["ActiveState"] == "active" and shown["SubState"] == "running"
    assert shown["MainPID"] == "42" and shown["LoadState"] == "loaded"
    assert shown["UnitFileState"] == "disabled"     # its WantedBy link is not there
    ctl.handle(["restart", "sshd.service"])          # through the alias
    assert ctl.stopped == ["sshd"] and ctl.started == ["sshd"]


def test_listings_have_the_columns_service_facts_reads(node):
    ctl, _ = node
    ctl.handle(["start", "rsync"])
    units = ctl.handle(["list-units", "--no-pager", "--type", "service", "--all", "--plain"])[1]
    rows = {line.split()[0]: line.split()[1:4] for line in units.splitlines()
            if ".service" in line}
    assert rows == {"auditd.service": ["loaded", "inactive", "dead"],
                    "rsync.service": ["loaded", "active", "exited"],
                    "ssh.service": ["loaded", "active", "running"]}
    files = ctl.handle(["list-unit-files", "--no-pager", "--type", "service", "--all"])[1]
    states = {line.split()[0]: line.split()[1] for line in files.splitlines()
              if ".service" in line}
    assert states == {"auditd.service": "enabled", "rsync.service": "disabled",
                      "ssh.service": "disabled", "sshd.service": "alias",
                      "static.service": "static"}
    assert ctl.handle(["list-unit-files", "nosuch*"])[0] == 1


def test_options_with_values_are_not_taken_for_units():
    req = parse(["show", "--no-pager", "-p", "ActiveState", "--type=service", "x"])
    assert (req.verb, req.units, req.properties, req.types) == \
        ("show", ["x"], ["ActiveState"], ["service"])
    assert parse([]).verb == "list-units"
