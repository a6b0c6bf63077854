"""`--format junit`: one testsuite per host, one testcase per host × check.

CI dashboards (Jenkins, GitLab, Azure DevOps, GitHub test reporters) know four outcomes:
passed, failed, error, skipped. The mapping:

* PASS  -> passed testcase.
* FAIL  -> <failure> whose message is the actual state, body: expected, actual, drift, fix.
* ERROR -> <error>: the check could not be evaluated (a tool/host problem, not a finding).
* SKIP  -> <skipped>: not applicable to this node.
* WARN  -> <skipped message="WARN: ...">. A WARN is a manual item or one that could not be
  decided automatically. Shown as passed (system-out only), dashboards would count it as
  compliance evidence it is not; shown as failed, it would break builds the exit code does
  not break. Skipped is the one bucket every dashboard shows as "not verified"; the message
  prefix tells it apart from a real SKIP, and the details go to system-out as well.

The classname is host.section-name (section number dropped, see _class_name), the name is
"id title". An unreachable host is a suite with one testcase "host reachable" carrying an <error>, so it
is counted and cannot vanish from a dashboard. Validated against the Surefire/Jenkins
junit-10.xsd in the tests (which has no properties or attributes on testcases, so `scored`
travels in the testcase's system-out instead).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from itertools import groupby

from harden.cis.reports.ordering import ordered_hosts, ordered_results, section_of
from harden.cis.results import CheckResult, CheckRun

# Characters XML 1.0 cannot carry at all (control chars from a node's file or process args).
_XML_ILLEGAL = dict.fromkeys(c for c in range(0x20) if c not in (0x09, 0x0A, 0x0D))


def xml_safe(text: str) -> str:
    return text.translate(_XML_ILLEGAL)


def render_junit(run: CheckRun) -> str:
    root = ET.Element("testsuites", name=xml_safe(f"harden check {run.benchmark} {run.run_id}"))
    by_host = {h: list(rs) for h, rs in groupby(ordered_results(run), key=lambda r: r.host)}
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for host in ordered_hosts(run):
        if host in run.unreachable:
            suite = _unreachable_suite(host, run.unreachable[host])
        else:
            suite = _host_suite(host, by_host.get(host, []))
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(host: str, tests: int, failures: int, errors: int, skipped: int) -> ET.Element:
    return ET.Element("testsuite", name=xml_safe(host), hostname=xml_safe(host),
                      tests=str(tests), failures=str(failures), errors=str(errors),
                      skipped=str(skipped), time="0")


def _host_suite(host: str, results: list[CheckResult]) -> ET.Element:
    def count(*statuses: str) -> int:
        return sum(r.status in statuses for r in results)

    suite = _suite(host, len(results), count("FAIL"), count("ERROR"), count("SKIP", "WARN"))
    for result in results:
        suite.append(_testcase(result))
    return suite


def _testcase(result: CheckResult) -> ET.Element:
    case = ET.Element("testcase", classname=xml_safe(f"{result.host}.{_class_name(result)}"),
                      name=xml_safe(f"{result.id} {result.title}"), time="0")
    details = xml_safe(_details(result))
    if result.status == "FAIL":
        ET.SubElement(case, "failure", message=xml_safe(result.actual),
                      type="scored" if result.scored else "manual").text = details
    elif result.status == "ERROR":
        ET.SubElement(case, "error", message=xml_safe(result.actual),
                      type="check-error").text = details
    elif result.status in ("SKIP", "WARN"):
        prefix = "WARN: needs review: " if result.status == "WARN" else "not applicable: "
        ET.SubElement(case, "skipped", message=xml_safe(prefix + result.actual))
    if result.status not in ("FAIL", "ERROR"):     # those carry the details in their body
        ET.SubElement(case, "system-out").text = details
    return case


def _class_name(result: CheckResult) -> str:
    """The section's name without its number: dashboards split classname at the last dot,
    so "cp-1.1.2 API Server" would file the check under a class "2 API Server"."""
    section = section_of(result)
    return re.sub(r"^[\d.]+\s+", "", section) or section.replace(".", "_")


def _details(result: CheckResult) -> str:
    lines = [f"status: {result.status} ({'scored' if result.scored else 'manual'})",
             f"expected: {result.expected}", f"actual: {result.actual}"]
    if result.drift:
        lines.append(f"drift: {result.drift}")
    if result.status in ("FAIL", "WARN") and result.remediation:
        lines.append(f"remediation: {result.remediation}")
    return "\n".join(lines)


def _unreachable_suite(host: str, reason: str) -> ET.Element:
    suite = _suite(host, 1, 0, 1, 0)
    case = ET.SubElement(suite, "testcase", classname=xml_safe(f"{host}.connection"),
                         name="host reachable", time="0")
    ET.SubElement(case, "error", message=xml_safe(f"unreachable: {reason}"),
                  type="unreachable").text = xml_safe(reason)
    return suite
