"""Reaching nodes: connection settings, the SSH transport, host keys, bounded parallelism and ping."""
