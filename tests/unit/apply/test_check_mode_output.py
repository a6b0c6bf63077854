"""What the play line says in each check mode, so a reader of the output knows how the
statuses below it were judged."""

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from harden.apply.output import TextOutput


@pytest.mark.parametrize("check, mode, says", [
    (False, "predict", "PLAY [p] on 1 host(s)"),
    (True, "predict", "PLAY [p] (check mode) on 1 host(s)"),
    (True, "ansible", "PLAY [p] (check mode, as ansible-playbook) on 1 host(s)"),
], ids=["real-run", "predict", "ansible"])
def test_the_play_line_names_the_check_mode(check, mode, says):
    buffer = io.StringIO()
    output = TextOutput(console=Console(file=buffer, soft_wrap=True, highlight=False),
                        check=check, check_mode=mode)
    output.play_start(SimpleNamespace(name="p"), ["h1"])
    assert buffer.getvalue().splitlines()[0] == says
