"""harden: apply and verify Kubernetes node hardening over SSH."""

__version__ = "0.1.0"
