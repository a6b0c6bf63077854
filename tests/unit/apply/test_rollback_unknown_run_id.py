"""`harden rollback` with a run id the local journal does not know and that is not shaped like
one (a typo, a character missing) is exit 1 offering the closest known ids, before any host is
contacted (the inventory's host does not exist); it never reads as "changed nothing here"."""

from __future__ import annotations

from click.testing import CliRunner

from harden.cli import cli
from harden.runs.journal import Journal

KNOWN = "20261205T172629Z-8aaad8"


def _rollback(tmp_path, run_id: str):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[control_plane]\ncp1 ansible_host=127.0.0.1 ansible_port=1\n")
    state = tmp_path / "state"
    journal = Journal(state / "journal.sqlite")
    journal.start_run(KNOWN, "playbooks/site.yml", "apply", False)
    journal.close()
    return CliRunner().invoke(cli, ["rollback", "-i", str(inventory), run_id],
                              env={"HARDEN_STATE_DIR": str(state)})


def test_a_word_is_exit_1_offering_the_known_runs(tmp_path):
    result = _rollback(tmp_path, "foo")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "harden: error: unknown run id 'foo': not in the local journal, and not shaped like a "
        f"run id (YYYYMMDDTHHMMSSZ-xxxxxx) (journal {tmp_path}/state/journal.sqlite); closest "
        f"known: {KNOWN} (see `harden runs`); nothing rolled back")


def test_an_id_missing_a_character_is_offered_the_full_one(tmp_path):
    result = _rollback(tmp_path, KNOWN[:-1])
    assert result.exit_code == 1
    assert f"unknown run id '{KNOWN[:-1]}'" in result.output
    assert f"closest known: {KNOWN} " in result.output
