"""The health verification of a host: every wait task, and the implicit wait for each changed
static-pod manifest no task waited for. A mixin of harden.apply.runner.HostPlay."""

from __future__ import annotations

from harden.apply.events import TaskResult
from harden.apply.health import wait_healthy
from harden.apply.host_state import HostFailed
from harden.apply.modules import get_module
from harden.apply.modules.base import TaskFailed
from harden.apply.playbook import Task
from harden.node.paths import MANIFEST_DIR


class HealthVerification:
    """Waiting until what a host's play changed is healthy."""

    def wait(self, task: Task, module, args: dict, result: TaskResult,
             variables: dict) -> None:
        try:
            spec = self.with_facts(module.name,
                                   lambda: module.wait_spec(args, self.facts, variables))
        except TaskFailed as exc:
            self.done(result, "failed", str(exc))
            raise self._task_failed(task, exc) from None
        manifest = None
        if task.module == "wait_for_static_pod":
            manifest = args["manifest"] or f"{MANIFEST_DIR}/{args['name']}.yaml"
        else:
            self.state.kubelet_waited = True
        if self.check:
            result.message = "not waited for in check mode"
            return
        self._step(f"waiting for {spec.what}")
        previous = self.previous_pids(spec, manifest) if manifest in self.changed_paths \
            else set()
        health = wait_healthy(self.session, spec, previous, become=self._become(task))
        if not health.healthy:
            self.done(result, "failed", health.failure(spec.timeout))
            raise HostFailed(f"{spec.what} did not become healthy: {health.detail}")
        self.unverified.discard(manifest)

    def previous_pids(self, spec, manifest: str) -> set[int]:
        """Processes running the manifest's argv before its LAST write in this play (and
        before the play): none of them can be the pod that write makes the kubelet start."""
        if spec.argv is None:
            return set()
        wanted = " ".join(" ".join(spec.argv).split())
        pids = set()
        for line in self.pre_run_ps + self.ps_before_write.get(manifest, []):
            pid, _, args = line.partition(" ")
            if args == wanted and pid.isdigit():
                pids.add(int(pid))
        return pids

    def verify(self) -> None:
        """Wait for every changed manifest no task waited for (module defaults)."""
        if self.check:
            return
        module = get_module("wait_for_static_pod")
        for path in sorted(self.unverified):
            name = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            task = Task(name=f"verify {name}", module=module.name,
                        args={"name": name, "manifest": path}, path=self.play.path,
                        line=self.play.line)
            result = TaskResult(self.name, self.play.name, task.name, "ok")
            self.wait(task, module, module.validate(task.args), result, self.base_vars())
            self.done(result, "ok")
