"""The modules and facts node-preparation roles use, run by ansible-playbook and by harden on two
lab nodes of the same lab: gathered facts in `when` and content, file states (directory,
touch, link, absent), slurp, find, systemd (enabled, started, masked), apt/package judged from
dpkg, and meta flush_handlers. Both report the same ok/changed/failed/skipped counts, leave
byte-identical files with the same modes and the same unit states, change nothing the second
time, and `--check --diff` shows the same content hunks. Also: a role using service_facts,
systemd and package in check mode runs under real ansible-playbook on a lab node."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from support.ansible import run_ansible, run_harden, write_content

pytestmark = pytest.mark.lab

DIR = "/etc/kubernetes/prep"
UNIT = "[Unit]\nDescription=parity demo\n[Service]\nExecStart=/bin/true\n" \
       "[Install]\nWantedBy=multi-user.target\n"
CONTENT = {
    "site.yml": """\
        - name: node preparation
          hosts: all
          become: true
          roles:
            - prep
        """,
    "roles/prep/defaults/main.yml": f"prep_dir: {DIR}\n",
    "roles/prep/tasks/main.yml": """\
        - name: prep dir
          ansible.builtin.file: path={{ prep_dir }} state=directory mode=0750
        - name: what the node is
          ansible.builtin.copy:
            dest: "{{ prep_dir }}/os"
            content: "{{ ansible_distribution }} {{ ansible_os_family }} {{ ansible_service_mgr }}\\n"
            mode: "0644"
          when: ansible_os_family == 'Debian'
        - name: only elsewhere
          ansible.builtin.copy: dest={{ prep_dir }}/never content=x
          when: ansible_os_family == 'NoSuchFamily'
        - name: a marker
          ansible.builtin.file:
            path: "{{ prep_dir }}/marker"
            state: touch
            mode: "0600"
            modification_time: preserve
            access_time: preserve
        - name: a link to the kubeconfig
          ansible.builtin.file: path={{ prep_dir }}/kubelet.conf state=link src=/etc/kubernetes/kubelet.conf
        - name: the legacy file goes
          ansible.builtin.file: path=/etc/kubernetes/legacy.conf state=absent
        - name: read the hostname
          ansible.builtin.slurp: src=/etc/hostname
          register: host_name
        - name: kubeconfigs
          ansible.builtin.find: paths=/etc/kubernetes patterns=*.conf
          register: kubeconfigs
        - name: what was read and found
          ansible.builtin.copy:
            dest: "{{ prep_dir }}/seen"
            content: "{{ host_name.content | b64decode }}{{ kubeconfigs.files | map(attribute='path') | sort | join(',') }}\\n"
          notify: record
        - meta: flush_handlers
        - name: the handler ran before this task
          ansible.builtin.shell: cp {{ prep_dir }}/handler.log {{ prep_dir }}/after-flush creates={{ prep_dir }}/after-flush
        - name: the demo unit enabled and started
          ansible.builtin.systemd:
            name: parity-demo
            enabled: true
            state: started
        - name: a unit nobody may start
          ansible.builtin.systemd: name=parity-forbidden.service masked=yes
        - name: the kubelet stays as it is
          ansible.builtin.service: name=kubelet state=started enabled=true
        - name: coreutils is there
          ansible.builtin.apt: name=coreutils state=present
        """,
    "roles/prep/handlers/main.yml": """\
        - name: record
          ansible.builtin.shell: echo ran >> {{ prep_dir }}/handler.log
        """,
}


PACKAGE_CHECK = {
    "pkg.yml": """\
        - name: packages, judged
          hosts: all
          gather_facts: false
          become: true
          tasks:
            - name: installed already
              ansible.builtin.package: name=coreutils state=present
            - name: would be installed
              ansible.builtin.apt: name={{ missing_package }} state=present
            - name: would be removed (sudo, which every lab machine has and is not essential)
              ansible.builtin.apt:
                name: [sudo]
                state: absent
            - name: not there, stays away
              ansible.builtin.package: name={{ missing_package }} state=absent
        """,
}


def a_missing_package() -> str:
    """A package apt could install that this machine (so every lab node) does not have."""
    for name in ("cowsay", "sl", "fortune-mod", "figlet", "cmatrix"):
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name],
                                capture_output=True, text=True)
        policy = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True)
        candidate = re.search(r"Candidate:\s*(\S+)", policy.stdout)
        if "installed" not in status.stdout.split()[-1:] and candidate and \
                candidate.group(1) != "(none)":
            return name
    pytest.skip("no installable, not installed package known to apt here")


# site.yml's plays and the package play, for the one check-mode run each tool makes
CHECK_PLAYBOOK = {"check.yml": "- import_playbook: site.yml\n- import_playbook: pkg.yml\n"}


@pytest.fixture(scope="module")
def lab2(lab_factory):
    with lab_factory.running(control_planes=0, workers=2) as lab:
        for node in lab.names():
            root = lab.node_root(node)
            (root / "etc/systemd/system/parity-demo.service").write_text(UNIT)
            (root / "etc/kubernetes/legacy.conf").write_text("old\n")
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory) -> Path:
    return write_content(tmp_path_factory.mktemp("prep"), {**CONTENT, **PACKAGE_CHECK, **CHECK_PLAYBOOK})


def tree(lab, node: str) -> dict:
    root = lab.node_root(node) / DIR.lstrip("/")
    out = {".": oct(root.stat().st_mode & 0o7777)}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        else:
            out[rel] = (oct(path.stat().st_mode & 0o7777), path.read_bytes())
    return out


def node_state(lab, node: str) -> dict:
    units = lab.ssh(node, "for u in parity-demo parity-forbidden kubelet; do "
                          "systemctl is-enabled $u; systemctl is-active $u; done",
                    check=False).stdout.split()
    legacy = (lab.node_root(node) / "etc/kubernetes/legacy.conf").exists()
    return {"units": units, "legacy": legacy}


def content_hunks(text: str) -> list[str]:
    """The +/- lines of content diffs (not the headers, which each tool writes its way)."""
    return [line for line in text.splitlines()
            if line[:1] and line[:1] in "+-" and not line.startswith(("+++", "---"))
            and not re.match(r'^[+-]\s*"?(path|state|mode|owner|group|\w+ \d{4}|directory|'
                             r'file|link)\b', line)]


def ansible_task_diffs(stdout: str) -> dict:
    out = {}
    for block in stdout.split("TASK [")[1:]:
        name = block.split("]", 1)[0].split(" : ")[-1]
        out[name] = content_hunks(block)
    return out


def ansible_task_statuses(stdout: str, node: str) -> dict:
    """Each task's status on `node` as ansible-playbook printed it (skipping -> skipped)."""
    out = {}
    for block in stdout.split("TASK [")[1:]:
        name = block.split("]", 1)[0].split(" : ")[-1]
        found = re.search(rf"^(ok|changed|skipping|failed|fatal): \[{re.escape(node)}\]",
                          block, re.M)
        if found:
            out[name] = {"skipping": "skipped", "fatal": "failed"}.get(found.group(1),
                                                                      found.group(1))
    return out


@pytest.mark.timeout(600)          # ansible-playbook is slow on a busy machine
def test_check_diff_matches_ansible_and_writes_nothing(lab2, content, tmp_path):
    """Also the package play (see PACKAGE_CHECK): one check-mode run per tool holds both, each
    judged by its own tasks below."""
    missing = a_missing_package()
    by_ansible, by_harden = lab2.names()
    options = ("--check", "--diff", "-e", f"missing_package={missing}")
    check_a, out_a = run_ansible(lab2, content, by_ansible, *options, playbook="check.yml")
    check_h, report = run_harden(lab2, content, by_harden, tmp_path, *options,
                                 playbook="check.yml", expect=2)
    assert check_a == check_h
    ours = {t["task"]: content_hunks(t.get("diff", "")) for t in report["tasks"][by_harden]}
    theirs = ansible_task_diffs(out_a)
    assert ours["what the node is"] == theirs["what the node is"]
    assert ours["what the node is"]
    # One known difference: harden's check mode plans each task on what the earlier ones
    # leave, so find no longer lists the file an earlier task removes (the real run's
    # content); ansible-playbook --check lists the node as it is.
    legacy = ",/etc/kubernetes/legacy.conf"
    assert any(legacy in line for line in theirs["what was read and found"])
    assert ours["what was read and found"] == \
        [line.replace(legacy, "") for line in theirs["what was read and found"]]
    assert node_state(lab2, by_harden) == node_state(lab2, by_ansible)   # check wrote nothing
    assert not (lab2.node_root(by_harden) / DIR.lstrip("/")).exists()
    # the package play: what dpkg says, judged the same by both tools
    packages = {"installed already": "ok", "would be installed": "changed",
                "would be removed (sudo, which every lab machine has and is not essential)":
                    "changed", "not there, stays away": "ok"}
    assert {k: v for k, v in ansible_task_statuses(out_a, by_ansible).items()
            if k in packages} == packages
    assert {t["task"]: t["status"] for t in report["tasks"][by_harden]
            if t["task"] in packages} == packages


@pytest.mark.timeout(900)
def test_two_runs_leave_the_same_node_as_ansible_and_the_second_changes_nothing(
        lab2, content, tmp_path):
    by_ansible, by_harden = lab2.names()
    first = run_ansible(lab2, content, by_ansible)[0], \
        run_harden(lab2, content, by_harden, tmp_path)[0]
    assert first[0] == first[1] and first[0]["changed"] >= 8 and first[0]["skipped"] == 1
    again = run_ansible(lab2, content, by_ansible)[0], \
        run_harden(lab2, content, by_harden, tmp_path)[0]
    assert again[0] == again[1] and again[0]["changed"] == 0

    files = tree(lab2, by_ansible)
    assert files == tree(lab2, by_harden)
    assert files["after-flush"][1] == b"ran\n" and files["kubelet.conf"][0] == "link"
    assert files["os"][1].decode().split()[2] == "systemd" and "never" not in files
    state = node_state(lab2, by_ansible)
    assert state == node_state(lab2, by_harden)
    assert state["units"][:4] == ["enabled", "active", "masked", "inactive"]
    assert state["legacy"] is False


SERVICE_ROLE = {
    "svc.yml": """\
        - name: what a hardening role asks of a node
          hosts: all
          become: true
          roles: [svc]
        """,
    "roles/svc/tasks/main.yml": """\
        - ansible.builtin.service_facts:
        - name: the facts name the node's units
          ansible.builtin.assert:
            that:
              - ansible_facts.services['kubelet.service'].state == 'running'
              - ansible_facts.services['kubelet.service'].status == 'enabled'
              - ansible_facts.services['parity-demo.service'] is defined
              - ansible_service_mgr == 'systemd'
        - name: a unit is disabled
          ansible.builtin.systemd: name=parity-demo enabled=false
        - name: a package would be installed
          ansible.builtin.package: name=coreutils state=latest
          check_mode: true
        """,
}


def test_a_role_using_service_facts_and_systemd_runs_on_a_lab_node(lab2, tmp_path):
    content = write_content(tmp_path, SERVICE_ROLE)
    node = lab2.names()[0]
    counts = run_ansible(lab2, content, node, playbook="svc.yml")[0]
    assert counts["failed"] == 0
    assert lab2.ssh(node, "systemctl is-enabled parity-demo", check=False).stdout == \
        "disabled\n"
