"""Emulated kube-scheduler: flag validation, --config, files, /healthz (see delegated.py)."""

from __future__ import annotations

from harden.lab.components import delegated
from harden.lab.components.common import FileView, StartupError
from harden.lab.components.flags import Parsed, kinds_from_table

COMMAND = "kube-scheduler"
FLAGS = kinds_from_table(delegated.DELEGATED_FLAGS + """
config write-config-to pod-max-in-unschedulable-pods-duration:d
""")
SCHEDULER_APIS = {"kubescheduler.config.k8s.io/v1"}


def validate(flags: Parsed) -> list[str]:
    """--config must hold a KubeSchedulerConfiguration of a served version."""
    if not flags.has("config"):
        return []
    import yaml

    try:
        with open(FileView.from_env().require(flags.get("config"))) as handle:
            doc = yaml.safe_load(handle) or {}
    except (StartupError, yaml.YAMLError) as err:
        return [f"failed to load scheduler config file: {err}"]
    if doc.get("kind") != "KubeSchedulerConfiguration" or doc.get("apiVersion") not in SCHEDULER_APIS:
        return [f'no kind "{doc.get("kind")}" is registered for version "{doc.get("apiVersion")}" '
                f'in scheme "pkg/scheduler/apis/config/scheme/scheme.go:30"']
    return []


def main(argv: list[str]) -> int:
    return delegated.start(COMMAND, FLAGS, argv, (), validate)
