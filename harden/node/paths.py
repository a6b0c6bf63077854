"""Node paths, defined once (kube-bench keeps them in cfg/config.yaml; harden keeps them here).

The apply side writes these files, the CIS side judges them and rollback restores them, so a
second definition could only drift from the first.
"""

MANIFEST_DIR = "/etc/kubernetes/manifests"
DEFAULT_KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBEADM_FLAGS_ENV = "/var/lib/kubelet/kubeadm-flags.env"
# Where distributions put KUBELET_EXTRA_ARGS (Debian family, then the Red Hat family).
KUBELET_EXTRA_ARGS_ENVS = ("/etc/default/kubelet", "/etc/sysconfig/kubelet")
KUBELET_ENV_FILES = (KUBEADM_FLAGS_ENV, *KUBELET_EXTRA_ARGS_ENVS)
KUBELET_FILES = (DEFAULT_KUBELET_CONFIG, *KUBELET_ENV_FILES)
KUBELET_UNITS = ("/etc/systemd/system/kubelet.service", "/usr/lib/systemd/system/kubelet.service",
                 "/lib/systemd/system/kubelet.service")
# In systemd's precedence order: for equal drop-in names the later directory wins.
KUBELET_DROPIN_DIRS = ("/usr/lib/systemd/system/kubelet.service.d",
                       "/lib/systemd/system/kubelet.service.d",
                       "/etc/systemd/system/kubelet.service.d")
PROXY_KUBECONFIGS = ("/etc/kubernetes/proxy.conf", "/etc/kubernetes/kube-proxy.conf",
                     "/var/lib/kube-proxy/kubeconfig.conf")

# harden's own state on a node: backups (0700, outside the manifests dir) and run records.
BACKUP_ROOT = "/var/lib/harden/backups"
JOURNAL_ROOT = "/var/lib/harden/journal"
# One writer per node (harden.runs.lock): a symlink naming the run that holds it. Beside the
# backup root, so a test that moves the backups moves the lock with them.
LOCK_NAME = "lock"
LOCK_PATH = "/var/lib/harden/" + LOCK_NAME


def lock_path(backup_root: str = BACKUP_ROOT) -> str:
    """The node lock that goes with a backup root (/var/lib/harden/lock by default)."""
    parent = backup_root.rstrip("/").rsplit("/", 1)[0]
    return f"{parent or ''}/{LOCK_NAME}"
