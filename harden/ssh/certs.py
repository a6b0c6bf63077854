"""OpenSSH user certificates for the paramiko transport: which certificate goes with which key,
and what a certificate says (key id, principals, validity, signing CA).

paramiko can log in with a certificate once it is attached to the key (`load_certificate`),
but it checks only the key *type*; ssh pairs a CertificateFile with the identity whose public
key the certificate carries. And when a server refuses a certificate it says nothing why, so
the error names what can be checked here: the CA's fingerprint, the principals, the validity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from harden.ssh.deferred_invoke import defer_invoke

defer_invoke()          # before paramiko, whose config module would import invoke at once
import paramiko  # noqa: E402

from harden.ssh.hostkeys import fingerprint

_FOREVER = 2 ** 64 - 1


@dataclass(frozen=True)
class Certificate:
    path: str
    blob: paramiko.PublicBlob
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    ca_fingerprint: str

    def problems(self, user: str, now: float | None = None) -> list[str]:
        """What makes sshd refuse this certificate for `user`, as far as can be seen here."""
        now = time.time() if now is None else now
        found = []
        if now < self.valid_after:
            found.append(f"not valid before {_when(self.valid_after)}")
        if self.valid_before != _FOREVER and now >= self.valid_before:
            found.append(f"expired {_when(self.valid_before)}")
        if self.principals and user not in self.principals:
            found.append(f"principals {','.join(self.principals)} do not include {user}")
        return found

    def describe(self, user: str) -> str:
        problems = self.problems(user)
        detail = f"id {self.key_id!r}, CA {self.ca_fingerprint}"
        return f"certificate {self.path} ({detail}{'; ' + '; '.join(problems) if problems else ''})"


def _when(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def read_for_key(path: str, key: paramiko.PKey) -> Certificate | None:
    """The certificate in `path` if it certifies `key`'s public key, else None."""
    try:
        blob = paramiko.PublicBlob.from_file(path)
    except (OSError, ValueError):
        return None
    return parse(path, blob, key)


def parse(path: str, blob: paramiko.PublicBlob, key: paramiko.PKey) -> Certificate | None:
    """Read the certificate's fields (PROTOCOL.certkeys) after checking it carries `key`."""
    if not blob.key_type.endswith("-cert-v01@openssh.com"):
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
    msg.get_int()                                    # type (1 user, 2 host)
    key_id = msg.get_text()
    principals_msg = paramiko.Message(msg.get_string())
    principals = []
    while principals_msg.get_remainder():
        principals.append(principals_msg.get_text())
    valid_after, valid_before = msg.get_int64(), msg.get_int64()
    msg.get_string()                                 # critical options
    msg.get_string()                                 # extensions
    msg.get_string()                                 # reserved
    ca = msg.get_string()
    return Certificate(path, blob, key_id, tuple(principals), valid_after, valid_before,
                       fingerprint(ca))
