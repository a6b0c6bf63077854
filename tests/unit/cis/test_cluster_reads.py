"""Section 5's cluster data once per declared cluster (harden.cis.cluster_reads): who asks, how
a control plane names its cluster, how answers reach the control planes that did not ask, and
what is never shared (access reviews, hosts without harden_cluster)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
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


def test_a_control_plane_left_out_names_its_cluster_ca_and_asks_only_its_access_reviews(tmp_path):
    root, bindir, calls = _control_plane(tmp_path)
    facts = _run(build_probe_script(str(root), ask_cluster=False), bindir)
    assert facts.complete and facts.kubectl_deferred
    assert sorted(facts.kubectl) == ["can-i create pods", "can-i get secrets",
                                     "can-i list secrets", "can-i watch secrets"]
    assert facts.cluster_ca == hashlib.sha256(CA.encode()).hexdigest()
    [call] = calls.read_text().splitlines()
    assert call.startswith("--kubeconfig=") and " create " in call and "system:authenticated" in call


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


def test_one_host_asks_per_harden_cluster_and_every_host_without_it_asks():
    hosts = [host("a1", harden_cluster="a"), host("b1", harden_cluster="b"),
             host("a2", harden_cluster="a"), host("x"), host("y")]
    assert askers(hosts) == {"a1", "b1", "x", "y"}


def test_without_harden_cluster_every_control_plane_asks():
    hosts = [host("cp1", ["control_plane"]), host("cp2", ["control_plane"]), host("w1")]
    assert askers(hosts) == {"cp1", "cp2", "w1"}


def test_the_asking_host_is_likeliest_a_control_plane():
    def one(*hosts):
        return [Host(h.name, {**h.vars, "harden_cluster": "c"}, h.groups) for h in hosts]
    hosts = one(host("w1", ["workers"]), host("cp1", ["kube_control_plane"]), host("cp2", ["masters"]))
    assert askers(hosts) == {"cp1"}
    hosts = one(host("w1", ["workers"]), host("n9", harden_node_role="control-plane"),
                host("cp1", ["control_plane"]))
    assert askers(hosts) == {"n9"}
    hosts = one(host("cp1", ["control_plane"], harden_node_role="worker"), host("n2"))
    assert askers(hosts) == {"n2"}
    assert askers(one(host("n1"), host("n2"))) == {"n1"}     # nothing known: inventory order


@pytest.mark.parametrize("value", ["", "  ", True, ["a"], {"name": "a"}])
def test_a_harden_cluster_that_names_nothing_is_refused_naming_host_and_variable(value):
    with pytest.raises(HostError, match=r"host cp2 \(harden_cluster\): .*non-empty string"):
        askers([host("cp1"), host("cp2", harden_cluster=value)])


def test_an_untemplated_harden_cluster_is_refused_naming_host_and_variable():
    with pytest.raises(HostError, match=r"host cp2 \(harden_cluster\): .*untemplated"):
        askers([host("cp1"), host("cp2", harden_cluster="{{ cluster_name }}")])


# --- sharing the answers ------------------------------------------------------------------------

def probed(ca: str | None, *, deferred: bool = False, get_rc: int | None = 0,
           can_i: str = "no") -> Facts:
    """A control plane's facts; a deferred one has only its own access review."""
    facts = Facts(complete=True, cluster_ca=ca, kubectl_deferred=deferred)
    facts.kubectl = {"can-i get secrets": (0 if can_i == "yes" else 1, can_i)}
    if get_rc is not None and not deferred:
        facts.kubectl.update({"get": (get_rc, json.dumps(OBJECTS) if get_rc == 0 else "refused"),
                              "kubeadm-config": (0, "")})
    return facts


def cp(name: str, cluster: str | None = "one") -> Host:
    """A host of the declared cluster `cluster` (None: no harden_cluster)."""
    return host(name) if cluster is None else host(name, harden_cluster=cluster)


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


def test_control_planes_that_did_not_ask_get_their_clusters_objects_and_keep_their_own_can_i():
    hosts = [cp("cp1"), cp("cp2"), cp("cp3"), cp("w1")]
    facts = {"cp1": probed(CA_A), "cp2": probed(CA_A, deferred=True, can_i="yes"),
             "cp3": probed(CA_A, deferred=True), "w1": Facts(complete=True)}
    ask = Asker({})
    assert share(hosts, facts, ask) == {}
    assert ask.asked == []
    for name in ("cp2", "cp3"):
        assert {k: facts[name].kubectl[k] for k in ("get", "kubeadm-config")} == \
            {k: facts["cp1"].kubectl[k] for k in ("get", "kubeadm-config")}
        assert facts[name].kubectl_from == "cp1" and not facts[name].kubectl_deferred
        assert facts[name].kubectl_cluster == "one"
    assert facts["cp2"].can_i("get secrets") is True           # its own authorizer's answer
    assert facts["cp1"].can_i("get secrets") is False and facts["cp3"].can_i("get secrets") is False
    assert facts["cp1"].kubectl_from is None and facts["w1"].kubectl == {}


def test_hosts_without_harden_cluster_share_nothing_even_with_one_ca():
    hosts = [cp("cp1", None), cp("cp2", None)]
    facts = {"cp1": probed(CA_A), "cp2": probed(CA_A, get_rc=1)}
    share(hosts, facts, Asker({}))
    assert facts["cp2"].kubectl["get"] == (1, "refused") and facts["cp2"].kubectl_from is None


def test_a_second_cluster_found_by_its_ca_is_asked_once_on_its_first_control_plane():
    hosts = [cp("a1"), cp("b1"), cp("b2")]
    facts = {"a1": probed(CA_A), "b1": probed(CA_B, deferred=True),
             "b2": probed(CA_B, deferred=True)}
    ask = Asker({"b1": probed(CA_B, get_rc=0)})
    share(hosts, facts, ask)
    assert ask.asked == ["b1"]
    assert facts["b1"].kubectl_from is None and facts["b1"].kubectl == ask.answers["b1"].kubectl
    assert facts["b2"].kubectl_from == "b1"


def test_the_same_harden_cluster_with_another_ca_is_not_shared():
    hosts = [cp("cp1"), cp("cp2")]
    facts = {"cp1": probed(CA_A), "cp2": probed(CA_B, deferred=True)}
    ask = Asker({"cp2": probed(CA_B, get_rc=1)})
    share(hosts, facts, ask)
    assert ask.asked == ["cp2"] and facts["cp2"].kubectl_from is None
    assert facts["cp2"].kubectl["get"] == (1, "refused")


def test_an_api_server_that_did_not_answer_sends_the_question_to_the_next_control_plane():
    hosts = [cp("cp1"), cp("cp2"), cp("cp3")]
    facts = {"cp1": probed(CA_A, get_rc=1), "cp2": probed(CA_A, deferred=True),
             "cp3": probed(CA_A, deferred=True)}
    failure = HostError("cp2", "unreachable: connection refused")
    ask = Asker({"cp2": failure, "cp3": probed(CA_A)})
    failed = share(hosts, facts, ask)
    assert ask.asked == ["cp2", "cp3"]
    assert facts["cp1"].kubectl["get"] == (1, "refused")          # its own answer, as today
    assert failed == {"cp2": failure}                             # a failed host, not a WARN
    assert facts["cp3"].kubectl_objects() == (OBJECTS["items"], "")


def test_second_execs_of_two_clusters_run_at_once():
    hosts = [cp("a1", "a"), cp("a2", "a"), cp("b1", "b"), cp("b2", "b")]
    facts = {"a1": probed(CA_A, get_rc=1), "a2": probed(CA_A, deferred=True),
             "b1": probed(CA_B, get_rc=1), "b2": probed(CA_B, deferred=True)}
    both_waiting = threading.Barrier(2, timeout=10)    # one at a time: broken after 10 s

    def ask(target):
        both_waiting.wait()
        return probed(facts[target.name].cluster_ca)
    assert share(hosts, facts, ask, forks=2) == {}
    assert facts["a2"].kubectl_objects()[0] and facts["b2"].kubectl_objects()[0]


def test_second_execs_are_bounded_by_forks():
    hosts = [cp(f"{c}{i}", c) for c in "abc" for i in (1, 2)]
    cas = {"a": CA_A, "b": CA_B, "c": "c" * 64}
    facts = {h.name: probed(cas[h.name[0]], deferred=h.name.endswith("2"),
                            get_rc=1 if h.name.endswith("1") else 0) for h in hosts}
    running, peak, lock = [0], [0], threading.Lock()

    def ask(target):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        threading.Event().wait(0.2)
        with lock:
            running[0] -= 1
        return probed(facts[target.name].cluster_ca)
    share(hosts, facts, ask, forks=2)
    assert peak[0] == 2


def test_the_same_ca_in_two_declared_clusters_is_not_shared():
    hosts = [host("a1", harden_cluster="a"), host("b1", harden_cluster="b")]
    facts = {"a1": probed(CA_A), "b1": probed(CA_A, deferred=True)}
    ask = Asker({"b1": probed(CA_A)})
    share(hosts, facts, ask)
    assert ask.asked == ["b1"] and facts["b1"].kubectl_from is None


def test_a_host_that_was_not_probed_is_left_alone():
    hosts = [cp("cp1"), cp("cp2")]
    facts = {"cp2": probed(CA_A, deferred=True)}
    ask = Asker({"cp2": probed(CA_A)})
    share(hosts, facts, ask)
    assert ask.asked == ["cp2"] and "cp1" not in facts


# --- verdicts: the same from a copy, the evidence says whose ----------------------------------

def test_copied_objects_give_the_same_verdict_and_name_where_they_were_asked():
    hosts = [cp("cp1"), cp("cp2")]
    facts = {"cp1": probed(CA_A), "cp2": probed(CA_A, deferred=True)}
    share(hosts, facts, Asker({}))
    check = "cluster_admin_bindings"
    mine, copied = kubectl_check(check, facts["cp1"]), kubectl_check(check, facts["cp2"])
    assert (copied.passed, copied.actual, copied.status) == (mine.passed, mine.actual, mine.status)
    assert copied.facts[0].endswith(", asked on cp1 (a host of this node's cluster, "
                                    "harden_cluster=one)")
    assert "asked on" not in mine.facts[0]


def test_can_i_verdicts_are_each_control_planes_own():
    hosts = [cp("cp1"), cp("cp2")]
    facts = {"cp1": probed(CA_A), "cp2": probed(CA_A, deferred=True, can_i="yes")}
    for name in facts:
        facts[name].kubectl.update({"can-i list secrets": (1, "no"),
                                    "can-i watch secrets": (1, "no")})
    share(hosts, facts, Asker({}))
    mine = kubectl_check("authenticated_can_read_secrets", facts["cp1"])
    drifted = kubectl_check("authenticated_can_read_secrets", facts["cp2"])
    assert mine.passed is True and drifted.passed is False
    assert "get secrets" in drifted.actual and "asked on" not in drifted.facts[0]


def test_kubeadm_agreement_from_a_copy_names_where_the_config_map_was_read():
    facts = probed(CA_A, deferred=True)
    share([cp("cp1"), cp("cp2")], {"cp1": probed(CA_A), "cp2": facts}, Asker({}))
    verdict = kubeadm_agreement({}, HostContext(facts))
    assert verdict.status == "SKIP"            # the empty ConfigMap answer, copied as it was


# --- the run: a failed second exec fails its host -------------------------------------------------

def test_a_failed_second_exec_fails_its_host_and_the_check_exits_4(tmp_path, monkeypatch):
    from harden.cis import run
    from harden.cis.catalogue import load_catalogue

    inventory = tmp_path / "inventory.ini"
    inventory.write_text("[control_plane]\ncp1 ansible_host=127.0.0.1\ncp2 ansible_host=127.0.0.2\n"
                         "[control_plane:vars]\nharden_cluster=one\n")

    def audit_host(host, spec, catalogue, jumps=None, step=None, ask_cluster=True):
        facts = probed(CA_A, get_rc=1) if ask_cluster else probed(CA_A, deferred=True)
        return run.Audited(facts, None if facts.kubectl_deferred else [])

    def ask_cluster(host, spec, jumps=None):
        raise HostError(host.name, "unreachable: connection refused")
    monkeypatch.setattr(run, "audit_host", audit_host)
    monkeypatch.setattr(run, "ask_cluster", ask_cluster)
    checked = run._audit([str(inventory)], None, 5, run.CatalogueLoad.of(load_catalogue()), "json",
                         False, False, None)
    assert list(checked.unreachable) == ["cp2"]
    assert "connection refused" in checked.unreachable["cp2"]
    assert not [r for r in checked.results if r.host == "cp2"]
    assert run.exit_code(checked) == run.EXIT_HOSTS


def test_a_bug_while_settling_a_cluster_fails_its_waiting_hosts_not_silently(monkeypatch):
    from harden.cis import cluster_reads

    def broken(*_args):
        raise KeyError("settling")
    monkeypatch.setattr(cluster_reads, "_settle", broken)
    hosts = [cp("cp1"), cp("cp2"), cp("cp3")]
    facts = {"cp1": probed(CA_A), "cp2": probed(CA_A, deferred=True),
             "cp3": probed(CA_A, deferred=True)}
    failed = share(hosts, facts, Asker({}))
    assert sorted(failed) == ["cp2", "cp3"] and "settling" in str(failed["cp2"])
