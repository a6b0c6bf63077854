"""`harden lab up|down|status`: a lab of kubeadm-like nodes, each a real sshd on 127.A.B.(10+i).

`up` writes every node's files under DIR/nodes/<name>/, starts one supervisor per node (in its
own mount and PID namespaces, see harden.lab.node) all at once, and returns when every sshd
accepts connections. It then writes what a user needs to reach the lab: inventories, client key,
known_hosts, become password and lab.json (the state `down` and `status` rely on).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from harden.errors import HardenError, InputError
from harden.lab import kubeadm_config, kubeadm_init, layout, pki, seed, sshd
from harden.lab.components import serving

LABOPS = "labops"
# /etc/systemd/system comes before the kubelet drop-in directory mounted inside it.
MOUNT_DIRS = ("/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/etc/systemd/system",
              "/etc/systemd/system/kubelet.service.d", "/usr/lib/systemd/system/kubelet.service.d",
              "/var/log/kubernetes", "/var/log/pods", "/var/lib/harden", "/etc/sysctl.d", "/etc/sudoers.d",
              "/usr/local/sbin", f"/home/{LABOPS}", "/etc/default", "/run/systemd")
# Every node sees its own /etc, /usr and /var: an overlay (lower: the machine's directory, upper
# and work: DIR/nodes/<name>/overlay/<dir>/) mounted before the directory binds above, so a
# role that edits login.defs, pam.d, suid bits in /usr/bin or /var/lib changes that node only.
OVERLAY_DIRS = ("/etc", "/usr", "/var")
# passwd, shadow and group are plain files of the node's /etc overlay (seeded into its upper
# dir), so usermod and harden's atomic write rename over them as on a real node (a rename onto
# a bind-mounted file fails with EBUSY).
USER_FILES = ("/etc/passwd", "/etc/shadow", "/etc/group")
# The node's systemctl is the shim on every path a tool may pick (Ansible's service_facts looks
# in /usr/bin first); bound only where the machine has a file there, never created on it.
SYSTEMCTL_PATHS = ("/usr/bin/systemctl",)
# root's shell start-up files. /root is the machine's (its tools live there, e.g. the Python a
# lab runs with), but a node's root logs in with a fresh node's dotfiles: bash runs ~/.bashrc
# for every command sshd starts, and the machine's (a pyenv or conda set-up, say) would run in
# every exec on every node, costing more CPU than the exec itself. Each node file below is bound
# over the machine's, only where the machine has one (never created on it); its content is the
# distribution's default (base-files), else empty.
ROOT_DOTFILES = {"/root/.bashrc": "/usr/share/base-files/dot.bashrc",
                 "/root/.profile": "/usr/share/base-files/dot.profile"}
# Directories of root's home a node's tools write into: kubectl keeps its discovery cache in
# ~/.kube/cache (one directory per API server address, so every lab would leave its own in the
# machine's home). Each node gets its own, empty as on a fresh node; the machine's stays out of
# the node's sight. A bind needs a mount point: an empty 0700 one is made on the machine when it
# has none (the one thing the lab creates in /root).
ROOT_PRIVATE_DIRS = ("/root/.kube",)
# A node is "booted with systemd" to whoever asks as systemd's own tools do (sd_booted: the
# directory /run/systemd/system exists; PID 1's comm is `systemd`, see harden.lab.node); the
# machine's own /run/systemd stays as it is.
SYSTEMD_RUNTIME_DIR = "/run/systemd/system"
# A kubeadm node has kubelet.service enabled (the package ships it in /usr/lib; the lab keeps
# it in the node's private /etc/systemd/system, as the machine's /usr/lib is shared).
KUBELET_UNIT = """[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""
COPIED_FROM_HOST = ("/etc/sysctl.d", "/etc/sudoers.d", "/usr/local/sbin", "/etc/default")
# Nodes share this machine's kernel, so their /proc/sys is a directory of plain files seeded from
# the machine's values: sysctl(8), the sysctl module and the kubelet's protectKernelDefaults
# check then read and write the node's own kernel settings, never the machine's.
PROC_SYS = "/proc/sys"
SYSCTL_DIR = "/etc/sysctl.d"     # files/ of a kubeadm config: on every node, then applied
PROC_SYS_SKIPPED = ("fs/binfmt_misc",)   # its own filesystem (an automount on systemd hosts)
UP_TIMEOUT = 20.0
STOP_TIMEOUT = 8.0
MAX_SOCKET_PATH = 107
KUBELET_STATE_FILE = "/var/lib/kubelet/harden-lab-pods.json"   # written by harden.lab.kubelet
EXPECTED_PODS = 4                     # kube-apiserver, controller-manager, scheduler, etcd
REQUIRED_TOOLS = {"sshd": sshd.SSHD, "unshare": "unshare", "openssl": "openssl", "sudo": "sudo"}


@dataclass
class NodeState:
    """What lab.json records per node; pids are host pids, start times guard against reuse."""

    name: str
    role: str
    address: str
    node_dir: str
    launcher_pid: int = 0
    supervisor_pid: int = 0
    supervisor_start: int = 0


# --- preconditions ----------------------------------------------------------------------------

def check_host() -> None:
    """Refuse early and clearly when this machine cannot host a lab."""
    if os.geteuid() != 0:
        raise HardenError("harden lab needs root (namespaces, bind mounts, sshd on port 22); "
                          "run it with sudo")
    missing = [name for name, tool in REQUIRED_TOOLS.items() if not shutil.which(tool)]
    if missing:
        raise HardenError(f"harden lab needs {', '.join(missing)} installed "
                          "(apt-get install openssh-server util-linux openssl sudo)")


def listening_sockets() -> set[tuple[str, int]]:
    """(IPv4 address, port) of every listening TCP socket in this network namespace."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A":  # TCP_LISTEN
            hex_ip, hex_port = fields[1].split(":")
            ip = ".".join(str(int(hex_ip[i:i + 2], 16)) for i in (6, 4, 2, 0))
            found.add((ip, int(hex_port, 16)))
    return found


def net_is_free(net: str) -> bool:
    return not any(ip.startswith(net + ".") for ip, _ in listening_sockets())


def check_port_22_bindable() -> None:
    """A listener on 0.0.0.0:22 (a machine's own sshd) makes every 127.A.B.x:22 bind fail."""
    if ("0.0.0.0", 22) in listening_sockets():
        raise HardenError("something listens on 0.0.0.0:22 (this machine's sshd?), so lab nodes "
                          "cannot bind 127.A.B.x:22; let it listen on specific addresses instead")


def parse_net(net: str) -> str:
    parts = net.split(".")
    if (len(parts) != 3 or parts[0] != "127"
            or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts[1:])
            or parts[1:] == ["0", "0"]):
        raise InputError(f"--net must look like 127.A.B (a loopback /24 other than 127.0.0), "
                         f"got {net!r}")
    return net


def choose_net() -> str:
    """A random 127.A.B (A in 100..250) where nothing listens, so labs never collide."""
    rng = random.SystemRandom()
    for _ in range(200):
        net = f"127.{rng.randint(100, 250)}.{rng.randint(0, 255)}"
        if net_is_free(net):
            return net
    raise HardenError("no free loopback /24 found for the lab; pass --net 127.A.B")


def free_loopback_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 (below the ephemeral range) for components kubeadm binds there."""
    rng, ports = random.SystemRandom(), []
    while len(ports) < count:
        port = rng.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports


# --- node contents ----------------------------------------------------------------------------

def _write(path: Path, content: bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _free_id(taken: set[int]) -> int:
    return next(i for i in range(2000, 60000) if i not in taken)


def labops_uid() -> int:
    existing = [p.pw_uid for p in pwd.getpwall() if p.pw_name == LABOPS]
    if existing:
        return existing[0]
    return _free_id({p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()})


def password_hash(password: str) -> str:
    """SHA-512 crypt, the format pam_unix verifies in /etc/shadow."""
    out = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, text=True,
                         capture_output=True, check=True)
    return out.stdout.strip()


def user_files(uid: int, shadow_hash: str) -> dict[str, tuple[bytes, int, int]]:
    """Node copies of the host's passwd/shadow/group with the lab user added.

    Without PAM, sshd refuses accounts whose shadow password starts with '!' (locked), so a
    locked root becomes '*' (no password, key login allowed) on nodes.
    """
    def without_labops(path: str) -> list[str]:
        return [l for l in Path(path).read_text().splitlines() if not l.startswith(f"{LABOPS}:")]

    shadow = []
    for line in without_labops("/etc/shadow"):
        fields = line.split(":")
        if fields[0] == "root" and fields[1].startswith("!"):
            fields[1] = "*"
        shadow.append(":".join(fields))
    shadow_gid = os.stat("/etc/shadow").st_gid
    passwd = without_labops("/etc/passwd") + [
        f"{LABOPS}:x:{uid}:{uid}:harden lab operator:/home/{LABOPS}:/bin/bash"]
    group = without_labops("/etc/group") + [f"{LABOPS}:x:{uid}:"]
    shadow.append(f"{LABOPS}:{shadow_hash}:19000:0:99999:7:::")
    return {"/etc/passwd": ("\n".join(passwd) + "\n", 0o644, 0),
            "/etc/group": ("\n".join(group) + "\n", 0o644, 0),
            "/etc/shadow": ("\n".join(shadow) + "\n", 0o640, shadow_gid)}


def _copy_host_dir(source: str, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for entry in Path(source).iterdir() if Path(source).is_dir() else ():
        if entry.is_file() and not entry.is_symlink():
            shutil.copy2(entry, target / entry.name)


def _copy_unit_dir(source: str, target: Path) -> None:
    """The machine's /etc/systemd/system as the node's own: unit files, and the enablement
    and alias symlinks kept as symlinks (their targets are what systemctl reads)."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in Path(source).iterdir() if Path(source).is_dir() else ():
        if entry.is_symlink():
            (target / entry.name).symlink_to(os.readlink(entry))
        elif entry.is_dir() and str(entry) not in MOUNT_DIRS:    # kubelet.service.d: its own
            _copy_unit_dir(str(entry), target / entry.name)
        elif entry.is_file():
            shutil.copy2(entry, target / entry.name)


def _write_systemd_files(root: Path, shim: bytes) -> None:
    units = root / "etc/systemd/system"
    _copy_unit_dir("/etc/systemd/system", units)
    _write(units / "kubelet.service", KUBELET_UNIT.encode(), 0o644)
    wants = units / "multi-user.target.wants"
    wants.mkdir(exist_ok=True)
    if not (wants / "kubelet.service").is_symlink():
        (wants / "kubelet.service").symlink_to("/etc/systemd/system/kubelet.service")
    (root / SYSTEMD_RUNTIME_DIR.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path in SYSTEMCTL_PATHS:
        _write(root / path.lstrip("/"), shim, 0o755)


def _systemctl_mounts(root: Path) -> list[list[str]]:
    return [[str(root / p.lstrip("/")), p] for p in SYSTEMCTL_PATHS if os.path.isfile(p)]


def _write_root_dotfiles(root: Path) -> list[list[str]]:
    """The node's own root dotfiles (see ROOT_DOTFILES) and the binds that put them in place."""
    mounts = []
    for path, default in ROOT_DOTFILES.items():
        if not os.path.isfile(path):
            continue
        try:
            content = Path(default).read_bytes()
        except OSError:
            content = b""
        _write(root / path.lstrip("/"), content, 0o644)
        mounts.append([str(root / path.lstrip("/")), path])
    return mounts


def _root_private_dirs(root: Path) -> list[list[str]]:
    """The node's own ROOT_PRIVATE_DIRS and the binds that put them in place."""
    mounts = []
    for path in ROOT_PRIVATE_DIRS:
        node_dir = root / path.lstrip("/")
        node_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        mounts.append([str(node_dir), path])
    return mounts


KernelSettings = list[tuple[str, list[tuple[str, bytes, int]]]]


def read_kernel_settings() -> KernelSettings:
    """Every readable /proc/sys entry (directory relative to /proc/sys, then name, content and
    mode); entries the kernel will not let us read (write-only triggers) are left out.
    Read once per `up` and written into every node: reading /proc/sys is most of the cost."""
    found: KernelSettings = []
    for dirpath, dirnames, filenames in os.walk(PROC_SYS):
        rel = os.path.relpath(dirpath, PROC_SYS)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel, d))
                       not in PROC_SYS_SKIPPED]
        entries = []
        for name in filenames:
            source = os.path.join(dirpath, name)
            try:
                with open(source, "rb") as handle:
                    content = handle.read()
                mode = os.stat(source).st_mode & 0o777
            except OSError:
                continue
            entries.append((name, content, mode))
        found.append((rel, entries))
    return found


def _copy_kernel_settings(target: Path, settings: KernelSettings) -> None:
    """The settings as regular files with the same modes, owned by root (we are root)."""
    for rel, entries in settings:
        directory = os.path.normpath(target / rel)
        os.makedirs(directory, exist_ok=True)
        for name, content, mode in entries:
            fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                         mode)
            try:
                os.write(fd, content)
                os.fchown(fd, 0, 0)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)


def _apply_sysctl_files(proc_sys: Path, files: dict) -> None:
    """What the operator's `sysctl --system` does on a node before kubeadm starts the kubelet:
    the copied /etc/sysctl.d files, in name order, set the node's kernel settings (a kubelet
    with protectKernelDefaults refuses to start otherwise). Keys the kernel lacks are left out,
    as `sysctl --system` reports and skips them."""
    for path in sorted(p for p in files if p.startswith(f"{SYSCTL_DIR}/") and p.endswith(".conf")):
        for line in files[path][0].decode(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if not sep or line.lstrip().startswith(("#", ";")):
                continue
            target = proc_sys / key.strip().lstrip("-").replace(".", "/")
            if target.is_file():
                target.write_text(value.strip() + "\n")


def _systemctl_shim(socket_path: Path) -> bytes:
    text = (Path(__file__).with_name("systemctl")).read_text()
    lines = text.splitlines()
    lines[0] = f"#!{sys.executable}"
    return ("\n".join(lines) + "\n").replace("@SOCKET@", str(socket_path)).encode()


def _kubeadm_shim(node_file: Path) -> bytes:
    """/usr/local/sbin/kubeadm: the lab's kubeadm (harden.lab.kubeadm) with this node's facts."""
    package_root = Path(__file__).resolve().parents[2]
    return (f"#!{sys.executable}\n"
            '"""kubeadm for a lab node (harden.lab.kubeadm); written by `harden lab up`."""\n'
            "import sys\n"
            f"sys.path.insert(0, {str(package_root)!r})\n"
            "from harden.lab.kubeadm import main\n"
            f"sys.exit(main(sys.argv[1:], node_file={str(node_file)!r}))\n").encode()


def write_node(lab_dir: Path, spec: layout.NodeSpec, profile: layout.Profile,
               cluster: pki.ClusterPKI, *, api_server: str, uid: int, users: dict,
               client_pub: bytes, ssh_algorithms: str = "default",
               user_ca: Path | None = None, host_ca: Path | None = None,
               config: kubeadm_config.ClusterConfig | None = None,
               kubelet: dict | None = None, kubelet_args: tuple = (),
               sshd_options: Sequence[str] = (), sshd_env: Mapping[str, str] | None = None,
               extra_files: dict | None = None, extra_dirs: dict | None = None,
               kernel_settings: KernelSettings | None = None) -> dict:
    """Lay out one node under DIR/nodes/<name>/ and return the supervisor's spec (node.json).

    `extra_files` ({node path: (content, mode)}) are an operator's files copied before init;
    `sshd_options` are sshd_config lines appended to the lab's, `sshd_env` the environment
    the node's sshd gets on top of the supervisor's (e.g. KRB5_KTNAME for GSSAPI logins);
    `kernel_settings` the machine's /proc/sys as read_kernel_settings() read it (read here
    when not given)."""
    node_dir = lab_dir / "nodes" / spec.name
    root = node_dir / "root"
    if node_dir.exists():
        shutil.rmtree(node_dir)
    for source in COPIED_FROM_HOST:
        _copy_host_dir(source, root / source.lstrip("/"))
    _write_systemd_files(root, _systemctl_shim(node_dir / "control.sock"))
    dirs, files = layout.node_files(spec, profile, cluster, api_server=api_server, labops_uid=uid,
                                    config=config, kubelet=kubelet, kubelet_args=kubelet_args)
    for path, (content, mode) in (extra_files or {}).items():
        files.setdefault(path, layout.File(content, mode))
    for path, mode in (extra_dirs or {}).items():
        dirs.setdefault(path, layout.Dir(mode))
    for path, d in dirs.items():
        target = root / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        os.chown(target, d.uid, d.gid)
        os.chmod(target, d.mode)
    for path, f in files.items():
        _write(root / path.lstrip("/"), f.content, f.mode, f.uid, f.gid)
    for path, (content, mode, gid) in users.items():
        _write(overlay_upper(node_dir, path) / Path(path).name, content.encode(), mode, 0, gid)
    _write(root / "etc/sudoers.d" / LABOPS, f"{LABOPS} ALL=(ALL:ALL) ALL\n".encode(), 0o440)
    home = root / "home" / LABOPS
    _write(home / ".ssh/authorized_keys", client_pub, 0o600, uid, uid)
    for path in (home / ".ssh", home):
        os.chown(path, uid, uid)
        os.chmod(path, 0o700)
    socket_path = node_dir / "control.sock"
    _write(root / "usr/local/sbin/systemctl", _systemctl_shim(socket_path), 0o755)
    node_file = node_dir / "kubeadm-node.json"
    _write(node_file, json.dumps(asdict(spec)).encode(), 0o644)
    _write(root / "usr/local/sbin/kubeadm", _kubeadm_shim(node_file), 0o755)
    _install_node_kubectl(node_dir)
    _copy_kernel_settings(root / PROC_SYS.lstrip("/"), kernel_settings or read_kernel_settings())
    _apply_sysctl_files(root / PROC_SYS.lstrip("/"), extra_files or {})
    host_key, host_pub = pki.ssh_keypair(f"root@{spec.name}")
    _write(node_dir / "ssh_host_ed25519_key", host_key, 0o600)
    _write(node_dir / "ssh_host_ed25519_key.pub", host_pub, 0o644)
    certificate = None
    if host_ca is not None:
        certificate = _host_certificate(host_ca, node_dir / "ssh_host_ed25519_key.pub", spec)
    config = node_dir / "sshd_config"
    _write(config, sshd.config_text(
        address=spec.address, host_key=node_dir / "ssh_host_ed25519_key",
        pid_file=node_dir / "sshd.pid", authorized_keys_dir=lab_dir / "authorized_keys",
        algorithms=ssh_algorithms, user_ca=user_ca, host_certificate=certificate,
        extra_options=sshd_options).encode(), 0o600)
    mounts = [[str(root / t.lstrip("/")), t] for t in MOUNT_DIRS + (PROC_SYS,)]
    mounts += _systemctl_mounts(root) + _write_root_dotfiles(root) + _root_private_dirs(root)
    return {"name": spec.name, "address": spec.address, "node_dir": str(node_dir),
            "overlays": _overlays(node_dir), "mounts": mounts, "socket": str(socket_path),
            "sshd_argv": sshd.command(config, node_dir / "sshd.log"),
            "sshd_env": dict(sshd_env or {}),
            "pythonpath": str(Path(__file__).resolve().parents[2]),
            "host_key_pub": host_pub.decode().strip(),
            "seed": str(lab_dir / "seed.json")}


def node_kubectl() -> tuple[str, str] | None:
    """(path, binary) when the machine's `kubectl` is the Google Cloud SDK's dispatcher: the
    node's `kubectl` at that path then is the versioned binary itself, as on a kubeadm node
    (one kubectl from the Kubernetes packages). The dispatcher asks the API server for its
    version and starts `kubectl.1.<minor>` as a second Go process on every call: about 45 ms
    more CPU per call and one more API request, which no real node pays. The binary picked is
    the one the dispatcher picks for the lab's API server (its minor version), else the newest.
    None when the machine's kubectl is a single binary already (or there is none)."""
    found = shutil.which("kubectl")
    if found:       # /bin/kubectl on a merged-/usr machine is /usr/bin/kubectl
        found = os.path.join(os.path.realpath(os.path.dirname(found)), "kubectl")
    if not found or not found.startswith("/usr/"):
        return None
    real = os.path.realpath(found)
    versions = {}
    for path in Path(real).parent.glob(Path(real).name + ".1.*"):
        minor = path.name.rsplit(".", 1)[1]
        if minor.isdigit() and os.access(path, os.X_OK):
            versions[int(minor)] = str(path)
    if not versions:
        return None
    return found, versions.get(serving.MINOR, versions[max(versions)])


def _install_node_kubectl(node_dir: Path) -> None:
    """The node's kubectl as a single binary (node_kubectl): a symlink in the upper dir of the
    node's /usr overlay; each directory made there gets the mode and owner of the machine's
    (an upper dir's attributes are what the node sees)."""
    found = node_kubectl()
    if found is None:
        return
    path, binary = found
    top = "/" + path.strip("/").split("/")[0]
    relative = Path(path).relative_to(top)
    upper = overlay_upper(node_dir, path)
    for depth in range(1, len(relative.parts)):
        part = Path(*relative.parts[:depth])
        made, info = upper / part, os.stat(Path(top) / part)
        made.mkdir(parents=True, exist_ok=True)
        os.chown(made, info.st_uid, info.st_gid)
        os.chmod(made, info.st_mode & 0o7777)
    target = upper / relative
    target.symlink_to(binary)


def overlay_upper(node_dir: Path, target: str) -> Path:
    """The upper dir of the overlay that holds `target` (a path under one of OVERLAY_DIRS)."""
    top = "/" + target.strip("/").split("/")[0]
    return node_dir / "overlay" / top.lstrip("/") / "upper"


def _overlays(node_dir: Path) -> list[list[str]]:
    """[lower, upper, work] per overlaid dir; the upper and work dirs are made here (root, 0755:
    the upper dir's own mode is what the node's /etc, /usr, /var show)."""
    overlays = []
    for lower in OVERLAY_DIRS:
        upper = overlay_upper(node_dir, lower)
        work = upper.with_name("work")
        for path in (upper, work):
            path.mkdir(parents=True, exist_ok=True)
        stat = os.stat(lower)
        os.chown(upper, stat.st_uid, stat.st_gid)
        os.chmod(upper, stat.st_mode & 0o7777)
        overlays.append([lower, str(upper), str(work)])
    return overlays


def check_lab_dir(lab_dir: Path) -> None:
    """A lab dir inside an overlaid dir would be hidden on its own nodes by their overlay (and
    the kernel refuses an upper dir inside its lower dir): refuse it before anything starts."""
    for top in OVERLAY_DIRS:
        if lab_dir == Path(top) or Path(top) in lab_dir.parents:
            raise InputError(f"a lab dir cannot be under {top} (each node mounts its own {top} "
                             "over the machine's); choose e.g. /tmp/lab or ./.lab", str(lab_dir))


def ensure_host_mountpoints() -> None:
    """Bind mounts need an existing target; create missing ones empty (root, 0755; the
    private root dirs 0700)."""
    for path in MOUNT_DIRS:
        os.makedirs(path, mode=0o755, exist_ok=True)
    for path in ROOT_PRIVATE_DIRS:
        os.makedirs(path, mode=0o700, exist_ok=True)
    sshd.PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)


# --- processes --------------------------------------------------------------------------------

def _start_time(pid: int) -> int:
    """Process start time in clock ticks (field 22 of /proc/<pid>/stat), 0 if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[19])


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def is_our_supervisor(node: NodeState) -> bool:
    """True only for the very process we started: same start time, our module, our node.json."""
    pid = node.supervisor_pid
    if not pid or _start_time(pid) != node.supervisor_start:
        return False
    argv = _cmdline(pid)
    return "harden.lab.node" in argv and str(Path(node.node_dir) / "node.json") in argv


def launch(node_spec: dict) -> NodeState:
    """Start one node's supervisor in new mount+PID namespaces, in its own session.

    posix_spawn rather than Popen: the launcher outlives this call (and, for the CLI, this
    process), so there is no Popen object to keep; `down` reaps it when it is our child.
    """
    node_dir = Path(node_spec["node_dir"])
    spec_path = node_dir / "node.json"
    spec_path.write_text(json.dumps(node_spec, indent=1))
    argv = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private",
            "--kill-child", sys.executable, "-m", "harden.lab.node", str(spec_path)]
    log_fd = os.open(node_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        pid = os.posix_spawnp("unshare", argv, {**os.environ, "PYTHONPATH": node_spec["pythonpath"]},
                              file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                            (os.POSIX_SPAWN_DUP2, log_fd, 1),
                                            (os.POSIX_SPAWN_DUP2, log_fd, 2)],
                              setsid=True)
    finally:
        os.close(log_fd)
    return NodeState(node_spec["name"], "", node_spec["address"], str(node_dir), launcher_pid=pid)


def _find_supervisor(node: NodeState, deadline: float) -> None:
    children = Path(f"/proc/{node.launcher_pid}/task/{node.launcher_pid}/children")
    while time.monotonic() < deadline:
        try:
            pids = children.read_text().split()
        except OSError:
            break  # launcher already gone: the node failed to start
        if pids:
            node.supervisor_pid = int(pids[0])
            node.supervisor_start = _start_time(node.supervisor_pid)
            return
        time.sleep(0.005)
    raise HardenError(f"lab node {node.name}: supervisor did not start; see "
                      f"{node.node_dir}/supervisor.log{_tail(Path(node.node_dir) / 'supervisor.log')}")


def _tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return ("\n  " + "\n  ".join(text)) if text else ""


def port_open(address: str, port: int = 22, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_for_sshd(nodes: list[NodeState], deadline: float) -> None:
    waiting = list(nodes)
    while waiting:
        waiting = [n for n in waiting if not port_open(n.address, timeout=0.2)]
        for node in waiting:
            # start time only: the cmdline is briefly unreadable while the child execs
            if _start_time(node.supervisor_pid) != node.supervisor_start:
                raise HardenError(f"lab node {node.name} died while starting; see "
                                  f"{node.node_dir}{_tail(Path(node.node_dir) / 'sshd.log')}"
                                  f"{_tail(Path(node.node_dir) / 'supervisor.log')}")
        if waiting and time.monotonic() > deadline:
            raise HardenError(f"sshd of {', '.join(n.name for n in waiting)} not reachable after "
                              f"{UP_TIMEOUT:.0f}s; see {waiting[0].node_dir}/sshd.log")
        if waiting:
            time.sleep(0.02)


def stop_node(node: NodeState) -> bool:
    """Stop one node's supervisor (its whole PID namespace dies with it). True if it was up."""
    if not is_our_supervisor(node):
        return False
    os.kill(node.supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while is_our_supervisor(node) and time.monotonic() < deadline:
        time.sleep(0.02)
    if is_our_supervisor(node):
        os.kill(node.supervisor_pid, signal.SIGKILL)
    return True


def _reap_launcher(node: NodeState) -> None:
    """The unshare process exits right after its child; collect it when it is our child."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            if os.waitpid(node.launcher_pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return  # not our child (another process ran `up`), or already collected
        time.sleep(0.01)


def _abort(node: NodeState) -> None:
    """Kill a half-started node at once. Its launcher is still our child, so the pid is safe to
    signal, and unshare's --kill-child takes the supervisor (and so its namespace) with it."""
    try:
        os.kill(node.launcher_pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap_launcher(node)


# --- outputs ----------------------------------------------------------------------------------

def lab_cluster_name(lab_dir: Path) -> str:
    """The lab's `harden_cluster`: its directory's name, a word an inventory value keeps."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(lab_dir).resolve().name).strip("-")
    return f"lab-{name}" if name else "lab"


def _inventory(lab_dir: Path, nodes: list[NodeState], *, user: str, become: bool) -> str:
    lines = [f"# harden lab in {lab_dir}: written by `harden lab up` (rewritten on every up)"]
    for group, role in (("control_plane", "control-plane"), ("workers", "worker")):
        lines.append(f"[{group}]")
        lines += [f"{n.name} ansible_host={n.address}" for n in nodes if n.role == role]
        lines.append("")
    lines += ["[k8s:children]", "control_plane", "workers", "", "[k8s:vars]",
              f"ansible_user={user}",
              "# one cluster: harden check reads its cluster objects once (docs/operations.md)",
              f"harden_cluster={lab_cluster_name(lab_dir)}",
              f"ansible_ssh_private_key_file={lab_dir / 'id_ed25519'}",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={lab_dir / 'known_hosts'}'"]
    if become:
        lines += ["ansible_become=true",
                  "# sudo password: the file become-password or $HARDEN_BECOME_PASSWORD"]
    return "\n".join(lines) + "\n"


def _write_outputs(lab_dir: Path, nodes: list[NodeState], host_keys: dict[str, str]) -> None:
    known = "".join(f"{n.address} {' '.join(host_keys[n.name].split()[:2])}\n" for n in nodes)
    _write(lab_dir / "known_hosts", known.encode(), 0o644)
    _write(lab_dir / "inventory.ini",
           _inventory(lab_dir, nodes, user="root", become=False).encode(), 0o644)
    _write(lab_dir / "inventory-sudo.ini",
           _inventory(lab_dir, nodes, user=LABOPS, become=True).encode(), 0o644)


def read_state(lab_dir: Path) -> dict:
    path = lab_dir / "lab.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError("no lab here (lab.json missing); start one with `harden lab up`",
                         str(lab_dir)) from None
    except ValueError as exc:
        raise InputError(f"unreadable lab state: {exc}", str(path)) from None


def _nodes_of(state: dict) -> list[NodeState]:
    return [NodeState(**n) for n in state["nodes"]]


def _save_state(lab_dir: Path, state: dict) -> None:
    tmp = lab_dir / ".lab.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, lab_dir / "lab.json")


# --- commands ---------------------------------------------------------------------------------

def _node_specs(control_planes: int, workers: int, net: str,
                profile: layout.Profile) -> list[layout.NodeSpec]:
    roles = [("cp", "control-plane")] * control_planes + [("w", "worker")] * workers
    loopback = profile.components_on_loopback
    ports = free_loopback_ports(2 * control_planes) if loopback else []
    members = tuple((f"cp{i}", f"{net}.{10 + i}") for i in range(1, control_planes + 1))
    specs, counters = [], {"cp": 0, "w": 0}
    for i, (prefix, role) in enumerate(roles, start=1):
        counters[prefix] += 1
        extra = {}
        if role == "control-plane":
            extra["etcd_members"] = members
        if role == "control-plane" and loopback:
            extra.update(controller_manager_port=ports.pop(), scheduler_port=ports.pop())
        specs.append(layout.NodeSpec(f"{prefix}{counters[prefix]}", role, f"{net}.{10 + i}",
                                     **extra))
    return specs


def _ssh_ca(lab_dir: Path, name: str) -> Path:
    """A new SSH CA: DIR/NAME (0600) and DIR/NAME.pub; the private key's path."""
    key, public = pki.ssh_keypair(f"harden-lab-{name.replace('_', '-')}")
    _write(lab_dir / name, key, 0o600)
    _write(lab_dir / f"{name}.pub", public, 0o644)
    return lab_dir / name


def _host_certificate(ca: Path, host_pub: Path, spec: layout.NodeSpec) -> Path:
    """The node's host certificate (`ssh-keygen -h`), for its address and its name."""
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-h", "-I", f"harden-lab-{spec.name}",
                    "-n", f"{spec.address},{spec.name}", str(host_pub)],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
    return host_pub.with_name(host_pub.name[:-len(".pub")] + "-cert.pub")


def up(lab_dir: Path, *, control_planes: int = 1, workers: int = 1, profile: str = "kubeadm",
       net: str | None = None, ssh_algorithms: str = "default", user_ca: bool = False,
       host_ca: bool = False,
       seed_secrets: int = 0, kubeadm_api: str = "v1beta4",
       kubeadm_config_dir: Path | None = None, sshd_options: Sequence[str] = (),
       sshd_env: Mapping[str, str] | None = None) -> dict:
    """Start a lab and return its state (also written to DIR/lab.json).

    `user_ca` writes an SSH user CA (DIR/user_ca, DIR/user_ca.pub) that every node's sshd
    trusts: `ssh-keygen -s DIR/user_ca -I id -n root KEY.pub` makes a certificate that logs in.
    `host_ca` writes an SSH host CA (DIR/host_ca, DIR/host_ca.pub) that signs every node's host
    key (principals: its address and its name), and DIR/known_hosts_ca, whose one
    `@cert-authority` line trusts it for the lab's addresses.
    `seed_secrets` adds that many secrets to the objects the API servers seed (harden.lab.seed).
    `kubeadm_api` is the shape (v1beta3 or v1beta4) of the ClusterConfiguration seeded into
    kube-system/kubeadm-config, which regenerates exactly the manifests written here.
    `kubeadm_config_dir` starts the cluster from a kubeadm config instead (harden.lab.kubeadm_init;
    its apiVersion replaces `kubeadm_api`); it is read and checked before anything starts.
    `sshd_options` (sshd_config lines appended to every node's, checked with `sshd -t` before
    any node starts) and `sshd_env` (NAME: VALUE for every node's sshd) give the nodes' sshd
    what a test or demo needs beyond the lab's own settings, e.g. GSSAPI/Kerberos logins.
    """
    check_host()
    if profile not in layout.PROFILES:
        raise InputError(f"unknown profile {profile!r}; choose {', '.join(layout.PROFILES)}")
    if ssh_algorithms not in sshd.ALGORITHM_SETS:
        raise InputError(f"unknown ssh algorithm set {ssh_algorithms!r}; choose "
                         f"{', '.join(sshd.ALGORITHM_SETS)}")
    sshd_options, sshd_env = list(sshd_options), dict(sshd_env or {})
    sshd.check_options(sshd_options, sshd_env)
    if control_planes < 0 or workers < 0 or not 1 <= control_planes + workers <= 240:
        raise InputError("a lab has between 1 and 240 nodes")
    if not 0 <= seed_secrets <= 100000:
        raise InputError(f"--secrets must be between 0 and 100000, got {seed_secrets}")
    if kubeadm_api not in kubeadm_config.API_VERSIONS:
        raise InputError(f"unknown kubeadm API version {kubeadm_api!r}; choose "
                         f"{', '.join(kubeadm_config.API_VERSIONS)}")
    plan = kubeadm_init.read(Path(kubeadm_config_dir), MOUNT_DIRS) if kubeadm_config_dir else None
    lab_dir = lab_dir.resolve()
    check_lab_dir(lab_dir)
    if (lab_dir / "lab.json").exists() and any(
            is_our_supervisor(n) for n in _nodes_of(read_state(lab_dir))):
        raise HardenError(f"a lab is already running in {lab_dir}; run `harden lab down` first")
    if len(str(lab_dir / "nodes" / "cp999" / "control.sock")) > MAX_SOCKET_PATH:
        raise InputError("lab dir path too long for the nodes' control sockets", str(lab_dir))
    net = parse_net(net) if net else choose_net()
    if not net_is_free(net):
        raise HardenError(f"something already listens on {net}.0/24; choose another --net")
    check_port_22_bindable()
    if sshd_options:
        sshd.verify_options(sshd_options, pki.ssh_keypair("sshd-option-check")[0])
    started = time.monotonic()
    lab_dir.mkdir(parents=True, exist_ok=True)
    prof = layout.PROFILES[profile]
    specs = _node_specs(control_planes, workers, net, prof)
    client_key, client_pub = pki.ssh_keypair("harden-lab")
    _write(lab_dir / "id_ed25519", client_key, 0o600)
    _write(lab_dir / "id_ed25519.pub", client_pub, 0o644)
    _write(lab_dir / "authorized_keys" / "root", client_pub, 0o600)
    ca_pub = None
    if user_ca:
        ca_pub = _ssh_ca(lab_dir, "user_ca").with_suffix(".pub")
    host_ca_key = None
    if host_ca:
        host_ca_key = _ssh_ca(lab_dir, "host_ca")
        _write(lab_dir / "known_hosts_ca", f"@cert-authority {net}.* ".encode() +
               host_ca_key.with_suffix(".pub").read_bytes(), 0o644)
    password = secrets.token_urlsafe(18)
    _write(lab_dir / "become-password", password.encode() + b"\n", 0o600)
    uid = labops_uid()
    users = user_files(uid, password_hash(password))
    cluster = pki.new_cluster_pki()
    if plan is None:
        plan = kubeadm_init.InitPlan(
            kubeadm_api, layout.kube_yaml(layout.cluster_document(prof, kubeadm_api)).decode(),
            layout.cluster_config(prof, kubeadm_api), layout.kubelet_cluster_config(prof))
    kubeadm_api = plan.api_version
    seed.write(lab_dir / "seed.json", profile, seed_secrets,
               cluster_configuration=plan.cluster_text,
               kubelet=layout.kube_yaml(plan.kubelet).decode())
    first_cp = next((s.address for s in specs if s.is_control_plane), f"{net}.11")
    kernel_settings = read_kernel_settings()
    node_specs = [write_node(lab_dir, s, prof, cluster, api_server=f"https://{first_cp}:6443",
                             uid=uid, users=users, client_pub=client_pub,
                             ssh_algorithms=ssh_algorithms, user_ca=ca_pub,
                             host_ca=host_ca_key, config=plan.config,
                             kubelet=plan.kubelet,
                             kubelet_args=plan.init_kubelet_args if i == 0
                             else plan.join_kubelet_args,
                             extra_files=plan.files if s.is_control_plane else
                             {p: f for p, f in plan.files.items()
                              if p.startswith(f"{SYSCTL_DIR}/")},
                             extra_dirs=plan.dirs if s.is_control_plane else None,
                             kernel_settings=kernel_settings,
                             sshd_options=sshd_options, sshd_env=sshd_env)
                  for i, s in enumerate(specs)]
    ensure_host_mountpoints()
    nodes = [launch(ns) for ns in node_specs]
    for node, spec in zip(nodes, specs):
        node.role = spec.role
    state = {"dir": str(lab_dir), "net": net, "profile": profile, "kubeadm_api": kubeadm_api,
             "kubeadm_config": str(Path(kubeadm_config_dir).resolve()) if kubeadm_config_dir
             else None, "state": "starting",
             "ssh_algorithms": ssh_algorithms, "user_ca": bool(user_ca),
             "host_ca": bool(host_ca), "labops_uid": uid,
             "sshd_options": sshd_options, "sshd_env": sshd_env,
             "nodes": [asdict(n) for n in nodes]}
    deadline = time.monotonic() + UP_TIMEOUT
    try:
        for node in nodes:
            _find_supervisor(node, deadline)
        state["nodes"] = [asdict(n) for n in nodes]
        _save_state(lab_dir, state)
        _wait_for_sshd(nodes, deadline)
    except BaseException:
        for node in nodes:
            _abort(node)
        state["state"] = "down"
        _save_state(lab_dir, state)
        raise
    _write_outputs(lab_dir, nodes, {ns["name"]: ns["host_key_pub"] for ns in node_specs})
    state.update(state="up", started_seconds=round(time.monotonic() - started, 3))
    _save_state(lab_dir, state)
    return state


def down(lab_dir: Path) -> list[str]:
    """Stop this lab's supervisors (only the recorded, verified ones). Returns the nodes stopped."""
    lab_dir = lab_dir.resolve()
    state = read_state(lab_dir)
    check_host()
    nodes = _nodes_of(state)
    stopped = [n.name for n in nodes if stop_node(n)]
    for node in nodes:
        _reap_launcher(node)
        Path(node.node_dir, "control.sock").unlink(missing_ok=True)
    state["state"] = "down"
    _save_state(lab_dir, state)
    return stopped


def status(lab_dir: Path) -> dict:
    """The lab's state with, per node, whether it runs, whether sshd answers, its services."""
    lab_dir = lab_dir.resolve()
    state = read_state(lab_dir)
    rows = []
    for node in _nodes_of(state):
        running = is_our_supervisor(node)
        try:
            services = json.loads(Path(node.node_dir, "services.json").read_text())["services"]
        except (OSError, ValueError, KeyError):
            services = {}
        kubelet = kubelet_state(node.node_dir) if running else {}
        rows.append({"name": node.name, "role": node.role, "address": node.address,
                     "running": running,
                     "sshd_up": running and port_open(node.address),
                     "services": services if running else {},
                     "kubelet": kubelet.get("kubelet", {}),
                     "pods": kubelet.get("pods", {})})
    return {"dir": state["dir"], "net": state["net"], "profile": state["profile"],
            "kubeadm_api": state.get("kubeadm_api", "v1beta4"),
            "kubeadm_config": state.get("kubeadm_config"), "state": state["state"],
            "nodes": rows}


def kubelet_state(node_dir: str) -> dict:
    """The node kubelet's state file (written by harden.lab.kubelet: itself and its static
    pods), or {}."""
    try:
        return json.loads(Path(node_dir, "root", KUBELET_STATE_FILE.lstrip("/")).read_text())
    except (OSError, ValueError):
        return {}


def unready(report: dict) -> list[str]:
    """What keeps a lab from being ready: nodes without sshd or kubelet, pods not ready."""
    problems = []
    for row in report["nodes"]:
        if not row["sshd_up"]:
            problems.append(f"{row['name']}: sshd down")
        service = row["services"].get("kubelet", {})
        if service.get("state") != "active":
            problems.append(f"{row['name']}: kubelet not active")
        elif (row["kubelet"].get("pid") != service.get("pid")
              or row["kubelet"].get("state") != "running"):
            # the supervisor calls a process active once spawned (systemd's Type=simple); the
            # kubelet serves /healthz only after it read its config and wrote its own state
            problems.append(f"{row['name']}: kubelet not serving yet")
        expected = EXPECTED_PODS if row["role"] == "control-plane" else 0
        pods = row.get("pods", {})
        if len(pods) < expected:
            problems.append(f"{row['name']}: {len(pods)}/{expected} static pods seen")
        problems += [f"{row['name']}: pod {name} {pod.get('state')}"
                     + (f" ({pod['last_error']})" if pod.get("last_error") else "")
                     for name, pod in pods.items() if not pod.get("ready")]
    return problems


def wait_ready(lab_dir: Path, timeout: float = 30.0) -> dict:
    """Block until every node's sshd and kubelet run and every static pod is ready.

    Tests and the demo need a steady lab before they measure anything; a lab that does not
    settle in time is an error that says which node and pod is stuck.
    """
    deadline = time.monotonic() + timeout
    while True:
        report = status(lab_dir)
        problems = unready(report)
        if not problems:
            return report
        if time.monotonic() > deadline:
            raise HardenError(f"lab not ready after {timeout:.0f}s: " + "; ".join(problems[:6]))
        time.sleep(0.2)


def format_status(report: dict) -> str:
    source = f" from {report['kubeadm_config']}" if report.get("kubeadm_config") else ""
    lines = [f"lab {report['dir']}  net {report['net']}.0/24  profile {report['profile']}  "
             f"kubeadm {report.get('kubeadm_api', 'v1beta4')}{source}  state {report['state']}",
             f"{'NODE':<6} {'ROLE':<14} {'ADDRESS':<16} {'SSHD':<5} SERVICES"]
    for row in report["nodes"]:
        services = ", ".join(
            f"{name}={info['state']}" + (f"(pid {info['pid']})" if info.get("pid") else "")
            + (f"[restarts {info['restarts']}]" if info.get("restarts") else "")
            for name, info in row["services"].items()) or ("-" if row["running"] else "down")
        lines.append(f"{row['name']:<6} {row['role']:<14} {row['address']:<16} "
                     f"{'up' if row['sshd_up'] else 'down':<5} {services}")
        for name, pod in sorted(row.get("pods", {}).items()):
            lines.append(f"{'':<6} pod {name:<32} {pod.get('state', '?'):<14} "
                         f"ready={'yes' if pod.get('ready') else 'no'} "
                         f"restarts={pod.get('restarts', 0)}"
                         + (f"  last error: {pod['last_error']}" if pod.get("last_error") else ""))
    return "\n".join(lines)
