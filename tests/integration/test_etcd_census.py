"""The etcd census against a real etcd: read in pages at one revision, by etcdctl, by the v3
JSON gateway and by etcdctl in the etcd container, it counts every value once, leaves out what
was written after it started, reads only where the named resources are stored, and reports a
read it could not finish, whole, instead of partial counts."""

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
        puts += [("/registry/pods/ns/x", "plain"), ("/registry0", "outside the prefix"),
                 ("/registry/services/specs/ns/web", "plain"),
                 ("/registry/services/specs/ns/db", "plain"),
                 ("/registry/services/endpoints/ns/web", "plain"),
                 ("/registry/serving.knative.dev/services/ns/hello", "plain"),
                 ("/registry/ranges/serviceips", "plain")]
        for key, value in puts:
            subprocess.run([*ctl, "put", key, value], check=True, capture_output=True)
        root = base / "root"
        (root / f"proc/{APISERVER_PID}").mkdir(parents=True)
        (root / f"proc/{APISERVER_PID}/cmdline").write_bytes(
            f"kube-apiserver\0--etcd-servers={client}\0".encode())
        yield {"root": root, "ctl": ctl, "base": base, "client": client}
    finally:
        process.terminate()
        process.wait(timeout=30)


def census(etcd, names: str, page: int, path: str | None = None,
           prefix_flag: str = "") -> etcd_census.Census:
    """The census script itself, run here against the fake root and the real etcd."""
    pid = APISERVER_PID + 1 if prefix_flag else APISERVER_PID
    if prefix_flag:
        (etcd["root"] / f"proc/{pid}").mkdir(exist_ok=True)
        (etcd["root"] / f"proc/{pid}/cmdline").write_bytes(
            f"kube-apiserver\0--etcd-servers={etcd['client']}\0{prefix_flag}\0".encode())
    script = f"R={etcd['root']}\n{etcd_census.SCRIPT}\netcd_census {pid} '{names}'\n"
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": path or "/usr/bin:/bin", "LC_ALL": "C",
                               "HARDEN_CENSUS_PAGE": str(page)})
    assert done.returncode == 0, done.stderr
    result = etcd_census.Census()
    for line in done.stdout.splitlines():
        etcd_census.parse_line(result, line)
    return result


BASICS = ("sh", "tr", "awk", "base64", "head", "sed", "grep")


def tools_dir(etcd, name: str, tools: tuple[str, ...] = BASICS) -> Path:
    """A PATH directory holding only `tools` (so a method can be left out)."""
    path = etcd["base"] / name
    path.mkdir(exist_ok=True)
    for tool in tools:
        if not (path / tool).exists():
            (path / tool).symlink_to(shutil.which(tool))
    return path


def shim(path: Path, name: str, body: str) -> None:
    """A script in place of a tool; a link already there is replaced, never written through
    (that would rewrite the real tool)."""
    target = path / name
    if target.is_symlink() or target.exists():
        target.unlink()
    target.write_text(f"#!/bin/sh\n{body}\n")
    target.chmod(0o755)


def method_path(etcd, method: str, after_read: str = "") -> str:
    """A PATH on which the census reads etcd by `method`, running `after_read` (sh) after each
    read: etcdctl on the host; curl (no etcdctl); or a crictl whose `exec` runs etcdctl as the
    etcd container would (its certificate flags, paths inside the container, dropped)."""
    real = etcd["ctl"][0]
    path = tools_dir(etcd, f"{method}-{abs(hash(after_read))}")
    if method == "etcdctl":
        shim(path, "etcdctl", f'{real} "$@"; rc=$?\n{after_read}\nexit $rc')
    elif method == "curl":
        shim(path, "curl", f'{shutil.which("curl")} "$@"; rc=$?\n{after_read}\nexit $rc')
    else:
        shim(path, "crictl", 'case $1 in ps) echo c0ffee; exit 0;; esac\n'
                             'shift 3; set -- $(printf "%s\\n" "$@" | grep -v "^--\\(cacert\\|cert\\|key\\)=")\n'
                             f'{real} "$@"; rc=$?\n{after_read}\nexit $rc')
    return str(path)


SECRETS = {"aescbc:key1": SECRETS_ENCRYPTED, "identity": SECRETS_PLAIN}
LABELS = {"etcdctl": "etcdctl", "curl": "etcd JSON gateway (curl)",
          "crictl": "etcdctl in the etcd container (crictl exec)"}
METHODS = list(LABELS)


@pytest.mark.parametrize("page", [500, 4, 2])
@pytest.mark.parametrize("method", METHODS)
def test_every_value_is_counted_once_however_the_keys_fall_into_pages(etcd, method, page):
    result = census(etcd, "", page, path=method_path(etcd, method))
    assert result.method == LABELS[method] and not result.error
    assert result.counts == {"secrets": SECRETS}


def test_only_the_named_resources_are_read_from_where_the_api_server_stores_them(etcd):
    assert census(etcd, "configmaps", 2).counts == {"secrets": SECRETS,
                                                    "configmaps": {"identity": CONFIGMAPS}}
    assert census(etcd, "services endpoints", 2).counts == {
        "secrets": SECRETS, "services": {"identity": 2}, "endpoints": {"identity": 1}}
    everything = {"secrets": SECRETS, "configmaps": {"identity": CONFIGMAPS},
                  "pods": {"identity": 1}, "services": {"identity": 2},
                  "endpoints": {"identity": 1}, "services.serving.knative.dev": {"identity": 1}}
    read = census(etcd, "*.*", 5)
    assert (read.counts, read.unknown) == (everything, {"ranges": {"identity": 1}})
    # Knative's services, not the core ones
    assert census(etcd, "services.serving.knative.dev", 2).counts == {
        "secrets": SECRETS, "services.serving.knative.dev": {"identity": 1}}


@pytest.mark.parametrize("flag, keys", [
    ("--etcd-prefix=/other/", "/other/secrets/ns/"), ("--etcd-prefix=other", "/other/secrets/ns/"),
    ("--etcd-prefix=/", "/secrets/ns/")])
def test_the_etcd_prefix_is_read_as_the_api_server_joins_it(etcd, flag, keys):
    for i in range(3):
        subprocess.run([*etcd["ctl"], "put", f"{keys}s{i}", "plain"], check=True, capture_output=True)
    try:
        result = census(etcd, "", 2, prefix_flag=flag)
        assert (result.method, result.counts) == ("etcdctl", {"secrets": {"identity": 3}})
    finally:
        subprocess.run([*etcd["ctl"], "del", "--prefix", keys], check=True, capture_output=True)


@pytest.mark.parametrize("method", METHODS)
def test_values_written_while_the_census_pages_are_not_counted(etcd, method):
    """Each read is followed by a new secret written past the page it read: the census
    reads at the revision of its first page, so it counts what was there when it started, as a
    snapshot would."""
    ctl = " ".join(etcd["ctl"])
    path = method_path(etcd, method, f"{ctl} put /registry/secrets/ns/zz-new-$$ plain >/dev/null")
    try:
        assert census(etcd, "", 4, path=path).counts == {"secrets": SECRETS}
    finally:
        subprocess.run([*etcd["ctl"], "del", "--prefix", "/registry/secrets/ns/zz-new-"],
                       check=True, capture_output=True)


@pytest.mark.parametrize("method", METHODS)
def test_a_revision_compacted_between_pages_is_an_error_not_partial_counts(etcd, method):
    ctl = " ".join(etcd["ctl"])
    path = method_path(etcd, method, (
        f"rev=$({ctl} put /compaction-marker x -w json | sed 's/.*\"revision\":\\([0-9]*\\).*/\\1/')\n"
        f"{ctl} compact \"$rev\" >/dev/null"))
    result = census(etcd, "", 4, path=path)
    assert not result.available
    assert result.error.startswith(LABELS[method] + ": ")
    assert "required revision has been compacted" in result.error


def test_an_unreadable_etcd_is_reported_whole_for_every_way_tried(etcd):
    path = tools_dir(etcd, "failing", BASICS + ("curl",))
    shim(path, "etcdctl", "echo 'Error: x509: certificate is valid for 127.0.0.1, ::1, not "
                          "10.0.0.1' >&2; exit 1")
    shim(path, "crictl", "exit 0")                       # no etcd container
    (etcd["root"] / "proc/4300").mkdir(exist_ok=True)
    (etcd["root"] / "proc/4300/cmdline").write_bytes(
        b"kube-apiserver\0--etcd-servers=http://127.0.0.1:1\0")
    script = f"R={etcd['root']}\n{etcd_census.SCRIPT}\netcd_census 4300 ''\n"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PATH": str(path), "LC_ALL": "C"}).stdout
    assert out.startswith("C|none|etcdctl: Error: x509: certificate is valid for 127.0.0.1, ::1, "
                          "not 10.0.0.1; etcd JSON gateway (curl): curl: (7) "), out
    assert out.count("\n") == 1
