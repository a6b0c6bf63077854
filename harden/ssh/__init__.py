"""Reaching nodes: connection settings and the ssh config, the paramiko and OpenSSH transports,
host keys, bounded parallelism and ping."""
