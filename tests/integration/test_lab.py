"""The lab: real sshd nodes in their own mount/PID namespaces with kubeadm's files.

Everything about a node is checked THROUGH ssh (the plain OpenSSH client), as harden will see it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from harden.errors import HardenError
from harden.lab import cluster, layout

pytestmark = pytest.mark.lab

CP_FILES_0600 = ["/etc/kubernetes/manifests/kube-apiserver.yaml",
                 "/etc/kubernetes/manifests/kube-controller-manager.yaml",
                 "/etc/kubernetes/manifests/kube-scheduler.yaml",
                 "/etc/kubernetes/manifests/etcd.yaml",
                 "/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf",
                 "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf",
                 "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.key",
                 "/etc/kubernetes/pki/apiserver.key", "/etc/kubernetes/pki/etcd/ca.key",
                 "/etc/kubernetes/pki/sa.key"]


def stat_on(lab, node: str, paths: list[str]) -> dict[str, tuple[str, str, str]]:
    """path -> (octal mode, owner, group) as the node reports them."""
    out = lab.ssh(node, "stat -c '%n %a %U %G' " + " ".join(paths)).stdout
    return {p: (m, u, g) for p, m, u, g in (line.split() for line in out.splitlines())}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harden.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_up_writes_inventories_keys_and_state(lab3):
    state = json.loads((lab3.dir / "lab.json").read_text())
    assert state["state"] == "up" and state["net"] == lab3.net
    assert [n["address"] for n in state["nodes"]] == [f"{lab3.net}.{10 + i}" for i in (1, 2, 3)]
    assert lab3.names("control-plane") == ["cp1", "cp2"] and lab3.names("worker") == ["w1"]
    for secret in ("id_ed25519", "become-password"):
        assert stat.S_IMODE(os.stat(lab3.dir / secret).st_mode) == 0o600
    inventory = lab3.inventory.read_text()
    assert f"cp2 ansible_host={lab3.net}.12" in inventory
    assert "[k8s:children]\ncontrol_plane\nworkers" in inventory
    assert "ansible_user=root" in inventory
    assert f"harden_cluster={cluster.lab_cluster_name(lab3.dir)}" in inventory
    assert f"harden_cluster={cluster.lab_cluster_name(lab3.dir)}" in lab3.sudo_inventory.read_text()
    assert f"UserKnownHostsFile={lab3.known_hosts}" in inventory
    sudo_inventory = lab3.sudo_inventory.read_text()
    assert "ansible_user=labops" in sudo_inventory and "ansible_become=true" in sudo_inventory
    assert lab3.become_password not in sudo_inventory
    known = lab3.known_hosts.read_text().splitlines()
    assert sorted(line.split()[0] for line in known) == sorted(lab3.nodes.values())


def test_status_shows_every_node_with_sshd_and_services(lab3):
    report = cluster.status(lab3.dir)
    assert [row["name"] for row in report["nodes"]] == ["cp1", "cp2", "w1"]
    for row in report["nodes"]:
        assert row["running"] and row["sshd_up"], row
        assert row["services"]["sshd"]["state"] == "active"
        assert "kubelet" in row["services"]
    result = cli("lab", "status", "--dir", str(lab3.dir))
    assert result.returncode == 0, result.stderr
    assert f"w1     worker         {lab3.net}.13" in result.stdout


def test_control_plane_files_match_kubeadm_modes_and_owners(lab3):
    modes = stat_on(lab3, "cp1", CP_FILES_0600 + [
        "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/etcd/server.crt", "/var/lib/etcd",
        "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/kubeadm-flags.env",
        "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf", "/etc/default/kubelet"])
    for path in CP_FILES_0600:
        assert modes[path] == ("600", "root", "root"), path
    assert modes["/etc/kubernetes/pki/ca.crt"][0] == "644"
    assert modes["/etc/kubernetes/pki/etcd/server.crt"][0] == "644"
    assert modes["/var/lib/etcd"][0] == "700"
    assert modes["/var/lib/kubelet/config.yaml"][0] == "644"  # kubeadm's mode; CIS wants 600
    manifest = yaml.safe_load(lab3.ssh("cp2", "cat /etc/kubernetes/manifests/kube-apiserver.yaml")
                              .stdout)
    command = manifest["spec"]["containers"][0]["command"]
    assert f"--advertise-address={lab3.net}.12" in command
    assert manifest["spec"]["containers"][0]["livenessProbe"]["httpGet"] == {
        "host": f"{lab3.net}.12", "path": "/livez", "port": 6443, "scheme": "HTTPS"}


def test_worker_has_kubelet_files_but_no_control_plane(lab3):
    out = lab3.ssh("w1", "ls /etc/kubernetes/manifests | wc -l; ls /etc/kubernetes/pki; "
                         "ls /etc/kubernetes; grep -c server: /etc/kubernetes/kubelet.conf").stdout
    lines = out.split()
    assert lines[0] == "0"
    assert lines[1] == "ca.crt"
    assert "admin.conf" not in lines and "kubelet.conf" in lines


def test_certificates_chain_to_the_shared_ca_with_node_address(lab3):
    def cert(node, path):
        return x509.load_pem_x509_certificate(lab3.ssh(node, f"cat {path}").stdout.encode())

    ca1, ca2 = cert("cp1", "/etc/kubernetes/pki/ca.crt"), cert("w1", "/etc/kubernetes/pki/ca.crt")
    assert ca1 == ca2
    serving = cert("cp2", "/etc/kubernetes/pki/apiserver.crt")
    serving.verify_directly_issued_by(ca1)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{lab3.net}.12" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    etcd_ca = cert("cp1", "/etc/kubernetes/pki/etcd/ca.crt")
    assert etcd_ca.subject != ca1.subject
    cert("cp1", "/etc/kubernetes/pki/etcd/server.crt").verify_directly_issued_by(etcd_ca)


def test_node_files_are_private_to_the_node(lab3):
    lab3.ssh("cp1", "echo cp1-only > /etc/kubernetes/private-marker")
    try:
        assert lab3.ssh("cp2", "test -e /etc/kubernetes/private-marker", check=False).returncode == 1
        assert not os.path.exists("/etc/kubernetes/private-marker")  # not on the host either
        marker = lab3.node_root("cp1") / "etc/kubernetes/private-marker"
        assert marker.read_text() == "cp1-only\n"
    finally:
        lab3.ssh("cp1", "rm -f /etc/kubernetes/private-marker")


def test_root_logs_in_with_the_nodes_own_dotfiles_not_the_machines(lab3):
    """A node's root runs commands with a fresh node's ~/.bashrc (the distribution default):
    the machine's (a pyenv set-up, say) would run in every exec; a change stays on the node."""
    host = Path("/root/.bashrc")
    if not host.is_file():          # nothing to keep out, and nothing is created on the machine
        assert lab3.ssh("cp1", "test -e /root/.bashrc", check=False).returncode == 1
        return
    before = host.read_bytes()
    default = Path(cluster.ROOT_DOTFILES["/root/.bashrc"])
    wanted = default.read_text() if default.is_file() else ""
    assert lab3.ssh("cp1", "cat /root/.bashrc").stdout == wanted
    assert lab3.ssh("w1", "cat /root/.bashrc").stdout == wanted
    assert lab3.ssh("w1", "echo $PATH").stdout.strip() == \
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"     # sshd's own
    lab3.ssh("cp1", "echo '# cp1-only' >> /root/.bashrc")
    try:
        assert lab3.ssh("cp1", "tail -n1 /root/.bashrc").stdout == "# cp1-only\n"
        assert lab3.ssh("cp2", "cat /root/.bashrc").stdout == wanted
        assert host.read_bytes() == before
    finally:
        (lab3.node_root("cp1") / "root/.bashrc").write_text(wanted)


def test_kubectl_on_a_node_caches_in_the_nodes_home_not_the_machines(lab3):
    """kubectl keeps a discovery cache per API server address in ~/.kube/cache: it stays in
    the node's own /root/.kube, so labs leave nothing in the machine's home."""
    address = lab3.nodes["cp1"]
    cache = f"/root/.kube/cache/discovery/{address}_6443"
    lab3.ssh("cp1", "kubectl --kubeconfig /etc/kubernetes/admin.conf get namespaces -o name")
    assert lab3.ssh("cp1", f"test -d {cache}", check=False).returncode == 0
    assert not Path(cache).exists()
    assert (lab3.node_root("cp1") / cache.lstrip("/")).is_dir()
    assert lab3.ssh("cp2", f"test -e {cache}", check=False).returncode == 1


def test_kernel_settings_are_private_to_the_node(lab3):
    host_before = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
    wanted = "2" if host_before == "1" else "1"
    lab3.ssh("cp1", f"sysctl -w vm.overcommit_memory={wanted}")
    try:
        assert lab3.ssh("cp1", "sysctl -n vm.overcommit_memory").stdout.strip() == wanted
        assert lab3.ssh("cp1", "cat /proc/sys/vm/overcommit_memory").stdout.strip() == wanted
        assert lab3.ssh("cp2", "sysctl -n vm.overcommit_memory").stdout.strip() == host_before
        assert Path("/proc/sys/vm/overcommit_memory").read_text().strip() == host_before
        saved = lab3.node_root("cp1") / "proc/sys/vm/overcommit_memory"
        assert saved.read_text().strip() == wanted
    finally:
        lab3.ssh("cp1", f"sysctl -w vm.overcommit_memory={host_before}")
    assert Path("/proc/sys/vm/overcommit_memory").read_text().strip() == host_before


def test_process_listing_shows_only_the_nodes_processes(lab3):
    rows = [line.split(None, 1) for line in
            lab3.ssh("cp2", "ps -eo pid=,args=").stdout.strip().splitlines()]
    by_pid = {int(pid): args for pid, args in rows}
    assert "harden.lab.node" in by_pid[1] and "/nodes/cp2/node.json" in by_pid[1]
    everything = "\n".join(by_pid.values())
    assert "/nodes/cp2/sshd_config" in everything
    assert "/nodes/cp1/" not in everything and "/nodes/w1/" not in everything
    assert "-m pytest" not in everything and "harden.lab.node" not in everything.split("\n", 1)[1]


def test_labops_sudo_requires_the_lab_password(lab3):
    no_password = lab3.ssh("w1", "sudo -n true", user="labops", check=False)
    assert no_password.returncode == 1 and "password is required" in no_password.stderr
    wrong = lab3.ssh("w1", "sudo -S -p '' true", user="labops", stdin="not-the-password\n",
                     check=False)
    assert wrong.returncode == 1
    right = lab3.ssh("w1", "sudo -S -p '' id -u", user="labops",
                     stdin=lab3.become_password + "\n")
    assert right.stdout.strip() == "0"
    assert lab3.ssh("w1", "id -un", user="labops").stdout.strip() == "labops"
    assert lab3.ssh("w1", "cat /etc/kubernetes/kubelet.conf", user="labops",
                    check=False).returncode == 1


def test_kubelet_runs_with_the_dropin_command_line(lab3):
    log = (lab3.dir / "nodes/cp1/kubelet.log").read_text()
    first_start = next(line for line in log.splitlines() if line.startswith("--- "))
    assert first_start.split(" start ", 1)[1].split()[1:] == [
        "-m", "harden.lab.kubelet",
        "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
        "--kubeconfig=/etc/kubernetes/kubelet.conf", "--config=/var/lib/kubelet/config.yaml",
        "--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock",
        f"--node-ip={lab3.net}.11", f"--pod-infra-container-image={layout.PAUSE_IMAGE}"]


def test_systemctl_shim_controls_the_kubelet_service(lab3):
    stopped = lab3.ssh("w1", "systemctl stop kubelet; systemctl is-active kubelet", check=False)
    assert stopped.returncode == 3 and stopped.stdout.strip() == "inactive"
    services = json.loads((lab3.dir / "nodes/w1/services.json").read_text())["services"]
    assert services["kubelet"]["pid"] is None
    lab3.ssh("w1", "systemctl start kubelet.service")
    services = json.loads((lab3.dir / "nodes/w1/services.json").read_text())["services"]
    assert services["kubelet"]["pid"] is not None
    missing = lab3.ssh("w1", "systemctl restart nosuch", check=False)
    assert missing.returncode == 5 and "nosuch" in missing.stderr


def test_nodes_look_booted_with_systemd_and_enable_units_in_their_own_files(lab3):
    """What roles ask of a node: PID 1 is systemd, any unit has a state, enabling one
    writes the node's private /etc/systemd/system and never the machine's."""
    seen = lab3.ssh("w1", "cat /proc/1/comm; test -d /run/systemd/system && echo booted; "
                    "/usr/bin/systemctl is-enabled kubelet").stdout.split()
    assert seen == ["systemd", "booted", "enabled"]
    unit = "e2scrub_all.timer" if os.path.exists("/lib/systemd/system/e2scrub_all.timer") \
        else "kubelet.service"
    lab3.ssh("w1", f"systemctl mask {unit}")
    assert lab3.ssh("w1", f"systemctl is-enabled {unit}", check=False).stdout == "masked\n"
    assert os.readlink(lab3.node_root("w1") / f"etc/systemd/system/{unit}") == "/dev/null"
    assert not os.path.islink(f"/etc/systemd/system/{unit}")
    lab3.ssh("w1", f"systemctl unmask {unit}")
    assert lab3.ssh("w1", "getent passwd labops").stdout.startswith("labops:")


def test_jump_host_forwarding_is_logged_by_the_bastion(lab3):
    target = lab3.nodes["w1"]
    jump = " ".join(lab3.ssh_argv("cp1")[:-1]) + f" -W %h:%p root@{lab3.nodes['cp1']}"
    result = subprocess.run(
        [*lab3.ssh_argv("w1")[:-1], "-o", f"ProxyCommand={jump}", f"root@{target}", "echo via"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "via", result.stderr
    bastion_log = (lab3.dir / "nodes/cp1/sshd.log").read_text()
    assert "direct-tcpip" in bastion_log and f"{target} port 22" in bastion_log


def test_weak_profile_is_insecure_where_kubeadm_is_not(lab_factory):
    lab = lab_factory.start(control_planes=1, workers=0, profile="weak")
    try:
        modes = stat_on(lab, "cp1", ["/etc/kubernetes/manifests/kube-apiserver.yaml",
                                     "/etc/kubernetes/admin.conf", "/etc/kubernetes/pki/ca.key",
                                     "/var/lib/etcd"])
        assert modes["/etc/kubernetes/manifests/kube-apiserver.yaml"][0] == "644"
        assert modes["/etc/kubernetes/admin.conf"][0] == "644"
        assert modes["/etc/kubernetes/pki/ca.key"][:2] == ("644", "labops")
        assert modes["/var/lib/etcd"][0] == "755"
        apiserver = lab.ssh("cp1", "cat /etc/kubernetes/manifests/kube-apiserver.yaml").stdout
        assert "--authorization-mode=AlwaysAllow" in apiserver
        assert "--client-cert-auth=false" in lab.ssh(
            "cp1", "cat /etc/kubernetes/manifests/etcd.yaml").stdout
        kubelet = yaml.safe_load(lab.ssh("cp1", "cat /var/lib/kubelet/config.yaml").stdout)
        assert kubelet["authentication"]["anonymous"]["enabled"] is True
        assert kubelet["authorization"]["mode"] == "AlwaysAllow"
        assert kubelet["readOnlyPort"] == 10255
    finally:
        lab.down()


def test_down_stops_every_process_of_the_lab_and_is_repeatable(lab_factory):
    lab = lab_factory.start(control_planes=1, workers=1)
    marker = f"{lab.dir}/nodes/"
    assert _processes_mentioning(marker)
    result = cli("lab", "down", "--dir", str(lab.dir))
    assert result.returncode == 0 and "stopped cp1, w1" in result.stdout, result.stderr
    lab.running = False
    assert _processes_mentioning(marker) == []
    assert not any(cluster.port_open(addr) for addr in lab.nodes.values())
    again = cli("lab", "down", "--dir", str(lab.dir))
    assert again.returncode == 0 and "no node" in again.stdout
    assert json.loads((lab.dir / "lab.json").read_text())["state"] == "down"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def test_up_refuses_a_net_where_something_listens(lab_factory, tmp_path):
    net = lab_factory.free_net()
    with socket.socket() as busy:
        busy.bind((f"{net}.200", 0))
        busy.listen()
        with pytest.raises(HardenError, match="already listens"):
            cluster.up(tmp_path / "lab", control_planes=1, workers=0, net=net)
    assert not (tmp_path / "lab" / "lab.json").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root and setpriv to run `lab up` as an unprivileged user")
def test_up_as_non_root_fails_clearly_and_writes_nothing(tmp_path):
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             sys.executable, "-m", "harden.cli", "lab", "up", "--dir",
                             str(tmp_path / "lab")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "needs root" in result.stderr, result.stderr
    assert not (tmp_path / "lab").exists()


def test_status_and_down_of_a_dir_without_lab_fail_clearly(tmp_path):
    for command in ("status", "down"):
        result = cli("lab", command, "--dir", str(tmp_path))
        assert result.returncode == 1 and "no lab here" in result.stderr


@pytest.mark.parametrize("build", [layout.apiserver_manifest, layout.etcd_manifest,
                                   layout.controller_manager_manifest, layout.scheduler_manifest])
def test_manifests_reemit_byte_identical_in_kubeadm_style(build):
    node = layout.NodeSpec("cp1", "control-plane", "127.1.2.11", 21001, 21002)
    text = layout.kube_yaml(build(node, layout.cluster_config(layout.PROFILES["kubeadm"])))
    assert layout.kube_yaml(yaml.safe_load(text)) == text
    assert b"\n  - command:\n    - " in text          # sequences not indented under their key
    if build is layout.controller_manager_manifest:
        assert b"    - --bind-address=127.0.0.1\n" in text
        assert b"    - --secure-port=21001\n" in text


def test_up_refuses_when_a_wildcard_listener_holds_port_22(lab_factory, tmp_path, monkeypatch):
    # Binding a real 0.0.0.0:22 would break every other lab on the machine, so the listener
    # table is what is replaced here; the refusal logic itself runs unchanged.
    monkeypatch.setattr(cluster, "listening_sockets", lambda: {("0.0.0.0", 22)})
    with pytest.raises(HardenError, match="0.0.0.0:22"):
        cluster.up(tmp_path / "lab", control_planes=1, workers=0, net=lab_factory.free_net())
    assert not (tmp_path / "lab").exists()


def test_up_refuses_an_sshd_option_sshd_does_not_know_before_writing_anything(lab_factory,
                                                                              tmp_path):
    result = cli("lab", "up", "--dir", str(tmp_path / "lab"), "--net", lab_factory.free_net(),
                 "--sshd-option", "GSSAPIAuthenticaton yes")
    assert result.returncode == 1, result.stderr
    assert "sshd refuses --sshd-option GSSAPIAuthenticaton yes" in result.stderr
    assert "Bad configuration option: GSSAPIAuthenticaton" in result.stderr
    assert not (tmp_path / "lab").exists()
