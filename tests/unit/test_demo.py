"""`make demo`'s before/after table orders check ids as people read them, letters included
(1.2.28e is harden's own check next to CIS 1.2.28)."""

import json

from harden import demo


def test_before_after_table_sorts_ids_with_letters(tmp_path, capsys):
    def doc(ids):
        return {"summary": {"cp1": {}}, "results": [
            {"host": "cp1", "id": i, "scored": True, "status": "FAIL"} for i in ids]}
    (tmp_path / "before.json").write_text(json.dumps(doc(["1.2.28e", "1.10.1", "1.2.5"])))
    (tmp_path / "after.json").write_text(json.dumps(doc(["1.2.28e", "1.2.5"])))
    demo.show_comparison(str(tmp_path / "before.json"), str(tmp_path / "after.json"))
    out = capsys.readouterr().out
    assert "1.2.5 1.2.28e" in out and "│ 3 " in out
