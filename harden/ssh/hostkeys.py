"""known_hosts checking as OpenSSH does it, with file and line for every verdict.

paramiko's HostKeys forgets where an entry came from; a user told "host key mismatch" needs the
file and line to fix, and the fingerprints to decide whether to trust the change. So this
module reads known_hosts itself: plain and hashed (`|1|salt|hash`) names, `[host]:port`,
wildcard and negated patterns, `@revoked` lines, and `@cert-authority` lines: a host
certificate signed by such a CA is accepted as ssh accepts it (sshconnect.c check_host_key),
otherwise its plain key is checked like any other. A changed key is never accepted, whatever
the policy; only a host seen for the first time may be recorded.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko

from harden.errors import HostError

_RECORD_LOCK = threading.Lock()
# paramiko names RSA keys 'ssh-rsa' but negotiates them as these signature algorithms.
_ALGORITHMS_FOR_TYPE = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256")}
CERT_SUFFIX = "-cert-v01@openssh.com"
# Asked for first when a CA is known for the host, as ssh does; paramiko reads all of them.
HOST_CERT_ALGORITHMS = tuple(f"{t}{CERT_SUFFIX}" for t in (
    "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "rsa-sha2-512", "rsa-sha2-256"))


class HostKeyMismatch(HostError):
    """The server offered a key different from the one recorded for it: refuse, loudly."""

    kind = "host key mismatch"


class HostKeyUnknown(HostKeyMismatch):
    """No key is recorded for the server and the policy does not allow recording one."""

    kind = "host key unknown"


@dataclass(frozen=True)
class KnownKey:
    path: str
    line: int
    key_type: str
    blob: bytes
    revoked: bool = False
    ca: bool = False              # @cert-authority: signs the hosts' certificates

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint format, so users can compare with `ssh-keygen -lf`."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def known_hosts_name(hop) -> str:
    """How known_hosts names a hop (an Endpoint): its HostKeyAlias, else lookup_name."""
    return hop.host_key_alias or lookup_name(hop.address, hop.port)


def lookup_name(address: str, port: int) -> str:
    """How known_hosts names a server: bare on port 22, `[address]:port` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


def known_keys(host: str, name: str, files: tuple[str, ...]) -> list[KnownKey]:
    """Every entry in `files` whose host patterns match `name`, in file order."""
    found: list[KnownKey] = []
    for path in files:
        for number, line in _read_lines(host, path):
            entry = _parse_line(path, number, line)
            if entry is not None and _patterns_match(entry[0], name):
                found.append(entry[1])
    return found


def preferred_key_types(known: list[KnownKey]) -> list[str]:
    """Host key algorithms to ask for first, so the server offers the key type we know."""
    order: list[str] = []
    if any(key.ca and not key.revoked for key in known):
        order.extend(HOST_CERT_ALGORITHMS)
    for key in known:
        if not key.revoked and not key.ca:
            order.extend(_ALGORITHMS_FOR_TYPE.get(key.key_type, (key.key_type,)))
    return list(dict.fromkeys(order))


def verify_host_key(host: str, name: str, offered: paramiko.PKey, known: list[KnownKey],
                    policy: str, record_file: str | None, certificate=None,
                    principal: str | None = None, files: tuple[str, ...] = ()) -> None:
    """Accept the offered key or raise HostKeyMismatch/HostKeyUnknown with what to fix.

    A host certificate (certs.host_certificate of the offered key) is refused outright when
    ssh refuses it during the key exchange or as revoked: unreadable (a string saying why),
    a CA signature that does not verify, a revoked CA. Otherwise it is accepted when a known
    CA signed it for `principal` (the host name ssh checks: HostKeyAlias, else the address;
    `name` without a port when not given); else, as ssh does, the plain key is checked, and
    the error says why the certificate was not enough. `files`: the known_hosts files read,
    named when the host is unknown; no `record_file` (UserKnownHostsFile none): a new key
    is refused whatever the policy, as ssh 9.2 refuses it."""
    blob, key_type = offered.asbytes(), offered.get_name()
    offered_fp = fingerprint(blob)
    if isinstance(certificate, str):
        raise HostKeyMismatch(host, f"{name} presented a host certificate ssh refuses "
                                    f"outright: {certificate}", "host key")
    for key in known:
        if key.revoked and key.blob == blob:
            raise HostKeyMismatch(host, f"{name} offered a REVOKED host key {offered_fp} "
                                        f"({key.path}:{key.line})", "host key")
    refused = ""
    if certificate is not None:
        _refuse_outright(host, name, certificate, known)
        why = _certificate_refusal(certificate, name, known, principal or _bare(name))
        if why is None:
            return
        refused = f"; its host certificate (id {certificate.key_id!r}) was not accepted: {why}"
    valid = [k for k in known if not k.revoked and not k.ca]
    if any(k.blob == blob for k in valid):
        return
    same_type = [k for k in valid if k.key_type == key_type]
    if same_type or valid:
        expected = (same_type or valid)[0]
        raise HostKeyMismatch(host, _mismatch_message(name, key_type, offered_fp, expected)
                              + refused, "host key")
    if policy == "yes" or record_file is None:
        raise HostKeyUnknown(host, unknown_message(name, f"{key_type} {offered_fp} offered"
                                                   f"{refused}", files, policy, record_file),
                             "host key")
    try:
        record_host_key(record_file, name, offered)
    except OSError as exc:
        raise HostKeyUnknown(host, f"the new host key of {name} ({key_type} {offered_fp}) "
                                   f"cannot be recorded in {record_file}: "
                                   f"{exc.strerror or exc}", "UserKnownHostsFile") from None


def unknown_message(name: str, detail: str, files: tuple[str, ...], policy: str = "yes",
                    record_file: str | None = "", lookup: str | None = None) -> str:
    """Why an unknown host is refused and where ssh looked, so the user sees which files
    (UserKnownHostsFile, GlobalKnownHostsFile) to add the key to or to fix."""
    where = f"in {', '.join(files)}" if files else \
        "(no known_hosts file is read: UserKnownHostsFile and GlobalKnownHostsFile are none)"
    if record_file is None and policy != "yes":
        fix = ("UserKnownHostsFile is none, so a new key cannot be recorded (ssh refuses it "
               "too); add it to a GlobalKnownHostsFile or name a UserKnownHostsFile")
    else:
        fix = "add it to a known_hosts file or run with --accept-new-host-keys"
    return (f"no host key for {name} is known {where} ({detail}); {fix}"
            f"{_skipped(lookup or name, files)}")


def _skipped(name: str, files: tuple[str, ...]) -> str:
    """A hint when ~/.ssh/known_hosts knows the host but was not read: a UserKnownHostsFile
    replaces it (as with ssh), which harden did not do before; the fix is one file away."""
    default = os.path.expanduser("~/.ssh/known_hosts")
    if default in files:
        return ""
    try:
        if not known_keys("", name, (default,)):
            return ""
    except HostError:
        return ""
    return (f". {default} has a key for {name} but is not read: UserKnownHostsFile replaces "
            "it, as with ssh; add it to the UserKnownHostsFile list to use it")


def _refuse_outright(host: str, name: str, cert, known: list[KnownKey]) -> None:
    """What ssh refuses with no fallback to the plain key: a certificate whose CA signature
    does not verify (sshkey.c cert_parse, during the key exchange), or from a revoked CA
    (sshconnect.c: HOST_REVOKED never downgrades)."""
    if not cert.signature_valid():
        raise HostKeyMismatch(host, f"{name} presented a host certificate (id {cert.key_id!r}) "
                                    f"whose signature by CA {cert.ca_fingerprint} does not "
                                    "verify", "host key")
    revoked = next((k for k in known if k.revoked and k.blob == cert.ca), None)
    if revoked is not None:
        raise HostKeyMismatch(host, f"{name} presented a host certificate from a REVOKED CA "
                                    f"{cert.ca_fingerprint} ({revoked.path}:{revoked.line})",
                              "host key")


def _certificate_refusal(cert, name: str, known: list[KnownKey], principal: str) -> str | None:
    """None when ssh would accept `cert` (a certs.Certificate, its signature checked) for
    this host; else why not, in a clause: the plain key is then checked."""
    cas = [k for k in known if k.ca and not k.revoked]
    if not any(k.blob == cert.ca for k in cas):
        trusted = ", ".join(f"{k.fingerprint} ({k.path}:{k.line})" for k in cas)
        return (f"it is signed by CA {cert.ca_fingerprint}, which no @cert-authority line "
                f"for {name} names" + (f"; those trusted are {trusted}" if trusted else ""))
    problems = cert.host_problems(principal)
    return "; ".join(problems) if problems else None


def _bare(name: str) -> str:
    """`[host]:port` -> host: certificates name hosts without a port."""
    return name[1:name.index("]:")] if name.startswith("[") and "]:" in name else name


def _mismatch_message(name: str, key_type: str, offered_fp: str, expected: KnownKey) -> str:
    return (f"HOST KEY MISMATCH for {name}: it offered {key_type} {offered_fp} but "
            f"{expected.path}:{expected.line} expects {expected.key_type} "
            f"{expected.fingerprint}. This may be an attack or a reinstalled host; if the "
            f"change is expected, remove line {expected.line} of {expected.path}")


def record_host_key(path: str, name: str, key: paramiko.PKey) -> None:
    """Append one plain known_hosts line; locked so parallel hosts never interleave lines.
    A missing directory is created private (a %h or %r in its path never holds a `/`)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    line = f"{name} {key.get_name()} {key.get_base64()}\n"
    with _RECORD_LOCK:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _needs_newline(path):
                line = "\n" + line
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def _needs_newline(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:   # empty file, or a device such as /dev/null
        return False


def _read_lines(host: str, path: str) -> list[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [(n, line.strip()) for n, line in enumerate(f, 1)]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise HostError(host, f"cannot read known_hosts file {path}: {exc.strerror}",
                        "UserKnownHostsFile") from None


def _parse_line(path: str, number: int, line: str) -> tuple[str, KnownKey] | None:
    """(host patterns, key) for a usable line; comments, unknown markers and junk give None."""
    if not line or line.startswith("#"):
        return None
    fields = line.split()
    marker = ""
    if fields[0].startswith("@"):
        if fields[0] not in ("@revoked", "@cert-authority"):
            return None
        marker, fields = fields[0], fields[1:]
    if len(fields) < 3:
        return None
    try:
        blob = base64.b64decode(fields[2], validate=True)
    except ValueError:
        return None
    if marker == "@revoked":          # a revoked certificate revokes its key (ssh compares
        blob = _plain_key(fields[1], blob)                    # public keys, not certificates)
    return fields[0], KnownKey(path, number, fields[1], blob, marker == "@revoked",
                               marker == "@cert-authority")


def _plain_key(key_type: str, blob: bytes) -> bytes:
    """The public key a certificate blob carries (the blob itself for a plain key, or for
    what paramiko cannot read)."""
    if not key_type.endswith(CERT_SUFFIX):
        return blob
    import paramiko

    for prefix, cls in (("ssh-ed25519", paramiko.Ed25519Key), ("ecdsa-", paramiko.ECDSAKey),
                        ("ssh-rsa", paramiko.RSAKey)):
        if key_type.startswith(prefix):
            try:
                return cls(msg=paramiko.Message(blob)).asbytes()
            except Exception:      # not a key paramiko reads: kept as written, matching nothing
                return blob
    return blob


def _patterns_match(patterns: str, name: str) -> bool:
    """OpenSSH semantics: any positive match and no negated match."""
    matched = False
    for pattern in patterns.split(","):
        negated = pattern.startswith("!")
        pattern = pattern[1:] if negated else pattern
        if _pattern_matches(pattern, name):
            if negated:
                return False
            matched = True
    return matched


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        return _hashed_matches(pattern, name)
    return _wildcard_regex(pattern).fullmatch(name.lower()) is not None


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    """OpenSSH's match_pattern: only `*` and `?` are special, everything else is literal.

    fnmatch would read `[10.0.0.*]:2222` as a character set and never match the host it
    names, which under accept-new means recording an attacker's key instead of refusing it.
    """
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern.lower()]
    return re.compile("".join(parts), re.DOTALL)


def _hashed_matches(pattern: str, name: str) -> bool:
    try:
        _, _, salt64, hash64 = pattern.split("|")
        salt, expected = base64.b64decode(salt64), base64.b64decode(hash64)
    except ValueError:
        return False
    actual = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return hmac.compare_digest(actual, expected)
