"""A file that is no inventory (a public key, a password file, notes) is refused without
quoting its content, and a directory given with -i that holds one says which of its files are
inventories (a lab directory holds keys beside inventory.ini)."""

from __future__ import annotations

import pytest

from harden.errors import InputError
from harden.inventory.loader import load_inventory

KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMsecretlookingmaterial root@lab\n"


def _error(paths) -> InputError:
    with pytest.raises(InputError) as caught:
        load_inventory(paths)
    return caught.value


def test_a_key_file_is_refused_naming_file_and_line_without_its_content(tmp_path):
    path = tmp_path / "root"
    path.write_text(KEY_LINE)
    error = _error([str(path)])
    assert str(error).startswith(f"{path}:1: not an inventory file")
    assert "AAAA" not in str(error) and "ssh-ed25519" not in str(error)


def test_a_directory_holding_a_key_names_its_inventory_files(tmp_path):
    (tmp_path / "authorized_keys").mkdir()
    (tmp_path / "authorized_keys" / "root").write_text(KEY_LINE)
    (tmp_path / "inventory.ini").write_text("[control_plane]\ncp1 ansible_host=127.0.0.2\n")
    (tmp_path / "become-password").write_text("s3cret-password\n")
    error = _error([str(tmp_path)])
    message = str(error)
    assert message.startswith(f"{tmp_path}/authorized_keys/root:1: not an inventory file")
    assert f"-i {tmp_path} is a directory" in message
    assert f"-i {tmp_path}/inventory.ini" in message
    assert "become-password" not in message          # a bare word is no inventory to offer
    assert "AAAA" not in message and "s3cret" not in message


def test_an_inventory_error_after_a_section_still_quotes_the_entry(tmp_path):
    path = tmp_path / "hosts.ini"
    path.write_text("[web]\nw1 ansible_port\n")
    error = _error([str(path)])
    assert (error.line, "got: ansible_port" in error.message) == (2, True)


def test_a_directory_of_inventories_still_loads(tmp_path):
    (tmp_path / "a.ini").write_text("[control_plane]\ncp1\n")
    (tmp_path / "b.yml").write_text("workers:\n  hosts:\n    w1:\n")
    assert sorted(load_inventory([str(tmp_path)]).hosts) == ["cp1", "w1"]
