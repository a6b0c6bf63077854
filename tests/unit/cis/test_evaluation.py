"""The evaluation engine's building blocks: catalogue loading, flag parsing, kube-bench operators,
kubelet command-line reconstruction, missing-file policies and not-running components."""

from __future__ import annotations

import base64
from collections import Counter

import pytest

from harden.cis.catalogue import explain, load_catalogue
from harden.cis.component_views import View, configured_kubelet_argv, parse_flags
from harden.cis.evaluate import evaluate_host
from harden.cis.lookup import evaluate_item
from harden.errors import InputError
from harden.cis.probe import Facts, FileStat, Process
from support.paths import REPO

PLAYBOOKS = {"cis-control-plane", "cis-worker", "audit", "encryption-at-rest", "pod-security", "kubelet"}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


BEYOND_CIS = {"1.2.28e", "4.2.14k", "1.1.22k"}     # harden's own checks, next to the CIS ones they extend


def test_catalogue_counts_match_cis_1_12(catalogue):
    cis = [c for c in catalogue.checks if c.id not in BEYOND_CIS]
    per_section = Counter(c.section for c in cis)
    assert per_section == {"1.1": 21, "1.2": 30, "1.3": 7, "1.4": 2, "2": 7, "3.1": 3, "3.2": 2, "4.1": 10,
                           "4.2": 14, "4.3": 1, "5.1": 13, "5.2": 12, "5.3": 2, "5.4": 2, "5.5": 1, "5.6": 4}
    assert sum(c.scored for c in cis) == 65
    assert {c.remediate["playbook"] for c in catalogue.checks if c.remediate} <= PLAYBOOKS
    # null where no shipped playbook changes what the check reads (kubeadm's defaults, or
    # changes that need the operator: kubelet serving certs, token lifetimes, bind addresses)
    assert {c.id for c in cis if c.scored and not c.remediate} == {
        "1.1.12", "1.2.2", "1.2.4", "1.2.5", "1.2.12", "1.2.13", "1.2.21", "1.2.22", "1.2.23",
        "1.2.24", "1.2.25", "1.2.26", "1.2.30", "1.3.4", "1.3.5", "1.3.6", "1.3.7", "1.4.2",
        "2.1", "2.3", "2.4", "2.6", "4.2.3", "4.3.1"}
    issue_16 = {"1.2.5", "1.2.29", "1.2.30", "1.3.6", "1.3.7", "1.4.2", "4.2.8", "4.2.11",
                "4.2.12", "4.2.14"}
    assert all(catalogue.get(i).remediate is None for i in issue_16)


def test_every_check_is_documented_in_the_coverage_table(catalogue):
    coverage = (REPO / "docs" / "cis-coverage.md").read_text()
    assert all(f"| {c.id} | {c.title} |" in coverage for c in catalogue.checks)


def test_catalogue_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sections: [{id: '1', title: t, node_type: worker}]\nchecks:\n"
                   "- {id: '1.1', section: '1', title: t, scored: true, expected: e, remediation: r,\n"
                   "   audit: {component: kubelet, tests: [{flag: --x, op: resembles, value: y}]}}\n")
    with pytest.raises(InputError, match="bad.yaml.*unknown op 'resembles'"):
        load_catalogue(path=bad)
    bad.write_text("sections: [{id: '1', title: t, node_type: worker}]\nchecks:\n"
                   "- {id: '1.1', section: '1', title: t, scored: true, expected: e, remediation: r,\n"
                   "   audit: {files: [kubelet-sevice], owner: 'root:root'}}\n")
    with pytest.raises(InputError, match="unknown path reference 'kubelet-sevice'"):
        load_catalogue(path=bad)
    bad.write_text("checks: [\n")
    with pytest.raises(InputError, match=r"bad.yaml:\d+: invalid YAML"):
        load_catalogue(path=bad)
    with pytest.raises(InputError, match="unknown benchmark 'cis-0.1'.*cis-1.12"):
        load_catalogue("cis-0.1")


def test_parse_flags_forms():
    flags = parse_flags(["--a=1", "--b", "two", "--profiling", "false", "--c", "--d=x=y",
                         "--enable-admission-plugins=A", "--enable-admission-plugins=B", "-v=2"])
    assert flags["--a"] == ["1"] and flags["--b"] == ["two"] and flags["--d"] == ["x=y"]
    assert flags["--profiling"] == ["true"]          # pflag bools never take the next argument
    assert flags["--c"] == ["true"]
    view = View("t", flags)
    assert view.flag("--enable-admission-plugins") == "A,B"
    assert View("t", parse_flags(["--x=1", "--x=2"])).flag("--x") == "2"


def test_flag_beats_config_key_and_set_false():
    view = View("p", parse_flags(["--anonymous-auth=true"]), config={"authentication": {"anonymous": {"enabled": False}}})
    item = {"flag": "--anonymous-auth", "key": "authentication.anonymous.enabled", "op": "eq", "value": "false"}
    passed, found = evaluate_item(item, view)
    assert not passed and found.describe() == "--anonymous-auth=true"
    passed, found = evaluate_item(item, View("p", {}, config={"authentication": {"anonymous": {"enabled": False}}}))
    assert passed and found.where == "config authentication.anonymous.enabled"
    assert evaluate_item({"flag": "--x", "key": "x", "set": False}, View("p", {}, config={"x": ""}))[0]
    gate = {"gate": "RotateKubeletServerCertificate", "key": "featureGates.RotateKubeletServerCertificate",
            "op": "nothave", "value": "false"}
    assert not evaluate_item(gate, View("p", parse_flags(["--feature-gates=A=true,RotateKubeletServerCertificate=false"])))[0]


def _content(facts: Facts, path: str, text: str, mode: int = 0o644, owner=("root", "root")) -> None:
    facts.contents[path] = text
    facts.stats[path] = FileStat(path, mode, 0, 0, owner[0], owner[1], f"1:{len(facts.stats)}", "regular file")


def test_configured_kubelet_command_line_from_units_and_env_files():
    facts = Facts(complete=True)
    _content(facts, "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
             '[Service]\nEnvironment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"\n'
             "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\nEnvironmentFile=-/etc/default/kubelet\n"
             "ExecStart=\nExecStart=/usr/bin/kubelet $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS\n")
    _content(facts, "/etc/systemd/system/kubelet.service.d/20-local.conf",
             '[Service]\nEnvironment="KUBELET_EXTRA_ARGS=--read-only-port=10255"\n')
    _content(facts, "/var/lib/kubelet/kubeadm-flags.env", 'KUBELET_KUBEADM_ARGS="--node-ip=10.0.0.5"\n')
    _content(facts, "/etc/default/kubelet", "KUBELET_EXTRA_ARGS=--hostname-override=n1\n")
    argv, sources = configured_kubelet_argv(facts)
    # EnvironmentFile values override Environment= ones, as in systemd
    assert argv == ["/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml", "--node-ip=10.0.0.5",
                    "--hostname-override=n1"]
    assert "/etc/default/kubelet" in sources


def _node_with(**procs) -> Facts:
    facts = Facts(complete=True)
    for pid, (name, argv) in enumerate(procs.items(), start=10):
        facts.processes[argv[0]] = [Process(pid, argv[0], argv)]
    return facts


def test_component_not_running_uses_configured_state_but_never_passes(catalogue):
    facts = Facts(complete=True)
    _content(facts, "/etc/kubernetes/manifests/kube-apiserver.yaml",
             "spec:\n  containers:\n  - command: [kube-apiserver, --profiling=false, --token-auth-file=/t]\n", 0o600)
    results = {r.id: r for r in evaluate_host("cp", facts, catalogue)}
    assert results["1.2.15"].status == "WARN" and "not running" in results["1.2.15"].actual
    assert results["1.2.2"].status == "FAIL"
    assert results["1.1.1"].status == "PASS"
    assert results["1.1.15"].status == "FAIL" and "not found" in results["1.1.15"].actual


def test_missing_file_policies(catalogue):
    facts = _node_with(kubelet=["kubelet", "--kubeconfig=/etc/kubernetes/kubelet.conf"])
    results = {r.id: r for r in evaluate_host("w", facts, catalogue)}
    assert results["4.1.1"].status == "SKIP"          # no systemd unit: not applicable
    assert results["4.1.3"].status == "PASS"          # "if the proxy kubeconfig exists"
    assert results["4.1.5"].status == "FAIL" and "/etc/kubernetes/kubelet.conf" in results["4.1.5"].actual
    assert results["4.1.9"].status == "PASS" and "no config file" in results["4.1.9"].actual
    assert results["4.2.1"].status == "FAIL"          # flag default is anonymous: nothing sets it false


def test_explain_names_audit_expected_and_playbook(catalogue):
    text = explain(catalogue.get("1.2.15"))
    assert "--profiling eq false" in text and "playbooks/cis-control-plane.yml -t control-plane" in text
    assert "Automated" in text
    assert "no harden playbook" in explain(catalogue.get("5.1.1"))


def test_explain_command(catalogue):
    from click.testing import CliRunner

    from harden.cli import cli

    result = CliRunner().invoke(cli, ["explain", "4.2.1"])
    assert result.exit_code == 0 and "authentication.anonymous.enabled" in result.output
    result = CliRunner().invoke(cli, ["explain", "9.9.9"])
    assert result.exit_code == 1 and "no check '9.9.9'" in result.output


def test_probe_lines_round_trip_through_the_engine(catalogue):
    from harden.cis.probe import parse_probe_output

    argv = base64.b64encode(b"etcd\0--data-dir=/data/etcd\0--auto-tls=true\0").decode()
    out = ("HARDEN-PROBE|1|\nT||100\n" + f"P|5|etcd||{argv}\n"
           "S|750|0|0|root|root|1:1|1700000000|directory|/data/etcd\nEND|\n")
    results = {r.id: r for r in evaluate_host("e", parse_probe_output(out), catalogue)}
    assert set(results) == {c.id for c in catalogue.checks if c.section == "2"}
    assert results["2.3"].status == "FAIL" and results["2.6"].status == "PASS"


def test_files_unread_in_a_batch_make_only_the_checks_reading_node_files_error(catalogue):
    """A file that changed while the probe read it (Facts.unread) costs the checks that read
    node files their verdict (ERROR naming it, run again); the host is still evaluated and
    the checks of cluster objects and manual ones are judged as usual."""
    facts = _node_with(**{"kube-apiserver": ["kube-apiserver", "--profiling=false"]})
    manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
    facts.unread[manifest] = f"{manifest} changed while the probe read it (stat said 9 bytes)"
    results = {r.id: r for r in evaluate_host("cp", facts, catalogue)}
    for check in ("1.2.15", "1.1.1", "1.2.16"):
        assert results[check].status == "ERROR", check
        assert results[check].actual == (f"not evaluated: {manifest} changed while the probe "
                                          "read it (stat said 9 bytes); run the check again")
        assert results[check].facts == [manifest]
    by_kind = {c.id: c.kind for c in catalogue.checks}
    untouched = [r for r in results.values() if by_kind[r.id] in ("manual", "kubectl")]
    assert untouched and all(r.status != "ERROR" for r in untouched)
    facts.unread.clear()
    assert evaluate_host("cp", facts, catalogue)[0].status != "ERROR"
