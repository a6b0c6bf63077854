"""lineinfile, blockinfile and replace edit text exactly as Ansible's modules do: every case
is run by ansible-playbook (connection local, on files in a temporary directory) and by
harden's pure edit functions, and the bytes must be equal."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harden.apply.modules import get_module
from support.ansible import ansible_playbook

CASES = [
    ("lineinfile", "a=1\nb=2\n", {"regexp": "^b=", "line": "b=3"}),
    ("lineinfile", "b=1\nb=2\n", {"regexp": "^b=", "line": "b=9", "firstmatch": True}),
    ("lineinfile", "a=1", {"line": "b=3"}),
    ("lineinfile", "a=1\nc=1\n", {"line": "b=2", "insertafter": "^a="}),
    ("lineinfile", "a=1\nc=1\n", {"line": "b=2", "insertbefore": "^c="}),
    ("lineinfile", "a=1\n", {"line": "z=0", "insertbefore": "BOF"}),
    ("lineinfile", "port 22\n", {"regexp": r"^port (\d+)", "line": r"Port \1", "backrefs": True}),
    ("lineinfile", "a=1\nb=2\nb=3\n", {"state": "absent", "regexp": "^b="}),
    ("lineinfile", "PermitRootLogin yes\n", {"search_string": "PermitRootLogin",
                                             "line": "PermitRootLogin no"}),
    ("blockinfile", "a\n", {"block": "x=1\ny=2"}),
    ("blockinfile", "a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nz\n",
     {"block": "new"}),
    ("blockinfile", "a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nz\n",
     {"state": "absent"}),
    ("blockinfile", "a\nb\n", {"block": "x", "insertafter": "^a", "marker": "## {mark} mine"}),
    ("blockinfile", "a\nb\n", {"block": "x", "insertbefore": "BOF"}),
    ("replace", "net.a = 1\nnet.b = 1\n", {"regexp": r"^(net\.\w+) = 1$", "replace": r"\1 = 0"}),
    ("replace", "x\n[s]\nx\n[t]\nx\n", {"regexp": "x", "replace": "y", "after": r"\[s\]",
                                         "before": r"\[t\]"}),
]


@pytest.fixture(scope="module")
def by_ansible(tmp_path_factory) -> list[bytes]:
    root = tmp_path_factory.mktemp("edits")
    tasks = []
    for index, (module, text, args) in enumerate(CASES):
        (root / f"f{index}").write_bytes(text.encode())
        tasks.append({module: {"path": str(root / f"f{index}"), **args}})
    (root / "play.yml").write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                                "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(root / ".tmp"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    done = subprocess.run([ansible_playbook(), "-c", "local", "-i", "localhost,",
                           str(root / "play.yml")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:]
    return [(root / f"f{index}").read_bytes() for index in range(len(CASES))]


@pytest.mark.parametrize("index", range(len(CASES)))
def test_same_bytes_as_ansible(by_ansible, index):
    module_name, text, args = CASES[index]
    module = get_module(module_name)
    full = module.validate({"path": "/f", **args})
    assert module.edit(text, full).encode() == by_ansible[index]
