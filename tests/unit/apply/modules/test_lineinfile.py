"""lineinfile as a table: text and arguments in, text out (Ansible's rules), plus the module's
plan: no change when the text is already right, create only when asked."""

import pytest

from harden.apply.facts import Facts
from harden.apply.modules.base import TaskFailed
from harden.apply.modules.lineinfile import edit_lines

from support.modules import file_state, make_facts, plan, plan_twice

BASE = {"line": None, "regexp": None, "search_string": None, "state": "present",
        "insertafter": None, "insertbefore": None, "backrefs": False, "firstmatch": False}

CASES = [
    # (text, args, expected)
    ("a=1\nb=2\n", {"regexp": "^b=", "line": "b=3"}, "a=1\nb=3\n"),
    ("b=1\nb=2\n", {"regexp": "^b=", "line": "b=9"}, "b=1\nb=9\n"),             # last match
    ("b=1\nb=2\n", {"regexp": "^b=", "line": "b=9", "firstmatch": True}, "b=9\nb=2\n"),
    ("a=1\n", {"regexp": "^b=", "line": "b=3"}, "a=1\nb=3\n"),                    # appended
    ("a=1", {"line": "b=3"}, "a=1\nb=3\n"),                                       # adds the \n
    ("a=1\nb=3\n", {"line": "b=3"}, "a=1\nb=3\n"),                                # already there
    ("a=1\nc=1\n", {"line": "b=2", "insertafter": "^a="}, "a=1\nb=2\nc=1\n"),
    ("a=1\nc=1\n", {"line": "b=2", "insertbefore": "^c="}, "a=1\nb=2\nc=1\n"),
    ("a=1\n", {"line": "z=0", "insertbefore": "BOF"}, "z=0\na=1\n"),
    ("a=1\n", {"line": "b=2", "insertafter": "^nothing"}, "a=1\nb=2\n"),          # EOF fallback
    ("port 22\n", {"regexp": r"^port (\d+)", "line": r"Port \1", "backrefs": True}, "Port 22\n"),
    ("x\n", {"regexp": "^port", "line": "Port", "backrefs": True}, "x\n"),         # no insert
    ("a=1\r\nb=2\r\n", {"regexp": "^b=", "line": "b=3"}, "a=1\r\nb=3\r\n"),       # keeps CRLF
    # a line ending in a newline (a folded set_fact value) replaces a match as it is: no-op
    ("a=1\nb=2\n", {"regexp": "^b=", "line": "b=2\n"}, "a=1\nb=2\n"),
    ("a=1\nb=2\nb=3\n", {"state": "absent", "regexp": "^b="}, "a=1\n"),
    ("a=1\nb=2\n", {"state": "absent", "line": "b=2"}, "a=1\n"),
    ("PermitRootLogin yes\n", {"search_string": "PermitRootLogin", "line": "PermitRootLogin no"},
     "PermitRootLogin no\n"),
]


@pytest.mark.parametrize("text,args,expected", CASES)
def test_edit_lines(text, args, expected):
    assert edit_lines(text, {**BASE, **args}) == expected


def test_plan_is_empty_when_the_line_is_there_and_second_plan_is_empty():
    facts = make_facts(file_state("/etc/app.conf", b"a=1\nb=2\n", 0o644))
    assert plan("lineinfile", {"path": "/etc/app.conf", "line": "b=2"}, facts) == []
    first, second = plan_twice("lineinfile", {"path": "/etc/app.conf", "regexp": "^b=",
                                              "line": "b=3"}, facts)
    assert first[0].after.content == b"a=1\nb=3\n" and second == []


def test_a_missing_file_fails_unless_create():
    facts = make_facts(absent=["/etc/new.conf"])
    with pytest.raises(TaskFailed, match="does not exist.*create: true"):
        plan("lineinfile", {"path": "/etc/new.conf", "line": "x"}, facts)
    changes = plan("lineinfile", {"path": "/etc/new.conf", "line": "x", "create": True,
                                  "mode": "0600"}, facts)
    assert changes[0].after.content == b"x\n" and changes[0].after.mode == 0o600
    assert plan("lineinfile", {"path": "/etc/new.conf", "line": "x", "state": "absent"},
                facts) == []


def test_set_fact_stat_debug_fail():
    facts = make_facts(file_state("/etc/a", b"abc", 0o640))
    from harden.apply.modules import get_module
    stat = get_module("stat")
    args = stat.validate({"path": "/etc/a"})
    assert stat.result(args, facts, [])["stat"] == {
        "exists": True, "path": "/etc/a", "isreg": True, "isdir": False, "islnk": False,
        "mode": "0640", "pw_name": "root", "gr_name": "root", "size": 3,
        "checksum": "a9993e364706816aba3e25717850c26c9cd0d89d"}
    assert get_module("set_fact").variables_set({"x": 1, "cacheable": True}) == {"x": 1}
    debug = get_module("debug")
    assert debug.report(debug.validate({"var": "x"}), {"x": [1]}) == "x: [1]"
    with pytest.raises(TaskFailed, match="^stop here$"):
        plan("fail", {"msg": "stop here"}, Facts())
