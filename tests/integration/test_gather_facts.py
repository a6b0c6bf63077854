"""`gather_facts` gives a play the `ansible_*` facts `ansible -m setup` reports on the same lab
node (distribution, kernel, hostname, service and package manager, mounts, env,
virtualization, date_time), within the play's one fact exec; `gather_facts: false` gathers none."""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from support.ansible import ansible_env, ansible_playbook
from support.lab_cli import harden

pytestmark = pytest.mark.lab

COMPARED = ("distribution", "distribution_version", "distribution_major_version",
            "distribution_release", "os_family", "system", "kernel", "kernel_version",
            "architecture", "machine", "hostname", "nodename", "fqdn", "domain", "service_mgr",
            "pkg_mgr", "virtualization_type", "virtualization_role")
MOUNT_KEYS = ("device", "mount", "fstype", "options", "dump", "passno", "uuid", "block_size",
              "block_total", "size_total", "inode_total")
DATE_KEYS = ("tz", "tz_dst", "tz_offset", "year")
ENV_KEYS = ("HOME", "USER", "LOGNAME", "SHELL", "PATH")


@pytest.fixture(scope="module")
def lab1(lab_factory):
    with lab_factory.running(control_planes=0, workers=1) as lab:
        yield lab


def setup_facts(lab, node: str, cwd) -> dict:
    adhoc = str(ansible_playbook()).replace("ansible-playbook", "ansible")
    done = subprocess.run([adhoc, "-i", str(lab.inventory), node, "-m", "setup"],
                          capture_output=True, text=True, timeout=200,
                          env=ansible_env(lab, cwd), cwd=cwd)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    facts = json.loads(done.stdout[done.stdout.index("{"):])["ansible_facts"]
    return {k.removeprefix("ansible_"): v for k, v in facts.items()}


def harden_facts(lab, node: str, tmp_path) -> dict:
    playbook = tmp_path / "facts.yml"
    playbook.write_text(textwrap.dedent("""\
        - name: write what was gathered
          hosts: all
          tasks:
            - name: facts
              copy:
                dest: /etc/kubernetes/facts.json
                content: "{{ ansible_facts | to_json }}"
        - name: facts last for the run
          hosts: all
          gather_facts: false
          tasks:
            - name: a later play sees them, and hostvars too
              assert:
                that:
                  - ansible_kernel == hostvars[inventory_hostname].ansible_facts.kernel
        """))
    done = harden(tmp_path, "apply", "-i", str(lab.inventory), "-l", node, str(playbook),
                  "--format", "json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((lab.node_root(node) / "etc/kubernetes/facts.json").read_text())


def test_gathered_facts_equal_what_ansible_setup_reports(lab1, tmp_path):
    node = lab1.names()[0]
    ours, theirs = harden_facts(lab1, node, tmp_path), setup_facts(lab1, node, tmp_path)
    assert {k: ours[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}
    assert ours["service_mgr"] == "systemd" and ours["os_family"]
    assert {k: ours["env"].get(k) for k in ENV_KEYS} == \
        {k: theirs["env"].get(k) for k in ENV_KEYS}
    # the fact file written between the two gathers is on a mount both list the same way
    # (Ansible collects mounts in parallel threads, so its order varies from run to run)
    assert sorted(([m.get(k) for k in MOUNT_KEYS] for m in ours["mounts"]), key=str) == \
        sorted(([m.get(k) for k in MOUNT_KEYS] for m in theirs["mounts"]), key=str)
    assert any(m["options"].endswith(",bind") for m in ours["mounts"])
    # date_time: the same keys and zone; the instants differ by the seconds between the two
    assert set(ours["date_time"]) == set(theirs["date_time"])
    assert [ours["date_time"][k] for k in DATE_KEYS] == [theirs["date_time"][k] for k in DATE_KEYS]
    assert abs(int(ours["date_time"]["epoch"]) - int(theirs["date_time"]["epoch"])) < 120


def test_without_gather_facts_a_fact_is_undefined(lab1, tmp_path):
    playbook = tmp_path / "nofacts.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: uses a fact
              debug:
                msg: "{{ ansible_distribution }}"
        """))
    done = harden(tmp_path, "apply", "-i", str(lab1.inventory), str(playbook),
                  "--format", "json")
    task = json.loads(done.stdout)["tasks"][lab1.names()[0]][0]
    assert done.returncode == 4 and task["status"] == "failed"
    assert "ansible_distribution" in task["message"]
