"""What `harden check` and `harden apply --format json` import before their first connection:
nothing that only the evaluation, a report, a health gate or a text printer needs (each is
imported where it is used, after the hosts are contacted)."""

from support.imports import modules_after


def test_check_imports_no_evaluator_comparison_or_catalogue_validation_up_front():
    loaded = modules_after("import harden.cli, harden.cis.run")
    assert not loaded & {"harden.cis.evaluate", "harden.cis.compare", "harden.cis.cluster_checks",
                         "harden.cis.operators", "harden.cis.file_checks"}


def test_a_json_apply_imports_no_rich_tenacity_or_ssl_up_front():
    loaded = modules_after("import harden.cli, harden.apply.runner, harden.apply.templating\n"
                            "import harden.apply.json_output, harden.ssh.settings\n"
                            "harden.apply.json_output.JsonOutput()")
    assert not loaded & {"rich", "tenacity", "ssl"}
