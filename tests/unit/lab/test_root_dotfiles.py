"""A lab node's root dotfiles: the node's own, bound over the machine's only where it has one."""

from __future__ import annotations

from harden.lab import cluster


def test_dotfiles_are_written_and_bound_only_where_the_machine_has_the_file(tmp_path,
                                                                             monkeypatch):
    machine = tmp_path / "machine"
    machine.mkdir()
    (machine / ".bashrc").write_text("eval \"$(pyenv init -)\"\n")
    default = tmp_path / "dot.bashrc"
    default.write_text("[ -z \"$PS1\" ] && return\n")
    monkeypatch.setattr(cluster, "ROOT_DOTFILES", {
        f"{machine}/.bashrc": str(default),
        f"{machine}/.profile": str(tmp_path / "dot.profile")})
    root = tmp_path / "node-root"
    mounts = cluster._write_root_dotfiles(root)
    node_file = root / str(machine).lstrip("/") / ".bashrc"
    assert mounts == [[str(node_file), f"{machine}/.bashrc"]]
    assert node_file.read_text() == default.read_text()
    assert (node_file.stat().st_mode & 0o777) == 0o644
    assert not (root / str(machine).lstrip("/") / ".profile").exists()
    assert (machine / ".bashrc").read_text() == "eval \"$(pyenv init -)\"\n"


def test_a_missing_default_gives_an_empty_dotfile(tmp_path, monkeypatch):
    machine = tmp_path / ".profile"
    machine.write_text(". \"$HOME/.cargo/env\"\n")
    monkeypatch.setattr(cluster, "ROOT_DOTFILES", {str(machine): str(tmp_path / "absent")})
    mounts = cluster._write_root_dotfiles(tmp_path / "root")
    assert [target for _, target in mounts] == [str(machine)]
    assert (tmp_path / "root" / str(machine).lstrip("/")).read_bytes() == b""


def test_private_root_dirs_are_the_nodes_own_and_the_machine_gets_only_a_mount_point(
        tmp_path, monkeypatch):
    machine = tmp_path / "machine-root" / ".kube"
    monkeypatch.setattr(cluster, "ROOT_PRIVATE_DIRS", (str(machine),))
    monkeypatch.setattr(cluster, "MOUNT_DIRS", ())
    monkeypatch.setattr(cluster.sshd, "PRIVSEP_DIR", tmp_path / "privsep")
    root = tmp_path / "node-root"
    mounts = cluster._root_private_dirs(root)
    cluster.ensure_host_mountpoints()
    node_dir = root / str(machine).lstrip("/")
    assert mounts == [[str(node_dir), str(machine)]]
    assert node_dir.is_dir() and list(node_dir.iterdir()) == []
    assert machine.is_dir() and list(machine.iterdir()) == []      # the mount point
    assert (node_dir.stat().st_mode & 0o777) == 0o700
