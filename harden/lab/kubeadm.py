"""The lab's `kubeadm`: what `kubeadm upgrade apply|node` does to a node's files.

Installed on every lab node as /usr/local/sbin/kubeadm (like the systemctl shim). It reads the
ClusterConfiguration from kube-system/kubeadm-config and the KubeletConfiguration from
kube-system/kubelet-config through the API server (kubectl with admin.conf, kubelet.conf on a
worker), regenerates the control-plane manifests with the lab's own generator
(harden/lab/layout.py, the one `lab up` used), and does what kubeadm does with them:

* a manifest whose pod is unchanged is skipped ("Current and new manifests ... are equal");
* otherwise the old one is backed up under
  /etc/kubernetes/tmp/kubeadm-backup-manifests-<YYYY-MM-DD-HH-MM-SS>/, the new one written to
  .../kubeadm-upgraded-manifests-<stamp>/ and renamed into /etc/kubernetes/manifests, and the
  kubelet must replace the pod (new UID) and report it ready within the timeout; on failure every
  manifest changed so far is restored and the command fails, as kubeadm rolls back;
* /var/lib/kubelet/config.yaml is rewritten from the ConfigMap (old one backed up under
  /etc/kubernetes/tmp/kubeadm-kubelet-config-<stamp>/); restarting the kubelet is the user's step.

It refuses what kubeadm refuses (harden.lab.kubeadm_config): wrong extraArgs shape, unknown
apiVersion/kind, malformed YAML. Per-node facts (name, address, ports, etcd members) come from
the node file `lab up` wrote, as kubeadm takes them from the node, not from ClusterConfiguration.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from harden.lab import kubeadm_config, layout, patches
from harden.lab.kubeadm_config import KubeadmConfigError

MANIFESTS = layout.MANIFESTS
TMP = "/etc/kubernetes/tmp"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"
KUBELET_STATE = "/var/lib/kubelet/harden-lab-pods.json"   # written by harden.lab.kubelet
TIMEOUT_ENV = "HARDEN_LAB_KUBEADM_TIMEOUT"
DEFAULT_TIMEOUT = 120.0
PHASES = ("control-plane", "kubelet-config")
USAGE = """Usage:
  kubeadm upgrade apply [version] [flags]
  kubeadm upgrade node [flags]
  kubeadm upgrade node phase control-plane|kubelet-config [flags]
  kubeadm upgrade diff [version]
  kubeadm version

Flags:
      --patches string   Path to a directory that contains files named "target[suffix][+patchtype].extension".
  -y, --yes              Perform the upgrade and do not prompt for confirmation (non-interactive mode).
"""


class KubeadmError(Exception):
    """A failure kubeadm would print as `error execution phase ...` / FATAL, exit code 1."""


@dataclass
class Options:
    command: str                 # "apply" | "node" | "version"
    version: str = ""
    yes: bool = False
    patches_dir: str = ""
    phase: str = ""              # `upgrade node phase control-plane|kubelet-config`


# --- command line -----------------------------------------------------------------------------

def parse_args(argv: list[str]) -> Options:
    if argv[:1] == ["version"]:
        return Options("version")
    if len(argv) < 2 or argv[0] != "upgrade" or argv[1] not in ("apply", "node", "diff"):
        raise KubeadmError(f'unknown command "{" ".join(argv[:2])}" for "kubeadm"\n{USAGE}'
                           if argv else USAGE)
    opts = Options(argv[1])
    rest = argv[2:]
    if opts.command == "node" and rest[:1] == ["phase"]:
        if len(rest) < 2 or rest[1] not in PHASES:
            raise KubeadmError(f'unknown phase "{" ".join(rest[1:2])}"; the lab emulates '
                               f'{" and ".join(PHASES)}\n{USAGE}')
        opts.phase, rest = rest[1], rest[2:]
    while rest:
        arg = rest.pop(0)
        if arg in ("-y", "--yes", "-f", "--force"):
            opts.yes = True
        elif arg == "--patches" or arg.startswith("--patches="):
            value = arg.partition("=")[2] if "=" in arg else (rest.pop(0) if rest else "")
            if not value:
                raise KubeadmError("flag needs an argument: --patches")
            opts.patches_dir = value
        elif arg.startswith("-"):
            raise KubeadmError(f"unknown flag: {arg}\n{USAGE}")
        elif opts.command in ("apply", "diff") and not opts.version:
            opts.version = arg
        else:
            raise KubeadmError(f'unexpected argument "{arg}"\n{USAGE}')
    return opts


# --- reading the cluster ----------------------------------------------------------------------

def _kubectl(kubeconfig: str, name: str) -> dict:
    if not os.path.exists(kubeconfig):
        raise KubeadmError(f'couldn\'t create a Kubernetes client from file "{kubeconfig}": '
                           f"failed to load admin kubeconfig: open {kubeconfig}: no such file "
                           "or directory")
    kubectl = shutil.which("kubectl") or "kubectl"
    try:
        result = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "-n", "kube-system", "get",
                                 "configmap", name, "-o", "json"], capture_output=True,
                                text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise KubeadmError(f"failed to get config map: {err}") from None
    if result.returncode != 0:
        raise KubeadmError(f"failed to get config map: {result.stderr.strip()}")
    return json.loads(result.stdout)


def read_configmap(kubeconfig: str, name: str, key: str) -> tuple[str, dict]:
    """The ConfigMap's `key` and the whole object (its resourceVersion guards a write back)."""
    configmap = _kubectl(kubeconfig, name)
    data = configmap.get("data") or {}
    if key not in data:
        raise KubeadmError(f"unexpected error when reading {name} ConfigMap: {key} key value "
                           "pair missing")
    return data[key], configmap


def upload_version(kubeconfig: str, configmap: dict, version: str, out) -> None:
    """`upgrade apply vX.Y.Z` stores the version it upgraded to (kubeadm's upload-config), so
    that `upgrade node` on the other nodes follows. Only the kubernetesVersion line changes
    (kubeadm re-marshals the whole document; the lab keeps the user's text)."""
    text = configmap["data"]["ClusterConfiguration"]
    line = f"kubernetesVersion: {version}"
    new, count = re.subn(r"(?m)^kubernetesVersion:.*$", line, text)
    if not count:
        new = text.rstrip("\n") + f"\n{line}\n"
    if new == text:
        return
    configmap["data"]["ClusterConfiguration"] = new
    kubectl = shutil.which("kubectl") or "kubectl"
    result = subprocess.run([kubectl, "--kubeconfig", kubeconfig, "replace", "-f", "-"],
                            input=json.dumps(configmap), capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise KubeadmError(f"error uploading the kubeadm ClusterConfiguration: "
                           f"{result.stderr.strip()}")
    out('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the '
        '"kube-system" Namespace')


def node_spec(path: str) -> layout.NodeSpec:
    raw = json.loads(Path(path).read_text())
    raw["etcd_members"] = tuple(tuple(m) for m in raw.get("etcd_members", ()))
    return layout.NodeSpec(**raw)


# --- static pods ------------------------------------------------------------------------------

def _pod_state(component: str) -> dict:
    try:
        return json.loads(Path(KUBELET_STATE).read_text()).get("pods", {}).get(component, {})
    except (OSError, ValueError):
        return {}


def _same_pod(old: bytes, new: bytes) -> bool:
    """kubeadm compares the decoded pods, not the bytes."""
    try:
        return yaml.safe_load(old) == yaml.safe_load(new)
    except yaml.YAMLError:
        return False


def _argv(content: bytes) -> list[str]:
    container = yaml.safe_load(content)["spec"]["containers"][0]
    return list(container.get("command") or []) + list(container.get("args") or [])


def wait_for_component(component: str, node: str, old_uid: str | None, argv: list[str],
                       timeout: float) -> None:
    """The kubelet replaced the pod (a new UID) with one running the new command line and
    reports it ready, as kubeadm waits for the static pod hash to change and the component to
    be healthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = _pod_state(component)
        if pod.get("uid") not in (None, old_uid) and pod.get("argv") == argv \
                and pod.get("ready"):
            return
        time.sleep(0.2)
    raise KubeadmError(f"static Pod hash for component {component} on Node {node} did not "
                       f"change after {timeout:.0f}s: timed out waiting for the condition")


def _write_file(path: str, content: bytes, mode: int) -> None:
    with open(path, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(path, mode)


def upgrade_static_pods(node: layout.NodeSpec, wanted: dict[str, bytes], timeout: float,
                        out) -> None:
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    backup = f"{TMP}/kubeadm-backup-manifests-{stamp}"
    upgraded = f"{TMP}/kubeadm-upgraded-manifests-{stamp}"
    for path in (backup, upgraded):
        os.makedirs(path, mode=0o700, exist_ok=True)
    out(f'[upgrade/staticpods] Writing new Static Pod manifests to "{upgraded}"')
    changed: list[str] = []
    try:
        for component, content in wanted.items():
            _upgrade_one(node, component, content, backup, upgraded, changed, timeout, out)
    except KubeadmError as err:
        _restore(changed, backup)
        raise KubeadmError("couldn't upgrade control plane. kubeadm has tried to recover "
                           f"everything into the earlier state. Errors faced: {err}") from None
    finally:
        shutil.rmtree(upgraded, ignore_errors=True)


def _restore(changed: list[str], backup: str) -> None:
    """kubeadm's rollbackOldManifests: the backed-up manifests go back; a manifest that did not
    exist before goes away."""
    for component in changed:
        saved, current = f"{backup}/{component}.yaml", f"{MANIFESTS}/{component}.yaml"
        if os.path.exists(saved):
            os.replace(saved, current)
        elif os.path.exists(current):
            os.remove(current)


def _upgrade_one(node, component, content, backup, upgraded, changed, timeout, out) -> None:
    current = f"{MANIFESTS}/{component}.yaml"
    out(f'[upgrade/staticpods] Preparing for "{component}" upgrade')
    old = Path(current).read_bytes() if os.path.exists(current) else None
    if old is not None and _same_pod(old, content):
        out(f"[upgrade/staticpods] Current and new manifests of {component} are equal, "
            "skipping upgrade")
        return
    old_uid = _pod_state(component).get("uid")
    staged = f"{upgraded}/{component}.yaml"
    _write_file(staged, content, 0o600)
    if old is not None:
        shutil.copy2(current, f"{backup}/{component}.yaml")
    changed.append(component)
    os.replace(staged, current)
    out(f'[upgrade/staticpods] Moved new manifest to "{current}" and backed up old manifest '
        f'to "{backup}/{component}.yaml"')
    out("[upgrade/staticpods] Waiting for the kubelet to restart the component")
    wait_for_component(component, node.name, old_uid, _argv(content), timeout)
    out(f'[upgrade/staticpods] Component "{component}" upgraded successfully!')


# --- kubelet ----------------------------------------------------------------------------------

def write_kubelet_config(content: bytes, out) -> None:
    """Rewrite config.yaml from the ConfigMap, keeping the file's mode and owner (kubeadm writes
    into the existing file) and backing up the old one first."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S")
    if os.path.exists(KUBELET_CONFIG):
        backup = f"{TMP}/kubeadm-kubelet-config-{stamp}"
        os.makedirs(backup, mode=0o700, exist_ok=True)
        shutil.copy2(KUBELET_CONFIG, f"{backup}/config.yaml")
        out(f'[upgrade] Backing up kubelet config file to {backup}/config.yaml')
        st = os.stat(KUBELET_CONFIG)
        mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    else:
        mode, uid, gid = 0o644, 0, 0
    tmp = f"{os.path.dirname(KUBELET_CONFIG)}/.config.yaml.kubeadm-tmp"
    _write_file(tmp, content, mode)
    os.chown(tmp, uid, gid)
    os.replace(tmp, KUBELET_CONFIG)
    out(f'[kubelet-start] Writing kubelet configuration to file "{KUBELET_CONFIG}"')


# --- the commands -----------------------------------------------------------------------------

def _timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


def _cluster_config(kubeconfig: str, version: str) -> tuple[kubeadm_config.ClusterConfig, dict]:
    text, configmap = read_configmap(kubeconfig, "kubeadm-config", "ClusterConfiguration")
    config = kubeadm_config.parse(text, "kube-system/kubeadm-config ClusterConfiguration")
    if version:
        if not kubeadm_config.is_version(version):
            raise KubeadmError(f'[upgrade/version] FATAL: the version argument is invalid due '
                               f'to these errors:\n\n\t- Specified version to upgrade to '
                               f'"{version}" is not a valid version')
        config = kubeadm_config.with_version(config, version)
    return config, configmap


def _kubelet_content(kubeconfig: str, node: layout.NodeSpec, patches_dir: str) -> bytes:
    text, _ = read_configmap(kubeconfig, "kubelet-config", "kubelet")
    doc = kubeadm_config.kubelet_configuration(text, "kube-system/kubelet-config kubelet")
    content = layout.kubelet_node_config(doc, node)
    return patches.apply(patches_dir, "kubeletconfiguration", content) if patches_dir else content


def _confirm(opts: Options) -> None:
    if opts.yes:
        return
    sys.stdout.write("[upgrade] Are you sure you want to proceed? [y/N]: ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise KubeadmError("won't proceed; the user didn't answer (Y|y) in order to continue")


def _upgrade_control_plane(opts: Options, node: layout.NodeSpec,
                           config: kubeadm_config.ClusterConfig, out) -> None:
    wanted = layout.manifests(node, config)
    if opts.patches_dir:
        wanted = {c: patches.apply(opts.patches_dir, c, text) for c, text in wanted.items()}
    if opts.command == "apply":
        out(f'[upgrade/version] You have chosen to change the cluster version to '
            f'"{config.kubernetes_version}"')
        _confirm(opts)
    out(f"[upgrade/staticpods] Upgrading the control plane of node {node.name}")
    upgrade_static_pods(node, wanted, _timeout(), out)


def _farewell(opts: Options, config, out) -> None:
    if opts.command == "apply":
        out(f'[upgrade/successful] SUCCESS! Your cluster was upgraded to '
            f'"{config.kubernetes_version}". Enjoy!')
        out("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with "
            "upgrading your kubelets if you haven't already done so.")
    elif not opts.phase:
        out("[upgrade] The configuration for this node was successfully updated!")
        out("[upgrade] Now you should go ahead and upgrade the kubelet package using your "
            "package manager.")


def show_diff(node: layout.NodeSpec, config: kubeadm_config.ClusterConfig, out) -> None:
    """`kubeadm upgrade diff`: what an upgrade would change in each manifest; nothing written."""
    for component, content in layout.manifests(node, config).items():
        current = f"{MANIFESTS}/{component}.yaml"
        old = Path(current).read_text() if os.path.exists(current) else ""
        for line in difflib.unified_diff(old.splitlines(), content.decode().splitlines(),
                                         current, "new manifest", lineterm=""):
            out(line)


def run(opts: Options, node: layout.NodeSpec, out) -> None:
    if opts.command == "version":
        out(f'kubeadm version: &version.Info{{Major:"1", GitVersion:"{layout.K8S_VERSION}"}}')
        return
    control_plane = os.path.exists(f"{MANIFESTS}/kube-apiserver.yaml")
    if opts.command in ("apply", "diff") and not control_plane:
        raise KubeadmError(f"[upgrade/{opts.command}] FATAL: `kubeadm upgrade {opts.command}` "
                           "must be run on a control plane node (no kube-apiserver manifest on "
                           "this node)")
    if opts.command == "diff":
        if opts.patches_dir:
            raise KubeadmError(f"unknown flag: --patches\n{USAGE}")
        show_diff(node, _cluster_config(ADMIN_CONF, opts.version)[0], out)
        return
    if opts.phase == "control-plane" and not control_plane:
        out("[upgrade/control-plane] Skipping phase. Not a control plane node.")
        return
    kubeconfig = ADMIN_CONF if control_plane else KUBELET_CONF
    out("[upgrade/config] Reading configuration from the cluster...")
    with_control_plane = control_plane and opts.phase != "kubelet-config"
    config, configmap = (_cluster_config(kubeconfig, opts.version) if with_control_plane
                         else (None, None))
    kubelet = (None if opts.phase == "control-plane"
               else _kubelet_content(kubeconfig, node, opts.patches_dir))
    if config is not None:
        _upgrade_control_plane(opts, node, config, out)
        if opts.command == "apply" and opts.version:
            upload_version(kubeconfig, configmap, config.kubernetes_version, out)
    if kubelet is not None:
        write_kubelet_config(kubelet, out)
    _farewell(opts, config, out)


def main(argv: list[str] | None = None, node_file: str = "") -> int:
    argv = sys.argv[1:] if argv is None else argv

    def out(line: str) -> None:
        print(line, flush=True)

    try:
        opts = parse_args(argv)
        node = node_spec(node_file) if opts.command != "version" else None
        run(opts, node, out)
    except (KubeadmError, KubeadmConfigError, patches.PatchError) as err:
        sys.stderr.write(f"{err}\nTo see the stack trace of this error execute with --v=5 or "
                         "higher\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
