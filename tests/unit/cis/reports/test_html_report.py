"""The HTML report: self-contained, escaped, complete, and its filters work in a real browser."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harden.cis.reports import render
from support.paths import FIXTURES as FIXTURES_DIR

FIXTURES = FIXTURES_DIR / "reports"
_spec = importlib.util.spec_from_file_location("report_samples", FIXTURES / "sample_runs.py")
samples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(samples)


class _Collector(HTMLParser):
    """Every start tag with its attributes, and the text inside <script> and <style>."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.code: list[str] = []
        self._in_code = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_code = tag in ("script", "style")

    def handle_endtag(self, tag):
        self._in_code = False

    def handle_data(self, data):
        if self._in_code:
            self.code.append(data)


def _parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


@pytest.fixture(scope="module")
def lab_html():
    run = samples.lab_run()
    return run, render(run, "html")


def test_html_is_self_contained(lab_html):
    _, html = lab_html
    page = _parse(html)
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I)
    assert all(tag not in ("link", "img", "iframe", "object", "embed") for tag, _ in page.tags)
    assert all("src" not in attrs and "href" not in attrs for _, attrs in page.tags)
    assert not re.search(r"@import|url\(", "".join(page.code))


def test_html_has_every_check_once_with_its_verdict_counts(lab_html):
    run, html = lab_html
    page = _parse(html)
    rows = [a for t, a in page.tags if t == "tr" and a.get("class") == "check-row"]
    assert len(rows) == len({r.id for r in run.results})
    for check_id in {r.id for r in run.results}:
        assert html.count(f'<span class="id mono">{check_id}</span>') == 1
        expected = Counter(r.status for r in run.results if r.id == check_id)
        for status, count in expected.items():
            assert re.search(rf'<span class="id mono">{re.escape(check_id)}</span>.*?<td class="verdicts">'
                             rf'.*?<span class="pill {status}[^"]*"[^>]*>{status} {count}</span>',
                             html, re.S)
    worst = [a["data-statuses"].split()[0] for a in rows]
    order = ["FAIL", "ERROR", "WARN", "PASS", "SKIP"]
    assert worst == sorted(worst, key=order.index)                     # failing checks first


def test_html_lists_hosts_failing_first_and_unreachable_with_its_reason(lab_html):
    run, html = lab_html
    page = _parse(html)
    hosts = [a["data-host"] for t, a in page.tags if t == "tr" and "data-host" in a]
    assert sorted(hosts) == sorted(h.lower() for h in {r.host for r in run.results} | set(run.unreachable))
    assert hosts[0] == "worker-3"                                       # unreachable first
    fails = Counter(r.host for r in run.results if r.status in ("FAIL", "ERROR"))
    reachable = [h for h in hosts if h != "worker-3"]
    assert [fails[h] for h in reachable] == sorted((fails[h] for h in reachable), reverse=True)
    assert "connection timed out after 10s (127.0.9.15:22)" in html
    assert html.count('<span class="flag">UNREACHABLE</span>') == 1


def test_html_folds_hosts_with_identical_results_into_groups():
    html = render(samples.fleet_run(control_planes=3, workers=46), "html")
    assert "<h3>44 workers identical</h3>" in html
    assert '<div class="members">w[1-6,8-11,13-46]</div>' in html
    assert "<h3>2 workers identical</h3>" in html and "<h3>1 control plane</h3>" in html


def test_html_escapes_everything_from_nodes():
    html = render(samples.tricky_run(), "html")
    page = _parse(html)
    assert sum(tag == "script" for tag, _ in page.tags) == 1            # only the report's own
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;q&#34;" in html
    assert "<title>harden check · cis-1.12 · run-&lt;7&gt;&amp;&#39;&#34;</title>" in html
    assert "authentication failed (publickey) &lt;labops&gt;" in html
    assert "then wait for the kubelet to notice &lt;no restart needed&gt;" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran, from headless Chromium; its whole process group
    is killed afterwards so no renderer outlives the test."""
    proc = subprocess.Popen(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return out


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium for a real browser")
def test_html_filters_work_in_a_browser(lab_html, tmp_path):
    run, html = lab_html
    drive = """<script>
['WARN','ERROR'].forEach(function (s) {
  document.querySelector('input[value=' + s + ']').click(); });
var host = document.getElementById('f-host'); host.value = 'cp-1';
host.dispatchEvent(new Event('input', {bubbles: true}));
document.querySelector('tr.check-row:not(.hidden)').click();
</script></body>"""
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", drive), encoding="utf-8")
    dom = _dump_dom(page, tmp_path / "profile")
    check_count = len({r.id for r in run.results})
    failing_on_cp1 = sum(r.host == "cp-1" and r.status == "FAIL" for r in run.results)
    assert f'<span class="count" id="f-count">{failing_on_cp1} of {check_count} checks</span>' in dom
    visible_rows = re.findall(r'<tr class="check-row( open)?"', dom)
    assert len(visible_rows) == failing_on_cp1 and visible_rows[0] == " open"
    assert re.search(r'<tr data-host="cp-2" class="hidden">', dom)
    assert re.search(r'<tr data-host="cp-1">', dom)
    assert '<tr class="details">' in dom                                  # expanded row shown


@pytest.mark.skipif(_chromium() is None, reason="needs Debian's chromium for a real browser")
def test_html_of_200_hosts_opens_fast_and_shows_grouped_hosts(tmp_path):
    """A 200-host report in headless Chromium: the page script runs quickly, hosts are folded
    into groups, and a screenshot is taken (kept in the test's tmp dir for a look)."""
    html = render(samples.fleet_run(control_planes=3, workers=197), "html")
    assert len(html) < 1_000_000
    page = tmp_path / "fleet.html"
    page.write_text(html, encoding="utf-8")
    dom = _dump_dom(page, tmp_path / "profile")
    setup_ms = int(re.search(r'<body data-setup-ms="(\d+)"', dom).group(1))
    assert setup_ms < 1000, setup_ms
    assert "<h3>194 workers identical</h3>" in dom
    shot = tmp_path / "fleet.png"
    _screenshot(page, shot, tmp_path / "profile2")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def _screenshot(page: Path, out: Path, profile: Path) -> None:
    proc = subprocess.Popen(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
         f"--user-data-dir={profile}", f"--screenshot={out}", "--window-size=1400,1800",
         page.as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        proc.wait(timeout=90)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
