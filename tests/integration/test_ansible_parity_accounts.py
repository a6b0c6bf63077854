"""user, group, getent and community.general.pam_limits, run by ansible-playbook and by harden
on two worker nodes of one lab (each node has its own /etc, so both start from the same files):
the same ok/changed/skipped counts, byte-identical account and limits files with the same modes,
nothing changed the second time, the same --check --diff hunks, and `harden rollback` putting
every file back byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.ansible import harden_report, run_ansible, write_content
from support.lab_cli import harden

pytestmark = pytest.mark.lab

FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/passwd-",
         "/etc/shadow-", "/etc/group-", "/etc/gshadow-", "/etc/subuid", "/etc/subgid",
         "/etc/security/limits.conf", "/etc/security/limits.d/10.hardcore.conf",
         "/etc/harden-accounts", "/var/lib/op-harden", "/var/lib/op-harden/.profile")
CONTENT = {
    "site.yml": r"""
        - name: accounts and limits
          hosts: all
          become: true
          gather_facts: false
          tasks:
            - name: a group with a fixed gid
              ansible.builtin.group: name=hardened gid=2901
            - name: a system group
              ansible.builtin.group: name=auditors system=true
            - name: a service account
              ansible.builtin.user:
                name: svc-harden
                uid: 2950
                shell: /usr/sbin/nologin
                comment: harden parity
                home: /var/lib/svc-harden
                create_home: false
                system: true
                groups: [hardened]
                password: "*"
            - name: an operator with a home under /var
              ansible.builtin.user:
                name: op-harden
                home: /var/lib/op-harden
                groups: hardened,auditors
                append: true
                password_expire_max: 90
                password_expire_min: 1
                password_expire_warn: 7
            - name: read passwd
              ansible.builtin.getent: database=passwd
            - name: read shadow
              ansible.builtin.getent: database=shadow
            - name: a system account loses its shell
              ansible.builtin.user: name=games shell=/usr/sbin/nologin createhome=false
              when: ansible_facts.getent_passwd['games'][1] | int < 1000
            - name: a system account's password locked
              ansible.builtin.user: name=news password=! createhome=false
              when: ansible_facts.getent_shadow['news'][0] is not match("\!")
            - name: labops password ageing
              ansible.builtin.user: name=labops password_expire_max=60 password_expire_warn=7
            - name: labops joins a group
              ansible.builtin.user: name=labops groups=hardened append=true
              when: not ansible_check_mode      # the group is not there yet
            - name: one group by key
              ansible.builtin.getent: database=group key=hardened fail_key=false
            - name: what getent saw
              ansible.builtin.copy:
                dest: /etc/harden-accounts
                content: "{{ ansible_facts.getent_group['hardened'] | join(':') }} {{ getent_passwd['svc-harden'][4] }}\n"
              when: not ansible_check_mode
            - name: a key that is not there
              ansible.builtin.getent: database=passwd key=nosuchuser fail_key=false
            - name: no core dumps
              community.general.pam_limits:
                dest: /etc/security/limits.d/10.hardcore.conf
                domain: "*"
                limit_type: hard
                limit_item: core
                value: "0"
                comment: no core dumps
            - name: more open files for labops
              community.general.pam_limits: domain=labops limit_type=soft limit_item=nofile value=4096 use_max=true
            - name: a retired user goes
              ansible.builtin.user: name=retired state=absent
            - name: a retired group goes
              ansible.builtin.group: name=retired-group state=absent
    """,
}


def run_harden(lab, content: Path, node: str, state: Path, *options: str,
               expect: int = 0) -> tuple[dict, dict]:
    """harden's host counts (skipped as its recap says) and the whole report."""
    report = harden_report(lab, content, node, state, *options, expect=expect)
    return {k: report["hosts"][node][k] for k in ("ok", "changed", "failed", "skipped")}, report


def content_hunks(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if line[:1] and line[:1] in "+-" and not line.startswith(("+++", "---"))]


def ansible_task_diffs(stdout: str) -> dict:
    return {block.split("]", 1)[0].split(" : ")[-1]: content_hunks(block)
            for block in stdout.split("TASK [")[1:]}


def needs_community_general() -> None:
    """pam_limits comes from the community.general collection (the `ansible` package)."""
    import importlib.util
    if importlib.util.find_spec("ansible_collections.community.general") is None:
        pytest.skip("community.general is not installed (pip install ansible)")


@pytest.fixture(scope="module")
def lab2(lab_factory):
    needs_community_general()
    with lab_factory.running(control_planes=0, workers=2) as lab:
        for node in lab.names():
            lab.ssh(node, "useradd -M -s /bin/sh retired && groupadd retired-group && "
                          "mkdir -p /etc/security/limits.d")
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory) -> Path:
    return write_content(tmp_path_factory.mktemp("accounts"), CONTENT)


# Run by the node's python3: the shell command per path that used to be one ssh login per path,
# all in one login (a look at FILES was 15 logins, the test looks 7 times); prints
# {path: [exit code, stdout]} as JSON.
FILES_ON_NODE = """
import json, subprocess, sys
out = {}
for path in sys.argv[1:]:
    command = f"stat -c '%a %U:%G %F' {path} && {{ [ -d {path} ] || base64 -w0 {path}; }}"
    done = subprocess.run(command, shell=True, capture_output=True, text=True)
    out[path] = [done.returncode, done.stdout]
print(json.dumps(out))
"""


def files_on(lab, node: str) -> dict:
    """path -> (mode, owner:group, bytes) as the node sees them ('absent' when missing)."""
    done = lab.ssh(node, "/usr/bin/python3 - " + " ".join(FILES), stdin=FILES_ON_NODE)
    return {path: stdout.split("\n") if code == 0 else "absent"
            for path, (code, stdout) in json.loads(done.stdout).items()}


@pytest.mark.timeout(900)
def test_check_diff_then_two_runs_match_ansible_and_rollback_restores_every_file(
        lab2, content, tmp_path):
    by_ansible, by_harden = lab2.names()
    before = files_on(lab2, by_harden)
    assert before == files_on(lab2, by_ansible)

    check_a, out_a = run_ansible(lab2, content, by_ansible, "--check", "--diff")
    check_h, report = run_harden(lab2, content, by_harden, tmp_path, "--check", "--diff",
                                 expect=2)
    assert check_a == check_h, (check_a, check_h, report["tasks"][by_harden])
    ours = {t["task"]: content_hunks(t.get("diff", "")) for t in report["tasks"][by_harden]}
    theirs = ansible_task_diffs(out_a)
    for task in ("no core dumps", "more open files for labops", "a service account"):
        assert ours[task] == theirs[task], task
    assert ours["no core dumps"] == ["+*\thard\tcore\t0\t#no core dumps"]
    assert files_on(lab2, by_harden) == before and files_on(lab2, by_ansible) == before

    first = run_ansible(lab2, content, by_ansible)[0], \
        run_harden(lab2, content, by_harden, tmp_path)
    assert first[0] == first[1][0] and first[0]["changed"] >= 12, first
    run_id = first[1][1]["run_id"]
    (again_a, out), (again_h, second) = run_ansible(lab2, content, by_ansible), \
        run_harden(lab2, content, by_harden, tmp_path)
    changed = [t["task"] for t in second["tasks"][by_harden] if t["status"] == "changed"]
    assert again_a == again_h and again_a["changed"] == 0, (again_a, changed, out[-4000:])

    after = files_on(lab2, by_ansible)
    assert after == files_on(lab2, by_harden)
    assert after != before
    seen = lab2.ssh(by_harden, "cat /etc/harden-accounts").stdout.split()
    assert seen[0] == "x:2901:svc-harden,op-harden,labops" and seen[1] == "/var/lib/svc-harden"
    assert "retired:" not in lab2.ssh(by_harden, "cat /etc/passwd").stdout

    done = harden(tmp_path, "rollback", "-i", str(lab2.inventory), "-l", by_harden, run_id)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert files_on(lab2, by_harden) == before
