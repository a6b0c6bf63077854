"""pod-security.yml's preflight, run by sh against a stand-in kubectl that answers the way the
API server does for `kubectl label --dry-run=server` (warnings on stderr naming the violating
pods). The lab has no API objects, so the decision logic is tested here."""

from __future__ import annotations

import os
import subprocess

from harden.apply.playbook import load_playbook
from harden.apply.templating import layered_vars, render_value

from support.paths import REPO

FAKE_KUBECTL = r"""#!/bin/sh
# argv: --kubeconfig FILE <verb> ...
shift 2
log="$FAKE_LOG"
case "$1" in
  get)
    if [ "$2" = namespaces ]; then
      printf 'namespace/%s\n' default kube-system monitoring apps team; exit 0; fi
    [ "$3" = team ] && printf restricted; exit 0;;
  label)
    if [ "$2" = --dry-run=server ]; then
      ns=$5
      if [ "$ns" = monitoring ]; then
        echo 'Warning: existing pods in namespace "monitoring" violate the new PodSecurity enforce level "baseline:latest"' >&2
        echo 'Warning: node-exporter-x2k: host namespaces, hostPath volumes' >&2
      fi
      echo "namespace/$ns labeled (server dry run)"; exit 0
    fi
    echo "labeled $2 $3" >> "$log"; exit 0;;
esac
exit 3
"""


def preflight_script(**extra) -> str:
    play = next(p for p in load_playbook(str(REPO / "playbooks" / "pod-security.yml")).plays
                if p.name == "Pod security preflight")
    task = play.tasks[0]
    variables = layered_vars(play.vars, extra_vars={"pod_security_kubeconfig": "/dev/null",
                                                    "ansible_check_mode": False, **extra})
    return render_value(task.args, variables, task.where)["cmd"]


def run(tmp_path, script: str) -> tuple[str, str]:
    kubectl = tmp_path / "bin" / "kubectl"
    kubectl.parent.mkdir(exist_ok=True)
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    log = tmp_path / "labels.log"
    log.write_text("")
    env = {**os.environ, "PATH": f"{kubectl.parent}:{os.environ['PATH']}", "FAKE_LOG": str(log)}
    done = subprocess.run(["/bin/sh", "-ec", script], capture_output=True, text=True, env=env,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout, log.read_text()


def test_preflight_reports_what_would_be_rejected_and_labels_nothing_by_default(tmp_path):
    out, labeled = run(tmp_path, preflight_script())
    lines = out.splitlines()
    assert "kube-system: exempt" in lines
    assert "team: keeps its own enforce=restricted" in lines
    assert "monitoring: enforce=baseline would reject: node-exporter-x2k: host namespaces, " \
           "hostPath volumes" in lines
    assert "apps: no violations; enforce=baseline would be safe" in lines
    assert labeled == ""


def test_preflight_enforces_only_where_no_pod_violates_when_asked(tmp_path):
    out, labeled = run(tmp_path, preflight_script(pod_security_label_clean_namespaces=True))
    assert labeled.splitlines() == ["labeled namespace default", "labeled namespace apps"]
    assert "monitoring: enforce=baseline would reject:" in out


def test_preflight_never_labels_in_check_mode(tmp_path):
    script = preflight_script(pod_security_label_clean_namespaces=True, ansible_check_mode=True)
    _, labeled = run(tmp_path, script)
    assert labeled == ""


def test_preflight_without_kubectl_says_so(tmp_path):
    done = subprocess.run(["/bin/sh", "-ec", preflight_script()], capture_output=True, text=True,
                          env={"PATH": "/nonexistent"}, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("skipped: kubectl or /dev/null")


def test_admission_defaults_only_audit_and_warn():
    import yaml
    from harden.apply.templating import render_template_file
    doc = yaml.safe_load(render_template_file("admission-config.yaml.j2",
                                              [str(REPO / "templates")], {}))
    defaults = doc["plugins"][0]["configuration"]["defaults"]
    assert (defaults["enforce"], defaults["audit"], defaults["warn"]) == \
        ("privileged", "restricted", "restricted")
