"""OpenSSH user certificates for the paramiko transport: which certificate goes with which key,
and what a certificate says (key id, principals, validity, signing CA).

paramiko can log in with a certificate once it is attached to the key (`load_certificate`),
but it checks only the key *type*; ssh pairs a CertificateFile with the identity whose public
key the certificate carries. And when a server refuses a certificate it says nothing why, so
the error names what can be checked here: the CA's fingerprint, the principals, the validity.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass

from harden.ssh.deferred_invoke import defer_invoke

defer_invoke()          # before paramiko, whose config module would import invoke at once
import paramiko  # noqa: E402

from harden.ssh.hostkeys import CERT_SUFFIX, fingerprint

_FOREVER = 2 ** 64 - 1


USER, HOST = 1, 2                     # the certificate types of PROTOCOL.certkeys


@dataclass(frozen=True)
class Certificate:
    path: str
    blob: paramiko.PublicBlob
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    ca_fingerprint: str
    cert_type: int = USER
    critical_options: bytes = b""
    ca: bytes = b""                   # the signing CA's public key blob
    signed: bytes = b""               # what the CA's signature covers
    signature: bytes = b""

    def problems(self, user: str, now: float | None = None) -> list[str]:
        """What makes sshd refuse this certificate for `user`, as far as can be seen here."""
        found = self._validity(now)
        if self.principals and user not in self.principals:
            found.append(f"principals {','.join(self.principals)} do not include {user}")
        return found

    def host_problems(self, host: str, now: float | None = None) -> list[str]:
        """What makes ssh refuse this as the host certificate of `host` (sshconnect.c
        check_host_cert): a user certificate, outside its validity, `host` not among its
        principals (none listed: any host), critical options (none are defined for hosts)."""
        found = [] if self.cert_type == HOST else ["it is a user certificate, not a host one"]
        found += self._validity(now)
        if self.principals and host not in self.principals:
            found.append(f"principals {','.join(self.principals)} do not include {host}")
        if self.critical_options:
            found.append("it has critical options, which ssh refuses in a host certificate")
        return found

    def signature_valid(self) -> bool:
        """Whether the CA's signature covers this certificate (paramiko does not check it)."""
        try:
            ca_key = paramiko.PKey.from_type_string(paramiko.Message(self.ca).get_text(),
                                                    self.ca)
            return bool(ca_key.verify_ssh_sig(self.signed, paramiko.Message(self.signature)))
        except Exception:        # any key type or signature paramiko cannot read: not valid
            return False

    def _validity(self, now: float | None) -> list[str]:
        now = time.time() if now is None else now
        found = []
        if now < self.valid_after:
            found.append(f"not valid before {_when(self.valid_after)}")
        if self.valid_before != _FOREVER and now >= self.valid_before:
            found.append(f"expired {_when(self.valid_before)}")
        return found

    def describe(self, user: str) -> str:
        problems = self.problems(user)
        detail = f"id {self.key_id!r}, CA {self.ca_fingerprint}"
        return f"certificate {self.path} ({detail}{'; ' + '; '.join(problems) if problems else ''})"


def _when(seconds: int) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))
    except (OverflowError, OSError, ValueError):      # past what the platform's time_t holds
        return f"{seconds} s after 1970"


UNREADABLE = "it is not a certificate harden can read"
_MALFORMED = (ValueError, IndexError, struct.error, paramiko.SSHException)


def read_for_key(path: str, key: paramiko.PKey) -> Certificate | None:
    """The certificate in `path` if it certifies `key`'s public key, else None (also for a
    file that is no readable certificate: ssh skips it too)."""
    try:
        return parse(path, paramiko.PublicBlob.from_file(path), key)
    except (OSError, *_MALFORMED):
        return None


def host_certificate(offered: paramiko.PKey, negotiated: str | None = None
                     ) -> Certificate | str | None:
    """The certificate a server presented with its host key (paramiko keeps it as the key's
    public blob); None for a plain key; a string saying why for what ssh refuses during the
    key exchange: bytes that do not parse, which the server chose (a key id that is no UTF-8,
    a short blob), or a certificate under a plain `negotiated` host key algorithm or the
    reverse (paramiko's key classes load either). Never an exception."""
    blob = getattr(offered, "public_blob", None)
    is_cert = blob is not None and blob.key_type.endswith(CERT_SUFFIX)
    if negotiated is not None and negotiated.endswith(CERT_SUFFIX) != is_cert:
        return (f"the key exchange named {negotiated} but the server sent "
                f"{blob.key_type if is_cert else 'a plain key'}")
    if not is_cert:
        return None
    try:
        return parse("host certificate", blob, offered) or UNREADABLE
    except _MALFORMED:
        return UNREADABLE


def parse(path: str, blob: paramiko.PublicBlob, key: paramiko.PKey) -> Certificate | None:
    """Read the certificate's fields (PROTOCOL.certkeys) after checking it carries `key`."""
    if not blob.key_type.endswith(CERT_SUFFIX):
        return None
    own = paramiko.Message(key.asbytes())
    own.get_text()                                   # the key type
    fields = own.get_remainder()                     # the public key's own fields
    msg = paramiko.Message(blob.key_blob)
    msg.get_text()
    msg.get_string()                                 # nonce
    rest = msg.get_remainder()
    if not rest.startswith(fields):
        return None
    msg = paramiko.Message(rest[len(fields):])
    msg.get_int64()                                  # serial
    cert_type = msg.get_int()
    key_id = msg.get_text()
    principals_msg = paramiko.Message(msg.get_string())
    principals = []
    while principals_msg.get_remainder():
        principals.append(principals_msg.get_text())
    valid_after, valid_before = msg.get_int64(), msg.get_int64()
    critical = msg.get_string()
    msg.get_string()                                 # extensions
    msg.get_string()                                 # reserved
    ca = msg.get_string()
    tail = paramiko.Message(msg.get_remainder())     # the signature: the blob's last field
    signed = blob.key_blob[:len(blob.key_blob) - len(tail.asbytes())]
    signature = tail.get_string()
    if tail.get_remainder() or len(tail.asbytes()) != 4 + len(signature):
        signature = b""          # trailing bytes, or a length past the end: ssh refuses it
    return Certificate(path, blob, key_id, tuple(principals), valid_after, valid_before,
                       fingerprint(ca), cert_type, critical, ca, signed, signature)
