"""What a private key file is, when the paramiko transport cannot load it: its type, read from
the file itself, and whether the OpenSSH transport could log in with it.

paramiko signs with RSA, ECDSA and Ed25519 keys it holds in memory. A FIDO security key
(`sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@openssh.com`) keeps its private half on
the authenticator: the file holds only a handle, and signing means asking the device through
OpenSSH's security-key provider, which paramiko has no way to do. The system ssh does it, so
such a key means "use the OpenSSH transport", not "internal error". Other keys paramiko cannot
load (DSA, Ed448, a PuTTY file, a cipher cryptography lacks) are named the same way.

An OpenSSH private key names its type in the unencrypted public part at its start (even when
the private part is passphrase-protected), so the type is known without decrypting anything.
That public key (else the one in `<file>.pub`) is also what finds ssh-agent's copy of a key
paramiko cannot use itself, as ssh finds it. Imports no paramiko: `describe` takes the
exception paramiko raised.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass, field

FIDO_TYPES = ("sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
DSA = "ssh-dss"
_OPENSSH_PEM = re.compile(
    rb"-----BEGIN OPENSSH PRIVATE KEY-----(.*?)-----END OPENSSH PRIVATE KEY-----", re.S)
_PEM = re.compile(rb"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----")
_PUTTY = re.compile(rb"PuTTY-User-Key-File-\d+: *([\x21-\x7e]+)")
_MAGIC = b"openssh-key-v1\0"
UNKNOWN_FORMAT = "unknown format"
_READ_LIMIT = 1 << 20            # a private key is a few KiB; never read a huge file whole


@dataclass(frozen=True)
class UnusableKey:
    """A key file the paramiko transport cannot use because of its type or format."""

    path: str
    key_type: str                # "sk-ssh-ed25519@openssh.com", "ssh-dss", "PuTTY ...", ...
    reason: str = ""             # what the loader said, when the type alone does not explain it
    public_blob: bytes | None = field(default=None, compare=False)   # an OpenSSH key's public key

    @property
    def fido(self) -> bool:
        return self.key_type in FIDO_TYPES

    @property
    def openssh_can(self) -> bool:
        """Whether the system ssh could log in with this file: an OpenSSH or PEM key of a type
        ssh knows. Not DSA: OpenSSH 9.2 refuses it unless told otherwise, 10.0 dropped it."""
        if self.key_type == DSA:
            return False
        return self.fido or self.key_type.startswith(("ssh-", "ecdsa-", "rsa-"))

    def describe(self) -> str:
        """One sentence naming the file and its type (a sentence of a longer message)."""
        if self.fido:
            return (f"Key {self.path} is a FIDO security key ({self.key_type}): its private "
                    "half stays on the authenticator, which the paramiko transport cannot ask "
                    "to sign")
        if self.key_type == DSA:
            return (f"Key {self.path} is a DSA key (ssh-dss), which is obsolete: paramiko "
                    "cannot load it, OpenSSH refuses it by default since 9.2 and dropped it "
                    "in 10.0; make a new key (ssh-keygen -t ed25519) and authorize it on the node")
        said = f" ({self.reason})" if self.reason else ""
        if self.key_type == UNKNOWN_FORMAT:
            return f"Key {self.path} is in no format paramiko reads{said}"
        return f"Key {self.path} is of type {self.key_type}, which paramiko cannot load{said}"


def is_type_problem(exc: BaseException) -> bool:
    """Whether a loader's exception means "a key type or format paramiko lacks" (as opposed to
    a missing, unreadable or damaged file, or a wrong passphrase)."""
    from cryptography.exceptions import UnsupportedAlgorithm

    return isinstance(exc, UnsupportedAlgorithm) or type(exc).__name__ == "UnknownKeyType"


def is_passphrase_problem(exc: BaseException) -> bool:
    """Whether a loader's exception means "this key is passphrase-protected". paramiko 5
    passes cryptography's TypeError on (never its own PasswordRequiredException): "Key is
    password-protected, but password was not provided." for an OpenSSH key, "Password was not
    given but private key is encrypted" for a PEM one (PKCS#8 or traditional)."""
    return isinstance(exc, TypeError) and "password" in str(exc).lower()


def public_key_of(path: str) -> bytes | None:
    """The public key (SSH wire format) belonging to key file `path`, without decrypting it:
    the public part of an OpenSSH private key, the file itself when it is a public key (an
    IdentityFile naming a `.pub`, as for a resident FIDO key loaded with `ssh-add -K`), else
    `<path>.pub`. What ssh uses to find the agent's copy of an identity. None when none says."""
    data = _head(path)
    blob = public_key_blob(data) or public_line_blob(data)
    if blob is None and not path.endswith(".pub"):
        blob = public_line_blob(_head(path + ".pub"))
    return blob


def is_public_key_file(path: str) -> bool:
    """Whether `path` holds a public key line rather than a private key."""
    return public_line_blob(_head(path)) is not None


def public_line_blob(data: bytes | None) -> bytes | None:
    """The key of a public key file's "TYPE BASE64 [comment]" line, when the base64 names TYPE."""
    fields = (data or b"").strip().split(None, 2)
    if len(fields) < 2:
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return blob if _first_string(blob) == fields[0].decode("ascii", "replace") else None


def describe(path: str, exc: BaseException) -> UnusableKey | None:
    """The unusable key behind `exc` raised while loading `path`, or None when `exc` is about
    something else (a damaged OpenSSH or PEM key is not a type problem)."""
    data = _head(path)
    key_type = file_key_type(data)
    if is_type_problem(exc):
        if key_type is None:
            key_type = _class_type(exc) or "unknown"
        reason = "" if key_type in FIDO_TYPES else _reason(exc)
        return UnusableKey(path, key_type, reason, public_key_blob(data))
    if isinstance(exc, ValueError) and key_type is not None and key_type.startswith("PuTTY"):
        return UnusableKey(path, key_type, "convert it: puttygen KEY -O private-openssh")
    if isinstance(exc, ValueError) and data is not None and not _looks_like_key(data):
        return UnusableKey(path, UNKNOWN_FORMAT, "neither an OpenSSH nor a PEM private key")
    return None


def file_key_type(data: bytes | None) -> str | None:
    """The key type a private key file names: the OpenSSH format's public part, a PuTTY
    file's header; None when the file does not say."""
    if not data:
        return None
    blob = public_key_blob(data)
    if blob is not None:
        return _first_string(blob)
    putty = _PUTTY.match(data.lstrip())
    if putty:
        return f"PuTTY {putty.group(1).decode()}"
    return None


def public_key_blob(data: bytes | None) -> bytes | None:
    """The public key (SSH wire format) at the start of an OpenSSH private key file: magic,
    cipher, kdf, kdf options, key count, then the first public key. None for other files."""
    found = _OPENSSH_PEM.search(data or b"")
    if not found:
        return None
    try:
        blob = base64.b64decode(b"".join(found.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not blob.startswith(_MAGIC):
        return None
    try:
        offset = len(_MAGIC)
        for _ in range(3):                                  # cipher, kdf, kdf options
            offset = _skip_string(blob, offset)
        offset += 4                                         # number of keys
        end = _skip_string(blob, offset)
        return blob[offset + 4:end]
    except struct.error:
        return None


def _first_string(blob: bytes) -> str | None:
    """A public key's type: the first string of its wire format."""
    try:
        end = _skip_string(blob, 0)
        name = blob[4:end]
        return name.decode("ascii") if name and name.isascii() else None
    except (struct.error, UnicodeDecodeError):
        return None


def _skip_string(blob: bytes, offset: int) -> int:
    (length,) = struct.unpack_from(">I", blob, offset)
    if offset + 4 + length > len(blob):
        raise struct.error("string past the end")
    return offset + 4 + length


def _class_type(exc: BaseException) -> str | None:
    """paramiko's UnknownKeyType carries cryptography's key class (DSAPrivateKey, ...)."""
    cls = getattr(exc, "key_type", None)
    name = getattr(cls, "__name__", None)
    if not name:
        return None
    return {"DSAPrivateKey": DSA}.get(name, name.removesuffix("PrivateKey"))


def _reason(exc: BaseException) -> str:
    if type(exc).__name__ == "UnknownKeyType":
        return "paramiko has no class for it"
    return str(exc)


def _looks_like_key(data: bytes) -> bool:
    return bool(_OPENSSH_PEM.search(data) or _PEM.search(data))


def _head(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(_READ_LIMIT)
    except OSError:
        return None
