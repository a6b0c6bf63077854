"""The floor for a Python controller: per host, one paramiko connection and one `true`.

Nothing of harden is imported: this is what any paramiko-based tool must pay at least (interpreter
start, paramiko import, key exchange, public-key auth, one exec channel), with the same thread
pool size harden uses, so the gap between this and `harden check` is harden's own cost.

usage: floor_paramiko.py KEY KNOWN_HOSTS FORKS ADDRESS...   (exit 1 if any host failed)
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import paramiko


def one_exec(address: str, key: paramiko.PKey, known_hosts: str) -> int:
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(address, username="root", pkey=key, look_for_keys=False, allow_agent=False,
                       timeout=30)
        _, stdout, _ = client.exec_command("true")
        return stdout.channel.recv_exit_status()
    finally:
        client.close()


def main(argv: list[str]) -> int:
    key_path, known_hosts, forks, *addresses = argv
    key = paramiko.Ed25519Key.from_private_key_file(key_path)
    with ThreadPoolExecutor(max_workers=max(1, min(int(forks), len(addresses)))) as pool:
        codes = list(pool.map(lambda a: one_exec(a, key, known_hosts), addresses))
    return 0 if all(code == 0 for code in codes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
