"""Emulated Kubernetes components run as static-pod containers by the lab kubelet.

Never imported by the engine: these exist only so the lab behaves like a kubeadm node.
"""
