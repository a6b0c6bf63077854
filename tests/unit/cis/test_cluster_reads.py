"""Section 5 once per cluster (harden.cis.cluster_reads): who asks, how a control plane names
its cluster, and how answers reach the control planes that did not ask."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest

from harden.cis.cluster_checks import kubeadm_agreement, kubectl_check
from harden.cis.cluster_reads import askers, share
from harden.cis.context import HostContext
from harden.cis.probe import Facts, build_cluster_script, build_probe_script, parse_probe_output
from harden.errors import HostError
from harden.inventory.loader import Host

CA = "-----BEGIN CERTIFICATE-----\nMIIBlab-cluster-ca\n-----END CERTIFICATE-----\n"
OBJECTS = {"kind": "List", "items": [
    {"kind": "ClusterRoleBinding", "metadata": {"name": "admins"},
     "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
     "subjects": [{"kind": "Group", "name": "system:masters"}]}]}


# --- the probe: naming the cluster, leaving section 5 to another control plane -----------------

def _control_plane(tmp_path, with_ca: bool = True):
    """A node tree with admin.conf (and the cluster CA), and a kubectl that logs its calls."""
    root = tmp_path / "node"
    (root / "etc/kubernetes/pki").mkdir(parents=True)
    (root / "etc/kubernetes/admin.conf").write_text("apiVersion: v1\nkind: Config\n")
    if with_ca:
        (root / "etc/kubernetes/pki/ca.crt").write_text(CA)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "kubectl-calls"
    kubectl = bindir / "kubectl"
    kubectl.write_text(f"#!/bin/sh\necho \"$*\" >> {calls}\n"
                       f"printf '%s' '{json.dumps(OBJECTS)}'\n")
    kubectl.chmod(0o755)
    return root, bindir, calls


def _run(script: str, bindir) -> Facts:
    env = dict(os.environ, PATH=f"{bindir}:/usr/bin:/bin")
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return parse_probe_output(done.stdout)


def test_a_control_plane_left_out_names_its_cluster_ca_and_runs_no_kubectl(tmp_path):
    root, bindir, calls = _control_plane(tmp_path)
    facts = _run(build_probe_script(str(root), ask_cluster=False), bindir)
    assert facts.complete and facts.kubectl_deferred and facts.kubectl == {}
    assert facts.cluster_ca == hashlib.sha256(CA.encode()).hexdigest()
    assert not calls.exists()


def test_the_asking_control_plane_names_its_cluster_too_and_asks(tmp_path):
    root, bindir, calls = _control_plane(tmp_path)
    facts = _run(build_probe_script(str(root)), bindir)
    assert facts.cluster_ca == hashlib.sha256(CA.encode()).hexdigest()
    assert not facts.kubectl_deferred
    assert facts.kubectl_objects() == (OBJECTS["items"], "")
    assert len(calls.read_text().splitlines()) == 3      # get, kubeadm-config, can-i


def test_a_control_plane_without_a_cluster_ca_asks_for_itself(tmp_path):
    root, bindir, calls = _control_plane(tmp_path, with_ca=False)
    facts = _run(build_probe_script(str(root), ask_cluster=False), bindir)
    assert facts.cluster_ca is None and not facts.kubectl_deferred
    assert facts.kubectl_objects() == (OBJECTS["items"], "")


def test_the_cluster_script_asks_only_section_5(tmp_path):
    root, bindir, calls = _control_plane(tmp_path)
    facts = _run(build_cluster_script(str(root)), bindir)
    assert facts.complete and facts.kubectl_objects() == (OBJECTS["items"], "")
    assert facts.cluster_ca and not facts.processes and not facts.stats


def test_the_cluster_script_runs_its_three_kubectl_calls_at_once(tmp_path):
    """The second exec a cluster gets when its asker did not answer: its kubectl calls
    overlap as the probe's do, so it lasts about the slowest call, not the sum."""
    root, bindir, calls = _control_plane(tmp_path)
    kubectl = bindir / "kubectl"
    kubectl.write_text(kubectl.read_text().replace("#!/bin/sh\n", "#!/bin/sh\nsleep 0.6\n", 1))
    began = time.monotonic()
    facts = _run(build_cluster_script(str(root)), bindir)
    assert time.monotonic() - began < 1.5          # one after another: at least 1.8 s
    assert facts.kubectl_objects() == (OBJECTS["items"], "")
    assert sorted(facts.kubectl) == ["can-i create pods", "can-i get secrets",
                                     "can-i list secrets", "can-i watch secrets", "get",
                                     "kubeadm-config"]
    assert len(calls.read_text().splitlines()) == 3


def test_a_cluster_record_that_is_not_a_digest_is_refused():
    with pytest.raises(ValueError, match="line 2"):
        parse_probe_output("HARDEN-PROBE|1|\nI|abc\n")


# --- who asks -----------------------------------------------------------------------------------

def host(name: str, groups=(), **variables) -> Host:
    return Host(name, dict(variables), ["all", *groups])


def test_one_host_asks_per_harden_cluster():
    hosts = [host("a1", harden_cluster="a"), host("b1", harden_cluster="b"),
             host("a2", harden_cluster="a"), host("x")]
    assert askers(hosts) == {"a1", "b1", "x"}


def test_the_asking_host_is_likeliest_a_control_plane():
    hosts = [host("w1", ["workers"]), host("cp1", ["kube_control_plane"]), host("cp2", ["masters"])]
    assert askers(hosts) == {"cp1"}
    hosts = [host("w1", ["workers"]), host("n9", harden_node_role="control-plane"),
             host("cp1", ["control_plane"])]
    assert askers(hosts) == {"n9"}
    hosts = [host("cp1", ["control_plane"], harden_node_role="worker"), host("n2")]
    assert askers(hosts) == {"n2"}
    assert askers([host("n1"), host("n2")]) == {"n1"}     # nothing known: inventory order


@pytest.mark.parametrize("value", ["", "  ", True, ["a"], {"name": "a"}])
def test_a_harden_cluster_that_names_nothing_is_refused_naming_host_and_variable(value):
    with pytest.raises(HostError, match=r"host cp2 \(harden_cluster\): .*non-empty string"):
        askers([host("cp1"), host("cp2", harden_cluster=value)])


# --- sharing the answers ------------------------------------------------------------------------

def probed(ca: str | None, *, deferred: bool = False, get_rc: int | None = 0) -> Facts:
    facts = Facts(complete=True, cluster_ca=ca, kubectl_deferred=deferred)
    if get_rc is not None and not deferred:
        facts.kubectl = {"get": (get_rc, json.dumps(OBJECTS) if get_rc == 0 else "refused"),
                         "kubeadm-config": (0, ""), "can-i get secrets": (1, "no")}
    return facts


CA_A, CA_B = "a" * 64, "b" * 64


class Asker:
    """The second exec, recorded: what each asked control plane answers (or raises)."""

    def __init__(self, answers: dict):
        self.answers, self.asked = answers, []

    def __call__(self, target) -> Facts:
        self.asked.append(target.name)
        answer = self.answers[target.name]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_control_planes_that_did_not_ask_get_their_clusters_answers_without_an_exec():
    hosts = [host("cp1"), host("cp2"), host("cp3"), host("w1")]
    facts = {"cp1": probed(CA_A), "cp2": probed(CA_A, deferred=True),
             "cp3": probed(CA_A, deferred=True), "w1": Facts(complete=True)}
    ask = Asker({})
    share(hosts, facts, ask)
    assert ask.asked == []
    for name in ("cp2", "cp3"):
        assert facts[name].kubectl == facts["cp1"].kubectl
        assert facts[name].kubectl_from == "cp1" and not facts[name].kubectl_deferred
    assert facts["cp1"].kubectl_from is None and facts["w1"].kubectl == {}


def test_a_second_cluster_found_by_its_ca_is_asked_once_on_its_first_control_plane():
    hosts = [host("a1"), host("b1"), host("b2")]
    facts = {"a1": probed(CA_A), "b1": probed(CA_B, deferred=True),
             "b2": probed(CA_B, deferred=True)}
    ask = Asker({"b1": probed(CA_B, get_rc=0)})
    share(hosts, facts, ask)
    assert ask.asked == ["b1"]
    assert facts["b1"].kubectl_from is None and facts["b1"].kubectl == ask.answers["b1"].kubectl
    assert facts["b2"].kubectl_from == "b1"


def test_an_api_server_that_did_not_answer_sends_the_question_to_the_next_control_plane():
    hosts = [host("cp1"), host("cp2"), host("cp3")]
    facts = {"cp1": probed(CA_A, get_rc=1), "cp2": probed(CA_A, deferred=True),
             "cp3": probed(CA_A, deferred=True)}
    ask = Asker({"cp2": HostError("cp2", "unreachable: connection refused"),
                 "cp3": probed(CA_A)})
    share(hosts, facts, ask)
    assert ask.asked == ["cp2", "cp3"]
    assert facts["cp1"].kubectl["get"] == (1, "refused")          # its own answer, as today
    objects, why = facts["cp2"].kubectl_objects()
    assert objects is None and "asking this one failed: unreachable: connection refused" in why
    assert facts["cp3"].kubectl_objects() == (OBJECTS["items"], "")


def test_the_same_ca_in_two_declared_clusters_is_not_shared():
    hosts = [host("a1", harden_cluster="a"), host("b1", harden_cluster="b")]
    facts = {"a1": probed(CA_A), "b1": probed(CA_A, deferred=True)}
    ask = Asker({"b1": probed(CA_A)})
    share(hosts, facts, ask)
    assert ask.asked == ["b1"] and facts["b1"].kubectl_from is None


def test_a_host_that_was_not_probed_is_left_alone():
    hosts = [host("cp1"), host("cp2")]
    facts = {"cp2": probed(CA_A, deferred=True)}
    ask = Asker({"cp2": probed(CA_A)})
    share(hosts, facts, ask)
    assert ask.asked == ["cp2"] and "cp1" not in facts


# --- verdicts: the same from a copy, the evidence says whose ----------------------------------

@pytest.mark.parametrize("check", ["cluster_admin_bindings", "authenticated_can_read_secrets"])
def test_copied_answers_give_the_same_verdict_and_name_where_they_were_asked(check):
    own = probed(CA_A)
    own.kubectl.update({"can-i list secrets": (1, "no"), "can-i watch secrets": (1, "no")})
    hosts = [host("cp1"), host("cp2")]
    facts = {"cp1": own, "cp2": probed(CA_A, deferred=True)}
    share(hosts, facts, Asker({}))
    mine, copied = kubectl_check(check, facts["cp1"]), kubectl_check(check, facts["cp2"])
    assert (copied.passed, copied.actual, copied.status) == (mine.passed, mine.actual, mine.status)
    assert copied.facts[0].endswith(", asked on cp1 (a control plane of this node's cluster)")
    assert "asked on" not in mine.facts[0]


def test_kubeadm_agreement_from_a_copy_names_where_the_config_map_was_read():
    facts = probed(CA_A, deferred=True)
    share([host("cp1"), host("cp2")], {"cp1": probed(CA_A), "cp2": facts}, Asker({}))
    verdict = kubeadm_agreement({}, HostContext(facts))
    assert verdict.status == "SKIP"            # the empty ConfigMap answer, copied as it was
