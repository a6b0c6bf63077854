"""`file state: link` and `copy force: false` as Ansible runs them, on two nodes of one lab:
a new link whose mode/owner land on its target, a forced link to a missing target (nothing
set), an existing link re-pointed by a later run (with `force`, and without it, as Ansible
does both), and `copy force: false` on an existing dest that is left entirely alone (content,
mode, owner) while a missing one is created with its mode. Both tools report the same counts
and leave the same files, modes, owners and link targets; a repeated run changes nothing; a
harden rollback of the re-pointing run puts the old link back."""

from __future__ import annotations

import os

import pytest

from support.ansible import run_both, write_content
from support.lab_cli import harden

pytestmark = pytest.mark.lab

DIR = "/etc/kubernetes/links"
CONTENT = {
    "site.yml": f"""\
        - name: links and copies that must not be forced
          hosts: all
          gather_facts: false
          become: true
          vars:
            target: a
          tasks:
            - name: the two targets
              ansible.builtin.copy:
                dest: "{DIR}/{{{{ item }}}}"
                content: "{{{{ item }}}}\\n"
              loop: [a, b]
            - name: the link, its target tightened
              ansible.builtin.file:
                src: "{DIR}/{{{{ target }}}}"
                dest: "{DIR}/current"
                state: link
                mode: "0600"
                owner: root
                group: root
            - name: a relative link, re-pointed without force
              ansible.builtin.file:
                src: "{{{{ target }}}}"
                path: "{DIR}/relative"
                state: link
            - name: a link to nothing yet
              ansible.builtin.file:
                src: "{DIR}/later"
                dest: "{DIR}/dangling"
                state: link
                force: true
                mode: "0600"
            - name: the node owns this one once it exists
              ansible.builtin.copy:
                dest: "{DIR}/node-owned.conf"
                content: "from the playbook\\n"
                mode: "0600"
                owner: root
                force: false
            - name: created when missing
              ansible.builtin.copy:
                dest: "{DIR}/created.conf"
                content: "created\\n"
                mode: "0640"
                force: false
        """,
}


@pytest.fixture(scope="module")
def lab2(lab_factory):
    with lab_factory.running(control_planes=0, workers=2) as lab:
        for node in lab.names():
            root = lab.node_root(node) / DIR.lstrip("/")
            root.mkdir(parents=True)
            (root / "node-owned.conf").write_text("edited on the node\n")
            (root / "node-owned.conf").chmod(0o664)
            os.chown(root / "node-owned.conf", 0, 65534)
        yield lab


@pytest.fixture(scope="module")
def content(tmp_path_factory):
    return write_content(tmp_path_factory.mktemp("links"), CONTENT)


def node_view(lab, node: str) -> dict:
    """Every entry under DIR: a link's target, or mode, owner, group and bytes."""
    root = lab.node_root(node) / DIR.lstrip("/")
    out = {}
    for path in sorted(root.iterdir()):
        if path.is_symlink():
            out[path.name] = ("link", os.readlink(path))
        else:
            st = path.stat()
            out[path.name] = (oct(st.st_mode & 0o7777), st.st_uid, st.st_gid, path.read_bytes())
    return out


def both(lab, content, state, *options):
    return run_both(lab, content, state, node_view, *options)


@pytest.mark.timeout(900)
def test_links_and_unforced_copies_match_ansible_and_a_repoint_rolls_back(lab2, content,
                                                                           tmp_path):
    first, _ = both(lab2, content, tmp_path)
    assert first["changed"] == 5 and first["failed"] == 0
    view = node_view(lab2, lab2.names()[1])
    assert view["current"] == ("link", f"{DIR}/a") and view["relative"] == ("link", "a")
    assert view["a"][0] == "0o600" and view["b"][0] == "0o644"
    assert view["dangling"] == ("link", f"{DIR}/later") and "later" not in view
    assert view["node-owned.conf"] == ("0o664", 0, 65534, b"edited on the node\n")
    assert view["created.conf"][:2] == ("0o640", 0)
    assert both(lab2, content, tmp_path)[0]["changed"] == 0
    before = node_view(lab2, lab2.names()[1])

    repoint, report = both(lab2, content, tmp_path, "-e", "target=b")
    assert repoint["changed"] == 2          # the two re-points (b tightened with the first)
    view = node_view(lab2, lab2.names()[1])
    assert view["current"] == ("link", f"{DIR}/b") and view["relative"] == ("link", "b")
    assert view["b"][0] == "0o600"
    assert both(lab2, content, tmp_path, "-e", "target=b")[0]["changed"] == 0

    run_id = report["run_id"]
    done = harden(tmp_path, "rollback", "-i", str(lab2.inventory), "-l", lab2.names()[1],
                  run_id)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert node_view(lab2, lab2.names()[1]) == before
