"""FIDO security keys without an authenticator: the project's own test provider
(tests/fixtures/sk_provider/sk_provider.c) compiled into a temporary directory, and keys
enrolled through it with the system ssh-keygen.

OpenSSH loads a provider (SecurityKeyProvider, SSH_SK_PROVIDER, `ssh-keygen -w`) in its
ssh-sk-helper, so the path must be absolute and the library built for this machine: it is
compiled per test session (about 0.2 s) rather than shipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "sk_provider" / "sk_provider.c"
HELPER = Path("/usr/lib/openssh/ssh-sk-helper")
# what the build and enrolment need, and the Debian package that has it (`make syspkgs`)
NEEDS = {"cc": "gcc", "ssh-keygen": "openssh-client"}
HEADERS = {"/usr/include/openssl/evp.h": "libssl-dev", "/usr/include/stdlib.h": "libc6-dev"}


class Unavailable(Exception):
    """The provider cannot be built or used here; the message says what to install."""


def missing_packages() -> list[str]:
    """Debian packages to install before a provider can be built and used, [] when none."""
    missing = {pkg for tool, pkg in NEEDS.items() if not shutil.which(tool)}
    missing |= {pkg for path, pkg in HEADERS.items() if not os.path.exists(path)}
    if not HELPER.exists():
        missing.add("openssh-client")
    return sorted(missing)


def build_provider(directory: Path) -> Path:
    """sk_provider.so compiled into `directory`; Unavailable naming the cause otherwise."""
    missing = missing_packages()
    if missing:
        raise Unavailable(f"the FIDO provider needs {', '.join(missing)}: run `make syspkgs` or "
                          f"`apt-get install -y {' '.join(missing)}`")
    out = directory / "sk_provider.so"
    argv = ["cc", "-shared", "-fPIC", "-O1", "-o", str(out), str(SOURCE),
            "-lcrypto"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(argv)} failed (rc {done.returncode}): {done.stderr}")
    return out


def enroll(provider: Path, key: Path, comment: str = "harden-fido-test") -> Path:
    """A new ed25519-sk key at `key` (no passphrase), made through `provider` as a user with a
    security key would make it; its public key file is returned."""
    argv = ["ssh-keygen", "-q", "-t", "ed25519-sk", "-w", str(provider), "-f", str(key),
            "-N", "", "-C", comment]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} -> rc {done.returncode}: {done.stderr}")
    return key.with_name(key.name + ".pub")


def fingerprint(pub: Path) -> str:
    """The SHA256 fingerprint sshd logs for the key ("SHA256:...")."""
    done = subprocess.run(["ssh-keygen", "-l", "-f", str(pub)], capture_output=True, text=True,
                          timeout=30, check=True)
    return done.stdout.split()[1]
