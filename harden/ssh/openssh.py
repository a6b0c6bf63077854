"""The OpenSSH transport: the system `ssh` client, one ControlMaster connection per host.

Why: whatever `ssh` reaches, harden then reaches — algorithms paramiko lacks
(sntrup761x25519, chacha20-poly1305), FIDO security keys, GSSAPI, certificates, every
`Match` of the user's ssh config. The cost stays that of the paramiko transport: one login
per host for the run (the master), then one exec channel per command through it
(`ssh -S socket`), and health-check tunnels through the same master (`ssh -S socket -W`).
A session for one command (a check's probe) starts no master first: the `ssh` that logs in
runs the command and is the master, so it costs one process, as `ssh host command` does.

The masters' sockets live in a private 0700 directory made for the run; a master runs in the
foreground as our child (ControlPersist off), so closing the session ends it (SIGTERM to that
process, which we started) and removes the directory; the directory names its harden process,
so masters that outlived a SIGKILLed harden are ended by the next run (sweep_stale_masters).
Become, stdin, timeouts and error classes are those of the paramiko transport
(common.HostSession); errors are classified from ssh's own messages, and only connection
establishment (refused, reset, timed out) is retried.
"""

from __future__ import annotations

import fcntl
import math
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from harden.errors import HostError
from harden.node.limits import MAX_OUTPUT_BYTES
from harden.ssh.hostkeys import HostKeyMismatch, HostKeyUnknown, known_hosts_name, unknown_message
from harden.ssh.settings import ConnectionSpec, Endpoint, HostKeyCheck, shell_safe
from harden.ssh.socket_wait import EXITED, TIMED_OUT, wait_for_socket
from harden.ssh.sshconfig import ssh_client
from harden.ssh.common import (AuthenticationFailed, CommandTimeout, HostSession, Unreachable,
                               NetworkError, RETRIED, with_retries, bounded_output)
from harden.ssh.session import CommandResult

# What ssh prints on stderr (not to its -E log) when the connection closes under a session.
_QUIT_MESSAGE = re.compile(r"(Connection to \S+ closed(?: by remote host)?\.)\r\n\Z")
# What an `ssh -S` client prints when the master, not the command, failed it.
_MUX_FAILURE = re.compile(r"mux_client_|Control socket connect|ControlSocket .* already exists")
_CHUNK = 65536
_EXIT_TIMEOUT = 5.0
_TERM_REPEAT = 0.1           # seconds between SIGTERMs to a master that has not exited yet
_PRIVATE_PREFIX = "harden-ssh-"
_OWNER_FILE = "owner"        # in a private directory: "<pid> <start time>" of its harden


def connect_openssh(spec: ConnectionSpec, jumps: JumpMasters | None = None,
                    one_exec: bool = False) -> OpenSSHSession:
    """Start the host's master (after its jump hosts' masters, shared through `jumps` when
    given); retry network errors only. With `one_exec` (the caller runs one command, as a
    check does) no master is started here: the first exec logs in and is the master itself
    (OpenSSHSession.first_exec_as_master), one `ssh` process per host instead of two."""
    _sweep_once()
    private = _private_dir()
    own_jumps = None
    try:
        via = None
        if spec.jumps and not spec.proxy_command:
            if jumps is not None:
                via = jumps.socket_for(spec, spec.jumps)
            else:
                own_jumps = JumpMasters()
                via = own_jumps.socket_for(spec, spec.jumps)
        login = _Login(spec, os.path.join(private, "m"), via, spec.config_name or None)
        master = None if one_exec else with_retries(spec, login.master)
    except BaseException:
        if own_jumps is not None:
            own_jumps.close()
        shutil.rmtree(private, ignore_errors=True)
        raise
    return OpenSSHSession(spec, master, private, own_jumps, login)


@dataclass(frozen=True)
class _Login:
    """How this host's master logs in: its socket, the jump master's socket, the name ssh
    resolves (an ssh-config alias)."""

    spec: ConnectionSpec
    path: str
    via: str | None
    destination: str | None

    def master(self) -> Master:
        return Master.start(self.spec, self.spec.target, self.path, self.via,
                            destination=self.destination)

    def argv(self, *args: str) -> list[str]:
        """An `ssh` that logs in as a master (Master.start's options) and then runs `args`."""
        hop = self.spec.target
        return [ssh_client() or "ssh", *master_options(self.spec, hop, self.path, self.via),
                *args[:-1], "--", self.destination or hop.address, args[-1]]


def _socket_base() -> str:
    """Where the private directories go (short: socket paths max ~104 bytes)."""
    base = tempfile.gettempdir()
    return "/tmp" if len(base) > 60 else base


def _private_dir() -> str:
    """A fresh 0700 directory for control sockets, with the identity of the harden process
    that owns it (so a later run can tell that its masters outlived it)."""
    path = tempfile.mkdtemp(prefix=_PRIVATE_PREFIX, dir=_socket_base())
    os.chmod(path, 0o700)
    owner = _process_identity(os.getpid())
    if owner is not None:
        with open(os.path.join(path, _OWNER_FILE), "w") as f:
            f.write(f"{owner} {_pid_namespace()}")
    return path


def _pid_namespace() -> str:
    """Our PID namespace: a pid names a process only inside its own (a lab node has another)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "?"


def _process_identity(pid: int) -> str | None:
    """"<pid> <start time>" from /proc: a pid alone may have been reused by another process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return f"{pid} {fields[19]}" if len(fields) > 19 else None


_sweep_lock = threading.Lock()
_swept = False


def _sweep_once() -> None:
    """Stop masters a killed harden left, once per process (see sweep_stale_masters); a
    sweep that fails costs nothing but the clean-up."""
    global _swept
    with _sweep_lock:
        if _swept:
            return
        _swept = True
        try:
            sweep_stale_masters(_socket_base())
        except OSError:
            pass


def sweep_stale_masters(base: str) -> list[int]:
    """Stop the ssh masters of private directories in `base` whose harden is gone, and remove
    those directories; returns the pids signalled.

    A harden that is SIGKILLed (`kill -9`, the OOM killer) cannot stop its masters, and with
    ControlPersist off nothing else does: each keeps its login to a node open until the node
    drops it. Only our own directories (our uid, an owner file naming a process that no longer
    exists in our PID namespace) and only ssh masters whose ControlPath lies inside one of them
    are touched: never a master of a running harden, never anything else.
    """
    signalled: list[int] = []
    try:
        names = [n for n in os.listdir(base) if n.startswith(_PRIVATE_PREFIX)]
    except OSError:
        return signalled
    for name in names:
        path = os.path.join(base, name)
        if _owner_is_gone(path):
            signalled += _stop_masters_in(path)
            shutil.rmtree(path, ignore_errors=True)
    return signalled


def _owner_is_gone(path: str) -> bool:
    try:
        info = os.lstat(path)
        with open(os.path.join(path, _OWNER_FILE), encoding="ascii") as f:
            owner = f.read().strip()
    except OSError:
        return False            # not ours to judge (no owner file: being created, or older)
    pid, _, rest = owner.partition(" ")
    start, _, namespace = rest.partition(" ")
    if info.st_uid != os.getuid() or not pid.isdigit() or namespace != _pid_namespace():
        return False            # another user's, or a pid of another namespace: unknowable
    return _process_identity(int(pid)) != f"{pid} {start}"


def _stop_masters_in(path: str) -> list[int]:
    """SIGTERM (repeated, as in Master.stop) every process of ours that is a master with its
    ControlPath in `path`; SIGKILL what is left after _EXIT_TIMEOUT (and give up after twice
    that: a process stuck in the kernel is not worth hanging a run for)."""
    found = pids = [pid for pid in _own_pids() if _is_master_in(pid, path)]
    deadline = time.monotonic() + _EXIT_TIMEOUT
    while pids and time.monotonic() < deadline + _EXIT_TIMEOUT:
        for pid in pids:
            _signal(pid, signal.SIGTERM if time.monotonic() < deadline else signal.SIGKILL)
        time.sleep(_TERM_REPEAT)
        pids = [pid for pid in pids if _is_master_in(pid, path)]
    return found


def _own_pids() -> list[int]:
    uid = os.getuid()
    pids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for entry in entries:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def _is_master_in(pid: int, path: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().decode(errors="replace").split("\0")
    except OSError:
        return False
    return ("ControlMaster=yes" in argv
            and any(a.startswith(f"ControlPath={path}/") for a in argv))


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


@dataclass
class Master:
    """One `ssh -M -N` process: the logged-in connection of one host (or jump host)."""

    spec: ConnectionSpec
    hop: Endpoint
    socket: str
    process: subprocess.Popen
    log: str

    @classmethod
    def start(cls, spec: ConnectionSpec, hop: Endpoint, path: str, via: str | None,
              destination: str | None = None) -> Master:
        """Log in; return once the control socket exists, or raise the classified error."""
        log = path + ".log"
        if os.path.exists(path):
            os.unlink(path)
        argv = [ssh_client() or "ssh", *master_options(spec, hop, path, via), "-N", "--",
                destination or hop.address]
        with open(log, "wb") as err:
            # In our process group: a Ctrl-C or hang-up of the terminal ends the masters too.
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=err)
        master = cls(spec, hop, path, process, log)
        master._wait_ready()
        return master

    def _wait_ready(self) -> None:
        # ssh enforces ConnectTimeout on the TCP connect; the handshake and login get as long
        # again, so a silent server cannot hold a host forever.
        deadline = time.monotonic() + 2 * self.spec.connect_timeout + 1
        state = wait_for_socket(self.socket, self.process, deadline)
        if state == EXITED:
            raise classify(self.spec, self.hop, self._stderr()) from None
        if state == TIMED_OUT:
            self.stop()
            raise NetworkError(f"SSH login to {self.hop.label} did not finish within "
                               f"{2 * self.spec.connect_timeout + 1:g}s")

    def alive(self) -> bool:
        return self.process.poll() is None

    def _stderr(self) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        """End the master: it is our child, so SIGTERM (ssh closes its channels and removes
        its socket) rather than a third process per host for `-O exit`.

        The signal is repeated until ssh exits: OpenSSH's client loop (9.2 here) checks for a
        signal and then sleeps in poll() with no timeout, so a SIGTERM landing in between
        (while the master is still busy with the channel that just closed) is only seen at the
        next wake-up, which an idle connection never has: one close in about thirty waited
        the full _EXIT_TIMEOUT. A second signal interrupts that poll()."""
        deadline = time.monotonic() + _EXIT_TIMEOUT
        while self.process.poll() is None and time.monotonic() < deadline:
            self.process.terminate()
            try:
                self.process.wait(timeout=_TERM_REPEAT)
            except subprocess.TimeoutExpired:
                continue
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def master_options(spec: ConnectionSpec, hop: Endpoint, path: str, via: str | None) -> list[str]:
    """ssh arguments for a master to `hop`: harden's resolved settings first (ssh keeps the
    first value it sees), then the user's other -o options, then their config file."""
    checked = spec.host_keys(hop)
    opts = {
        "ControlMaster": "yes", "ControlPath": path, "ControlPersist": "no",
        "BatchMode": "yes", "HostName": hop.address.replace("%", "%%"),     # an IPv6 zone
        "Port": str(hop.port), "User": hop.user,
        # `no` lets ssh log in past a changed key; harden refuses that with either transport
        "StrictHostKeyChecking": "accept-new" if checked.policy == "no" else checked.policy,
        "UserKnownHostsFile": " ".join(_quote(f) for f in _known_hosts(checked)) or "none",
        "GlobalKnownHostsFile": " ".join(map(_quote, checked.global_files)) or "none",
        "ConnectTimeout": str(max(1, math.ceil(spec.connect_timeout))),
        "IdentitiesOnly": "yes" if hop.identities_only else None,
        "IdentityAgent": _quote(hop.identity_agent) if hop.identity_agent else None,
        "PasswordAuthentication": "no", "KbdInteractiveAuthentication": "no",
        "HostKeyAlias": hop.host_key_alias,
        "ServerAliveInterval": str(spec.keepalive) if spec.keepalive else None,
        "Compression": "yes" if spec.compress else None,
    }
    if via is not None:          # ssh runs it in a shell with %h = HostName
        shell_safe(spec.host, hop.address, "ansible_host")
        opts["ProxyCommand"] = (f"{ssh_client() or 'ssh'} -F /dev/null -S {_quote(via)} "
                                "-o ControlMaster=no -W %h:%p harden")
    elif spec.proxy_for(hop):
        opts["ProxyCommand"] = spec.proxy_for(hop).replace("%", "%%")
    else:
        opts["ProxyJump"] = "none"
    argv = ["-F", spec.ssh_config_file] if spec.ssh_config_file else []
    for key, value in opts.items():
        if value is not None:
            argv += ["-o", f"{key}={value}"]
    for key_file in hop.key_files:
        argv += ["-o", f"IdentityFile={_quote(key_file)}"]
    for cert in hop.cert_files:
        argv += ["-o", f"CertificateFile={_quote(cert)}"]
    for option in spec.ssh_options:
        argv += ["-o", option]
    return argv


def _known_hosts(checked: HostKeyCheck) -> list[str]:
    """The user files, the record file first: that is where ssh writes a newly accepted key
    (none: no file, and ssh then refuses any new key, as the paramiko transport does)."""
    record = [checked.record] if checked.record else []
    return list(dict.fromkeys([*record, *checked.user_files]))


def _quote(path: str) -> str:
    return f'"{path}"' if any(c.isspace() for c in path) else path


class JumpMasters:
    """Masters to jump hosts, shared by every host behind the same chain (one bastion login)."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self._lock = threading.Lock()
        self._slots: dict[tuple, _Slot] = {}

    def socket_for(self, spec: ConnectionSpec, chain: tuple[Endpoint, ...]) -> str:
        """The control socket of the last hop of `chain`, its master started on first use."""
        key = (chain, spec.all_known_hosts_files, spec.record_known_hosts_file,
               spec.host_key_policy, spec.ssh_config_file, spec.ssh_options)
        with self._lock:
            if self._dir is None:
                self._dir = _private_dir()
            slot = self._slots.setdefault(key, _Slot(os.path.join(self._dir,
                                                                  f"j{len(self._slots)}")))
        with slot.lock:
            if slot.error is not None:
                raise type(slot.error)(spec.host, slot.error.message, slot.error.setting)
            if slot.master is None or not slot.master.alive():
                via = self.socket_for(spec, chain[:-1]) if len(chain) > 1 else None
                try:
                    slot.master = with_retries(
                        spec, lambda: Master.start(spec, chain[-1], slot.path, via))
                except HostError as exc:
                    slot.error = exc
                    raise
            return slot.master.socket

    def close(self) -> None:
        with self._lock:
            slots, self._slots = list(self._slots.values()), {}
            directory, self._dir = self._dir, None
        for slot in reversed(slots):
            if slot.master is not None:
                slot.master.stop()
        if directory:
            shutil.rmtree(directory, ignore_errors=True)


@dataclass
class _Slot:
    path: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    master: Master | None = None
    error: HostError | None = None


class OpenSSHSession(HostSession):
    """Commands and tunnels through the host's master, each one `ssh -S socket` client."""

    def __init__(self, spec: ConnectionSpec, master: Master | None, private_dir: str,
                 own_jumps: JumpMasters | None = None, login: _Login | None = None):
        super().__init__(spec)
        self.master = master
        self._dir = private_dir
        self._own_jumps = own_jumps
        self._login = login
        self._exec_master = False      # the master is first_exec_as_master's command
        self._tunnels: list[subprocess.Popen] = []

    def _client(self, *args: str) -> list[str]:
        # ProxyCommand=false: should the master be gone, the client must fail rather than
        # quietly log in a second time on its own.
        return [ssh_client() or "ssh", "-F", "/dev/null", "-S", self.master.socket,
                "-o", "ControlMaster=no", "-o", "ProxyCommand=false", "-o", "BatchMode=yes",
                *args]

    def _live_master(self) -> Master:
        """The master channels go through. A session connected for one exec has none until
        that exec (which is its master) ran; asked for more, it logs in again with a master
        of its own, which costs a second login but never a wrong answer."""
        if self._login is not None and (self.master is None or self._exec_master
                                        and not self.master.alive()):
            self.master, self._exec_master = with_retries(self.spec, self._login.master), False
        if self.master is None or not self.master.alive():
            raise Unreachable(self.host, "connection lost (the ssh master exited)")
        return self.master

    def _open_stream(self, command: str, deadline: float | None,
                     timeout: float | None) -> _ProcessStream:
        if self.master is None and self._login is not None and self.exec_count == 1:
            return self.first_exec_as_master(command, deadline, timeout)
        self._live_master()
        process = subprocess.Popen(self._client("-T", "harden", command), stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return _ProcessStream(self, process, deadline, timeout)

    def first_exec_as_master(self, command: str, deadline: float | None,
                             timeout: float | None) -> _ProcessStream:
        """The session's first command run by the `ssh` that logs in, as ControlMaster
        (ControlPersist off, socket in the private directory): the login and the exec cost
        one process, as the OpenSSH floor does; other channels may use the socket while the
        command runs. ssh's own messages go to a log (-E), so the command's stderr is its own
        but for two things ssh writes there itself: a server's login banner (sshd's Banner,
        before the command starts, so not told apart from its stderr) and the quit message
        of a connection closed under it (see _MasterStream); a
        login failure is told from the command's exit status 255. Only the login is
        retried, never the command (see _MasterStream.wait_login)."""
        login = self._login
        log = login.path + ".log"

        def attempt() -> _MasterStream:
            for path in (login.path, log):
                if os.path.exists(path):
                    os.unlink(path)
            process = subprocess.Popen(login.argv("-E", log, "-T", command),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
            stream = _MasterStream(self, process, deadline, timeout)
            self.master = Master(self.spec, self.spec.target, login.path, process, log)
            self._exec_master = True
            stream.wait_login()
            return stream

        return with_retries(self.spec, attempt)

    def open_tcp(self, host: str, port: int, timeout: float | None = None) -> _Tunnel:
        """A connection made by the node (`ssh -W` through the master), as a socket.

        A target that refuses shows as a connection closed at once (no data), which the
        health checks read as unhealthy, as they do paramiko's refused channel.
        """
        self._live_master()
        ours, theirs = socket.socketpair()
        try:
            process = subprocess.Popen(self._client("-W", f"{host}:{port}", "harden"),
                                       stdin=theirs.fileno(), stdout=theirs.fileno(),
                                       stderr=subprocess.DEVNULL)
        finally:
            theirs.close()
        with self._lock:
            self._tunnels = [p for p in self._tunnels if p.poll() is None] + [process]
        ours.settimeout(timeout or self.spec.connect_timeout)
        return _Tunnel(ours, process)

    def close(self) -> None:
        with self._lock:
            tunnels, self._tunnels = self._tunnels, []
        for process in tunnels:
            if process.poll() is None:
                process.terminate()
            process.wait()
        if self.master is not None:
            self.master.stop()
        if self._own_jumps is not None:
            self._own_jumps.close()
        shutil.rmtree(self._dir, ignore_errors=True)


class _Tunnel:
    """A socket to the node's TCP connection; closing it ends its `ssh -W` client."""

    def __init__(self, sock: socket.socket, process: subprocess.Popen):
        self._sock, self._process = sock, process

    def settimeout(self, seconds: float | None) -> None:
        self._sock.settimeout(seconds)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def close(self) -> None:
        self._sock.close()
        try:
            self._process.wait(timeout=_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class _ProcessStream:
    """One `ssh -S` client's stdout and stderr read together while stdin is fed: the same
    interface as the paramiko transport's _Stream, so become and timeouts behave alike."""

    def __init__(self, session: OpenSSHSession, process: subprocess.Popen,
                 deadline: float | None, timeout: float | None):
        self.session, self.host, self.process = session, session.host, process
        self.deadline, self.timeout = deadline, timeout
        self.stdout, self.stderr = bytearray(), bytearray()
        self.max_output = MAX_OUTPUT_BYTES
        self._open = {process.stdout.fileno(): self.stdout, process.stderr.fileno(): self.stderr}
        self._pending = b""
        for fd in (process.stdin.fileno(), *self._open):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    @property
    def ended(self) -> bool:
        return not self._open

    def send(self, data: bytes) -> None:
        """Write all of `data` to the command's stdin (small: a sudo password)."""
        view = memoryview(data)
        while view:
            select.select([], [self.process.stdin], [], 1.0)
            try:
                view = view[os.write(self.process.stdin.fileno(), view):]
            except BlockingIOError:
                continue

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            pipe.close()

    def exit_status(self) -> int:
        """The command's exit status; Unreachable when the master died under it (ssh says
        255 for its own failures, which a command may also return: the master decides)."""
        try:
            rc = self.process.wait(timeout=max(0.1, self._remaining(_EXIT_TIMEOUT)))
        except subprocess.TimeoutExpired:
            return -1
        if rc == 255 and not self.session.master.alive():
            raise Unreachable(self.host, "connection lost while the command ran")
        if rc == 255 and _MUX_FAILURE.search(self.stderr.decode(errors="replace")):
            raise Unreachable(self.host, "the ssh master refused a new channel: "
                                         f"{self.stderr.decode(errors='replace').strip()}")
        return rc

    def finish(self, stdin: bytes) -> CommandResult:
        self._pending = stdin
        try:
            if not self._pending:
                self._close_stdin()
            while not self.ended:
                self.pump(None)
            return CommandResult(self.exit_status(), bytes(self.stdout), bytes(self.stderr))
        finally:
            self.close()

    def pump(self, until: float | None) -> None:
        """Wait (at most until `until`) for output, take it, feed stdin; CommandTimeout (the
        client killed, so its channel closes) once the command's deadline passed."""
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            self.close()
            raise CommandTimeout(self.host, f"command did not finish within {self.timeout:g}s "
                                            "(it was not re-run)")
        wait = 0.5
        for limit in (until, self.deadline):
            if limit is not None:
                wait = max(0.0, min(wait, limit - now))
        writers = [self.process.stdin] if self._pending else []
        readable, writable, _ = select.select(list(self._open), writers, [], wait)
        if writable:
            self._feed_stdin()
        for fd in readable:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:
                continue
            if chunk:
                self._open[fd] += chunk
                bounded_output(self.host, self.stdout, self.stderr, self.max_output, self.close)
            else:
                del self._open[fd]

    def _feed_stdin(self) -> None:
        try:
            sent = os.write(self.process.stdin.fileno(), self._pending[:_CHUNK])
        except BlockingIOError:
            return
        except BrokenPipeError:
            sent = len(self._pending)      # the command stopped reading: like a closed channel
        self._pending = self._pending[sent:]
        if not self._pending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        if not self.process.stdin.closed:
            self.process.stdin.close()

    def _remaining(self, default: float) -> float:
        if self.deadline is None:
            return default
        return max(0.0, self.deadline - time.monotonic())


class _MasterStream(_ProcessStream):
    """The stream of a command run by the master itself (first_exec_as_master): ssh's own
    messages are in the master's log, not on stderr, and the process ending is the
    connection ending."""

    def wait_login(self) -> None:
        """Until ssh is logged in (its control socket exists: OpenSSH listens on it after
        authentication and before it opens the command's channel) or has exited. An exit
        with ssh's own complaint in the log and status 255 is a login failure, classified as
        Master's are (NetworkError: retried; the command never started). An exit without
        one is a command that already finished (with LogLevel QUIET a failed login looks
        the same: its 255 is then reported as the command's). The other way round, a command
        that exits 255 before the first look sees the socket, while ssh logged a notice
        this does not filter, reads as a failed login: only check and ping (read-only
        commands) run this way, so a retry of it never repeats a change."""
        master = self.session.master
        limit = 2 * self.session.spec.connect_timeout + 1
        state = wait_for_socket(master.socket, self.process, time.monotonic() + limit)
        if state == EXITED and self.process.returncode == 255 and self._ssh_said():
            self.close()
            raise classify(self.session.spec, master.hop, master._stderr()) from None
        if state == TIMED_OUT:
            self.close()
            raise NetworkError(f"SSH login to {master.hop.label} did not finish within "
                               f"{limit:g}s")

    def _ssh_said(self) -> str:
        """ssh's own last complaint in the master's log (not a host-key notice, not debug,
        not the warning block newer clients print for a key exchange without post-quantum
        protection, whose lines start with "**")."""
        lines = [ln.strip() for ln in self.session.master._stderr().splitlines()
                 if ln.strip() and not ln.startswith(("Warning: Permanently added", "debug",
                                                      "**"))]
        return lines[-1] if lines else ""

    def _quit_message(self) -> str:
        """The one message ssh writes to stderr rather than to its log: the connection closed
        under the session ("Connection to HOST closed by remote host.", ended by \\r\\n
        as ssh ends it), as the last thing on stderr."""
        found = _QUIT_MESSAGE.search(self.stderr.decode(errors="replace"))
        return found.group(1) if found else ""

    def exit_status(self) -> int:
        """The command's exit status; Unreachable when ssh itself ended it (status 255 and a
        complaint of ssh's in the log or its quit message: the connection was lost)."""
        try:
            rc = self.process.wait(timeout=max(0.1, self._remaining(_EXIT_TIMEOUT)))
        except subprocess.TimeoutExpired:
            return -1
        said = self._ssh_said() or self._quit_message() if rc == 255 else ""
        if said:
            raise Unreachable(self.host, f"connection lost while the command ran: {said}")
        return rc


# --- what ssh's messages mean ------------------------------------------------------------------

# What ssh itself prints when its ProxyCommand closes the connection (the rest is the proxy's).
_SSH_ON_PROXY_EOF = re.compile(r"kex_exchange_identification: |Connection closed by |"
                               r"ssh_exchange_identification: |Pseudo-terminal |"
                               r"Connection timed out during banner exchange|"
                               r"Connection to UNKNOWN port ")


_DENIED_METHODS = re.compile(r"Permission denied \(([^)]*)\)")


def kerberos_hint(text: str) -> str:
    """What to check when ssh was refused by a server that takes only GSSAPI (Kerberos): ssh
    then had no ticket for it, or was not told to use one. Empty for any other refusal (a
    server listing publickey too gets no Kerberos advice for a wrong key)."""
    found = _DENIED_METHODS.search(text)
    methods = [m.strip() for m in found.group(1).split(",")] if found else []
    if not methods or not all(m.startswith("gssapi") for m in methods):
        return ""
    return ("; the server accepts only Kerberos (GSSAPI): ssh needs a valid ticket for the "
            "user (kinit; klist shows it, KRB5CCNAME names the cache harden runs with) and "
            "GSSAPIAuthentication yes (ssh config or ansible_ssh_common_args)")


_SIGNING_FAILED = re.compile(r'signing failed for (\S+) "([^"]*)"( from agent)?: (.+)')


def signing_hint(text: str) -> str:
    """What ssh said when it could not sign with a key (so it was never really offered): for a
    FIDO security key, the authenticator or its middleware was missing; who asks the device
    depends on where the key is: ssh itself for a key file, ssh-agent for a key the agent
    holds. Empty otherwise."""
    found = _SIGNING_FAILED.search(text)
    if not found:
        return ""
    key_type, path, agent, reason = found.groups()
    hint = f"; ssh could not sign with {path} ({key_type}){agent or ''}: {reason.strip()}"
    if not key_type.upper().endswith("-SK"):
        return hint
    if agent:
        return hint + (" (ssh-agent signs with this FIDO security key on its authenticator, "
                       "through the middleware library the key was added with (ssh-add -S, "
                       "else $SSH_SK_PROVIDER, else the built-in USB support), and loads only "
                       "libraries its -P patterns allow (ssh-agent -P): is the device "
                       "attached, does the agent allow the library?)")
    return hint + (" (a FIDO security key signs on its authenticator: attach the device, or "
                   "name its middleware library with SecurityKeyProvider in the ssh config or "
                   "ansible_ssh_common_args; SecurityKeyProvider=$SSH_SK_PROVIDER takes it "
                   "from the environment: is the device attached, is the library OpenSSH's "
                   "FIDO middleware?)")


def classify(spec: ConnectionSpec, hop: Endpoint, stderr: str) -> Exception:
    """The paramiko transport's error class for what ssh printed when it gave up."""
    lines = [ln.strip() for ln in stderr.splitlines()
             if ln.strip() and not ln.startswith(("Warning: Permanently added", "debug"))]
    text = "\n".join(lines)
    last = lines[-1] if lines else "ssh exited without a message"
    where = hop.label
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key for" in text and \
            "has changed" in text:
        offending = re.findall(r"Offending \S+ key in (\S+)", text)
        fp = re.search(r"(SHA256:\S+)", text)
        return HostKeyMismatch(spec.host, f"HOST KEY MISMATCH for {where}: it offered "
                                         f"{fp.group(1) if fp else 'another key'}"
                                         + (f"; expected per {offending[0]}" if offending else "")
                                         + ". This may be an attack or a reinstalled host",
                              "host key")
    if "Host key verification failed" in text:
        said = next((ln for ln in lines if "host key is known" in ln), last)
        checked = spec.host_keys(hop)
        return HostKeyUnknown(spec.host, unknown_message(
            where, said, checked.files, policy=checked.policy, record_file=checked.record,
            lookup=known_hosts_name(hop)), "host key")
    if "Permission denied" in text:
        offered = [*hop.key_files, *hop.cert_files]
        own = "" if hop.identities_only else " and ssh's own identities"
        tried = f" (offered {', '.join(offered)}{own})" if offered else ""
        hint = ""
        if hop.cert_files or any(os.path.exists(k + "-cert.pub") for k in hop.key_files):
            hint = ("; sshd accepts a certificate only when it trusts the signing CA "
                    "(TrustedUserCAKeys), the user is among its principals and it is in its "
                    "validity period")
        hint += kerberos_hint(text) + signing_hint(text)
        return AuthenticationFailed(spec.host, f"{where} refused authentication{tried}: "
                                               f"{last.rstrip('.')}{hint}", "ansible_user")
    if "Could not resolve hostname" in text:
        return Unreachable(spec.host, f"cannot resolve {hop.address}: {last}", "ansible_host")
    if "Unable to negotiate" in text or "no matching" in text:
        return Unreachable(spec.host, f"{where}: no common SSH algorithms: {last}")
    if "open failed" in text or "forwarding failed" in text:
        return Unreachable(spec.host, f"jump host could not reach {where}: {last}", "ProxyJump")
    if "Bad configuration option" in text or "Bad owner or permissions" in text or \
            "Can't open user config file" in text or "terminating, " in text:
        return HostError(spec.host, f"ssh config: {last}", "ssh config")
    proxy_said = [ln for ln in lines if not _SSH_ON_PROXY_EOF.match(ln)]
    if spec.proxy_for(hop) and proxy_said:
        # ssh shows the proxy's stderr before its own last word: the error says both
        said = f"{where}: {last}; ProxyCommand's stderr: " + " | ".join(proxy_said[-5:])
        if RETRIED.search(" ".join(proxy_said)):
            return NetworkError(said)          # a busy or restarting bastion: try again
        return Unreachable(spec.host, said, "ProxyCommand")
    if RETRIED.search(text):
        return NetworkError(f"{where}: {last}")
    return Unreachable(spec.host, f"{where}: {last}")
