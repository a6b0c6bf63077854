"""The etcd census against a real etcd: read in pages at one revision, by etcdctl and by the
v3 JSON gateway, it counts every value once, leaves out what was written after it started,
reads only the directories it is given, and reports a read it could not finish instead of
partial counts."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harden.node import etcd_census

pytestmark = pytest.mark.skipif(not shutil.which("etcd") or not shutil.which("etcdctl"),
                                reason="the Debian etcd-server/etcd-client packages are not installed")

APISERVER_PID = 4242
SECRETS_ENCRYPTED, SECRETS_PLAIN, CONFIGMAPS = 23, 3, 3


@pytest.fixture(scope="module")
def etcd(lab_factory, tmp_path_factory):
    """A real etcd on a loopback address of this session's range, with a fake node root whose
    kube-apiserver names it in --etcd-servers; stopped after the module."""
    base = tmp_path_factory.mktemp("etcd")
    address = f"{lab_factory.free_net()}.250"
    client, peer = f"http://{address}:2379", f"http://{address}:2380"
    process = subprocess.Popen(
        ["etcd", "--name", "census", "--data-dir", str(base / "data"),
         "--listen-client-urls", client, "--advertise-client-urls", client,
         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
         "--initial-cluster", f"census={peer}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ctl = [shutil.which("etcdctl"), f"--endpoints={client}"]
        deadline = time.monotonic() + 30
        while subprocess.run([*ctl, "endpoint", "health"], capture_output=True).returncode:
            assert time.monotonic() < deadline and process.poll() is None, "etcd did not start"
            time.sleep(0.1)
        puts = [(f"/registry/secrets/ns/s{i:02}", f"k8s:enc:aescbc:v1:key1:{'x' * i}")
                for i in range(SECRETS_ENCRYPTED)]
        puts += [(f"/registry/secrets/other/p{i}", "plain") for i in range(SECRETS_PLAIN)]
        puts += [(f"/registry/configmaps/ns/c{i}", "plain") for i in range(CONFIGMAPS)]
        puts += [("/registry/pods/ns/x", "plain"), ("/registry0", "outside the prefix")]
        for key, value in puts:
            subprocess.run([*ctl, "put", key, value], check=True, capture_output=True)
        root = base / "root"
        (root / f"proc/{APISERVER_PID}").mkdir(parents=True)
        (root / f"proc/{APISERVER_PID}/cmdline").write_bytes(
            f"kube-apiserver\0--etcd-servers={client}\0".encode())
        yield {"root": root, "ctl": ctl, "base": base}
    finally:
        process.terminate()
        process.wait(timeout=30)


def census(etcd, dirs: str, page: int, path: str | None = None) -> etcd_census.Census:
    """The census script itself, run here against the fake root and the real etcd."""
    script = f"R={etcd['root']}\n{etcd_census.SCRIPT}\netcd_census {APISERVER_PID} '{dirs}'\n"
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": path or "/usr/bin:/bin", "LC_ALL": "C",
                               "HARDEN_CENSUS_PAGE": str(page)})
    assert done.returncode == 0, done.stderr
    result = etcd_census.Census()
    for line in done.stdout.splitlines():
        etcd_census.parse_line(result, line)
    return result


def tools_dir(etcd, name: str, tools: tuple[str, ...]) -> Path:
    """A PATH directory holding only `tools` (so a method can be left out)."""
    path = etcd["base"] / name
    path.mkdir(exist_ok=True)
    for tool in tools:
        if not (path / tool).exists():
            (path / tool).symlink_to(shutil.which(tool))
    return path


SECRETS = {"aescbc:key1": SECRETS_ENCRYPTED, "identity": SECRETS_PLAIN}


@pytest.mark.parametrize("page", [500, 4, 2])
def test_every_value_is_counted_once_however_the_keys_fall_into_pages(etcd, page):
    result = census(etcd, "", page)
    assert result.method == "etcdctl" and not result.error
    assert result.counts == {"secrets": SECRETS}


def test_the_json_gateway_pages_the_same_way(etcd):
    no_etcdctl = tools_dir(etcd, "no-etcdctl", ("sh", "tr", "awk", "base64", "curl", "head"))
    result = census(etcd, "secrets configmaps", 3, path=str(no_etcdctl))
    assert result.method == "etcd JSON gateway (curl)"
    assert result.counts == {"secrets": SECRETS, "configmaps": {"identity": CONFIGMAPS}}


def test_only_the_given_directories_are_read_and_many_read_as_one_range(etcd):
    assert census(etcd, "configmaps", 2).counts == {"configmaps": {"identity": CONFIGMAPS}}
    everything = {"secrets": SECRETS, "configmaps": {"identity": CONFIGMAPS},
                  "pods": {"identity": 1}}
    assert census(etcd, "--all", 5).counts == everything
    assert census(etcd, "secrets configmaps a b c", 5).counts == everything


def test_values_written_while_the_census_pages_are_not_counted(etcd):
    """Each etcdctl call writes a new secret after it reads, past the page it read: the census
    reads at the revision of its first page, so it counts what was there when it started, as a
    snapshot would."""
    shims = tools_dir(etcd, "writing", ("sh", "tr", "awk", "base64", "head"))
    ctl = " ".join(etcd["ctl"])
    (shims / "etcdctl").write_text(
        f"#!/bin/sh\n{etcd['ctl'][0]} \"$@\"; rc=$?\n"
        f"{ctl} put /registry/secrets/ns/zz-new-$$ plain >/dev/null\nexit $rc\n")
    (shims / "etcdctl").chmod(0o755)
    try:
        assert census(etcd, "", 4, path=str(shims)).counts == {"secrets": SECRETS}
    finally:
        subprocess.run([*etcd["ctl"], "del", "--prefix", "/registry/secrets/ns/zz-new-"],
                       check=True, capture_output=True)


def test_a_revision_compacted_between_pages_is_an_error_not_partial_counts(etcd):
    shims = tools_dir(etcd, "compacting", ("sh", "tr", "awk", "base64", "head", "sed"))
    ctl = " ".join(etcd["ctl"])
    (shims / "etcdctl").write_text(
        f"#!/bin/sh\n{etcd['ctl'][0]} \"$@\"; rc=$?\n"
        f"rev=$({ctl} put /registry/events/e x -w json | sed 's/.*\"revision\":\\([0-9]*\\).*/\\1/')\n"
        f"{ctl} compact \"$rev\" >/dev/null\nexit $rc\n")
    (shims / "etcdctl").chmod(0o755)
    result = census(etcd, "", 4, path=str(shims))
    assert not result.available
    assert "required revision has been compacted" in result.error
