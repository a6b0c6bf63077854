"""Fact requests for `apply`: what modules need to know about a host, fetched in ONE exec.

Each module states the facts it needs for its arguments (`FactRequest`s). The runner collects
the requests of every task of a play, de-duplicates them, turns them into one `sh` script
(`build_script`), runs it once per host and parses the output on the controller
(`parse_output`) into a `Facts` store. Nothing is parsed on the node: the script only prints
`stat` lines and base64 content, so nodes need nothing beyond sh and coreutils (and `ps` for the
kubelet process). A file is sized on the node before it is read: above
`limits.MAX_FILE_BYTES`, or not a regular file (a FIFO would block the read), the fact is an
error naming the file (harden/node/limits.py).

When a task plans a change, the runner feeds the change's resulting file state back into the
store (`Facts.set_file`), so later tasks of the play plan against the state the earlier tasks
leave behind, in check mode exactly as in a real run (in check mode a later play's fresh facts
get the earlier plays' planned changes again: harden.apply.host_state.HostRunState.unwritten).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import shlex
import time
from dataclasses import dataclass, field

from harden.apply import probes
from harden.node import configmap as node_configmap
from harden.node import etcd_census
from harden.node import markers
from harden.node.limits import MAX_FILE_BYTES, not_regular, too_large
from harden.node.paths import DEFAULT_KUBELET_CONFIG

FILE, GLOB, SYSCTL, KUBELET, CENSUS = "file", "glob", "sysctl", "kubelet", "etcd_census"
CONFIGMAP = "configmap"
UNIT, PACKAGE, MOUNTS, LINK, FIND = "unit", "package", "mounts", "link", "find"
RPM, PROBE, TREE = "rpm", "probe", "tree"
UNIT_PROPERTIES = ("LoadState", "ActiveState", "SubState", "UnitFileState")
_SECTION = markers.FACT
_GLOB_CHARS = re.compile(r"[*?\[]")
_SYSCTL_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class FactRequest:
    """One thing to learn about a host.

    kind: FILE (stat of `target`, plus its bytes when `content`), GLOB (every path matching the
    shell pattern `target`, recursively below each match when `recurse`; with `content` and
    without `recurse`, each match's bytes too), SYSCTL (the runtime
    value of key `target`), KUBELET (the running kubelet's argv and the KubeletConfiguration file
    it uses; `target` is the path assumed when no kubelet runs), CONFIGMAP (the ConfigMap
    `target` = "namespace/name", read with kubectl and the node's admin.conf).
    """

    kind: str
    target: str
    content: bool = False
    recurse: bool = False

    @property
    def key(self) -> tuple[str, str, bool]:
        """Requests with the same key are fetched once (content wins over stat-only)."""
        return (self.kind, self.target, self.recurse)


@dataclass(frozen=True)
class FileState:
    """What a path looks like on the node (`content` is None when only stat was asked for)."""

    path: str
    kind: str                    # "file" | "directory" | "other"
    mode: int                    # permission bits, e.g. 0o600
    owner: str
    group: str
    content: bytes | None = None

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.content).hexdigest() if self.content is not None else None


@dataclass(frozen=True)
class KubeletProcess:
    """The running kubelet (argv None when none runs) and the config file it reads."""

    argv: tuple[str, ...] | None
    config_path: str


@dataclass(frozen=True)
class ConfigMapState:
    """A ConfigMap as the node's admin.conf sees it. data None: no such object; unavailable:
    why it could not be read from this node (no admin.conf, no kubectl, an API error)."""

    ref: str                                  # namespace/name
    data: dict[str, str] | None = None
    resource_version: str = ""
    unavailable: str = ""

    def path(self, key: str) -> str:
        """The backup-index path of one of its keys (harden.node.configmap)."""
        namespace, name = self.ref.split("/", 1)
        return node_configmap.path_of(namespace, name, key)

    def sha256(self, key: str) -> str:
        return hashlib.sha256((self.data or {}).get(key, "").encode()).hexdigest()

    def with_value(self, key: str, value: str) -> "ConfigMapState":
        return ConfigMapState(self.ref, {**(self.data or {}), key: value},
                              self.resource_version)


class FactNotGathered(LookupError):
    """A plan needed a fact nobody asked for; the runner gathers `request` and plans again.

    Raised only when a module learns from one fact which other fact it needs (e.g. a manifest
    mounts a host directory under a different path), which costs one extra exec in that case.
    """

    def __init__(self, request: FactRequest):
        self.request = request
        super().__init__(f"fact not gathered: {request.kind} {request.target}")


@dataclass
class Facts:
    """Everything known about one host, as the plan of each task sees it."""

    files: dict[str, FileState | None] = field(default_factory=dict)
    globs: dict[tuple[str, bool], list[str]] = field(default_factory=dict)
    sysctls: dict[str, str | None] = field(default_factory=dict)
    kubelet_process: KubeletProcess | None = None
    with_content: set[str] = field(default_factory=set)
    census: "etcd_census.Census | None" = None
    configmaps: dict[str, ConfigMapState] = field(default_factory=dict)
    persist_notes: dict[str, str] = field(default_factory=dict)   # what a plan left node-only

    def configmap(self, ref: str) -> ConfigMapState:
        """The ConfigMap `ref` ("namespace/name") as read from this node (or as planned)."""
        if ref not in self.configmaps:
            raise FactNotGathered(FactRequest(CONFIGMAP, ref))
        return self.configmaps[ref]

    def set_configmap(self, state: ConfigMapState) -> None:
        self.configmaps[state.ref] = state
    units: dict[str, dict] = field(default_factory=dict)       # unit -> systemctl's view
    packages: dict[str, dict] = field(default_factory=dict)    # package -> dpkg's view
    mount_table: dict | None = None                            # fstab + /proc/mounts
    links: dict[str, str | None] = field(default_factory=dict)  # path -> symlink target
    listings: dict[tuple[str, bool], list[dict] | None] = field(default_factory=dict)
    rpms: dict[str, dict] = field(default_factory=dict)         # package -> rpm's view
    probes: dict[str, str] = field(default_factory=dict)        # probe name -> its output
    trees: dict[str, list[dict] | None] = field(default_factory=dict)   # dir -> its entries

    def tree(self, path: str) -> list[dict] | None:
        """Every entry below directory `path` (relative path, kind, mode, owner, group and a
        regular file's sha256, computed on the node: the bytes stay there), sorted by path;
        None when `path` is not a directory. Planned changes are not folded in: a tree is
        read once, by the task that copies it."""
        path = norm_path(path)
        if path not in self.trees:
            raise FactNotGathered(FactRequest(TREE, path))
        return self.trees[path]

    def rpm(self, name: str) -> dict:
        """rpm's view of a package: {"rpm": False} without rpm/dnf on the node, else
        installed and version."""
        if name not in self.rpms:
            raise FactNotGathered(FactRequest(RPM, name))
        return self.rpms[name]

    def probe(self, name: str) -> str:
        """The output of one of harden.apply.probes' read-only node scripts."""
        if name not in self.probes:
            raise FactNotGathered(FactRequest(PROBE, name))
        return self.probes[name]

    def listing(self, path: str, recurse: bool) -> list[dict] | None:
        """Entries below directory `path` (all depths when `recurse`), as `find -printf`
        reports them without following links; None when `path` is not a directory."""
        key = (norm_path(path), recurse)
        if key not in self.listings:
            raise FactNotGathered(FactRequest(FIND, key[0], recurse=recurse))
        return self.listings[key]

    def link(self, path: str) -> str | None:
        """Where `path` points when it is itself a symlink, else None."""
        path = norm_path(path)
        if path not in self.links:
            raise FactNotGathered(FactRequest(LINK, path))
        return self.links[path]

    def unit(self, name: str) -> dict:
        """systemctl's view of a unit: the UNIT_PROPERTIES and `enabled` (is-enabled's
        word, "" when systemctl knows no such unit file); {"systemctl": False} without
        systemctl on the node."""
        if name not in self.units:
            raise FactNotGathered(FactRequest(UNIT, name))
        return self.units[name]

    def set_unit(self, name: str, state: dict) -> None:
        self.units[name] = {**self.units.get(name, {}), **state}

    def package(self, name: str) -> dict:
        if name not in self.packages:
            raise FactNotGathered(FactRequest(PACKAGE, name))
        return self.packages[name]

    def mounts(self) -> dict:
        if self.mount_table is None:
            raise FactNotGathered(FactRequest(MOUNTS, "/proc/mounts"))
        return self.mount_table

    def etcd_census(self) -> "etcd_census.Census":
        """What etcd holds per resource and provider:key (counts only), read as this node's
        running kube-apiserver reads it."""
        if self.census is None:
            raise FactNotGathered(FactRequest(CENSUS, "kube-apiserver"))
        return self.census

    def file(self, path: str, content: bool = False) -> FileState | None:
        """State of `path`, or None when it does not exist."""
        path = norm_path(path)
        if path not in self.files or (content and path not in self.with_content
                                      and self.files[path] is not None
                                      and self.files[path].kind == "file"):
            raise FactNotGathered(FactRequest(FILE, path, content=content))
        return self.files[path]

    def glob(self, pattern: str, recurse: bool = False) -> list[FileState]:
        """Existing paths matching `pattern` (and below them when `recurse`), sorted."""
        if (pattern, recurse) not in self.globs:
            raise FactNotGathered(FactRequest(GLOB, pattern, recurse=recurse))
        found = (self.files.get(p) for p in self.globs[(pattern, recurse)])
        return [state for state in found if state is not None]

    def sysctl(self, key: str) -> str | None:
        if key not in self.sysctls:
            raise FactNotGathered(FactRequest(SYSCTL, key))
        return self.sysctls[key]

    def kubelet(self) -> KubeletProcess:
        if self.kubelet_process is None:
            raise FactNotGathered(FactRequest(KUBELET, DEFAULT_KUBELET_CONFIG, content=True))
        return self.kubelet_process

    def set_file(self, path: str, state: FileState | None) -> None:
        """Record what a planned change leaves behind, so later plans build on it."""
        path = norm_path(path)
        previous = self.files.get(path)
        if state is not None and state.content is None and previous is not None \
                and previous.content is not None and state.kind == "file":
            state = _with_content(state, previous.content)     # chmod/chown keep the bytes
        self.files[path] = state
        if state is None or state.content is not None:
            self.with_content.add(path)
        self._update_listings(path, state)
        for (pattern, recurse), paths in self.globs.items():
            if path in paths and state is None:
                paths.remove(path)
            elif state is not None and path not in paths and _covered(path, pattern, recurse):
                paths.append(path)
                paths.sort()

    def _update_listings(self, path: str, state: FileState | None) -> None:
        """A planned change seen by a later `find`: a removed path leaves its listing, a new
        one joins the listing of its directory (or an ancestor's, recursively)."""
        for (top, recurse), entries in self.listings.items():
            if entries is None or not path.startswith(top + "/"):
                continue
            if not recurse and "/" in path[len(top) + 1:]:
                continue
            entries[:] = [e for e in entries if e["path"] != path]
            if state is not None:
                entries.append({"path": path, "kind": {"file": "f", "directory": "d"}.get(
                    state.kind, "?"), "mode": state.mode, "uid": -1, "gid": -1,
                    "pw_name": state.owner, "gr_name": state.group,
                    "size": len(state.content or b""), "mtime": time.time()})

    def set_sysctl(self, key: str, value: str) -> None:
        self.sysctls[key] = value

    def merge(self, other: Facts) -> None:
        """Add facts gathered later (after a FactNotGathered) without losing planned state."""
        for path, state in other.files.items():
            self.files.setdefault(path, state)
            if path in other.with_content:
                self.with_content.add(path)
        for key, paths in other.globs.items():
            self.globs.setdefault(key, paths)
        for key, value in other.sysctls.items():
            self.sysctls.setdefault(key, value)
        if self.kubelet_process is None:
            self.kubelet_process = other.kubelet_process
        if self.census is None:
            self.census = other.census
        for ref, state in other.configmaps.items():
            self.configmaps.setdefault(ref, state)
        for key, value in other.listings.items():
            self.listings.setdefault(key, value)
        for key, value in other.links.items():
            self.links.setdefault(key, value)
        for key, value in other.units.items():
            self.units.setdefault(key, value)
        for key, value in other.packages.items():
            self.packages.setdefault(key, value)
        for key, value in other.rpms.items():
            self.rpms.setdefault(key, value)
        for key, value in other.probes.items():
            self.probes.setdefault(key, value)
        for key, value in other.trees.items():
            self.trees.setdefault(key, value)
        if self.mount_table is None:
            self.mount_table = other.mount_table


def norm_path(path: str) -> str:
    """'/a/b/' and '/a/b' are the same fact."""
    return path.rstrip("/") or "/"


def _covered(path: str, pattern: str, recurse: bool) -> bool:
    if fnmatch.fnmatchcase(path, pattern):
        return True
    if not recurse:
        return False
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts)))


def merge_requests(requests) -> list[FactRequest]:
    """De-duplicate requests, keeping first-seen order; content is fetched if any asks for it."""
    merged: dict[tuple, FactRequest] = {}
    for req in requests:
        old = merged.get(req.key)
        if old is None or (req.content and not old.content):
            merged[req.key] = req if old is None else FactRequest(
                old.kind, old.target, content=True, recurse=old.recurse)
    return list(merged.values())


# --- the node-side script ------------------------------------------------------------------

# A path behind a directory this user may not search looks absent to `[ -e ]`: hf_hidden
# tells the two apart (P), so a play without become hears "permission denied", not "missing".
_PRELUDE = r"""LC_ALL=C; export LC_ALL
hf_user=$(id -un 2>/dev/null || id -u)
hf_stat() { stat -L --printf 'N %n\nS %F|%a|%U|%G\n' -- "$1" 2>/dev/null || printf 'N %s\nX\n' "$1"; }
hf_hidden() {
  hf_d=$(dirname -- "$1")
  while [ ! -e "$hf_d" ] && [ "$hf_d" != / ]; do hf_d=$(dirname -- "$hf_d"); done
  [ -d "$hf_d" ] && [ ! -x "$hf_d" ]
}
hf_file() {
  if [ -e "$1" ]; then
    hf_stat "$1"
    if [ "$2" = 1 ] && [ -f "$1" ]; then
      if [ ! -r "$1" ]; then echo "U $hf_user"
      else sz=$(stat -L -c %s -- "$1")
        if [ "$sz" -gt __MAX__ ]; then echo "L $sz"
        else printf 'C '; head -c __MAX1__ < "$1" | base64 -w0; echo; fi
      fi
    elif [ "$2" = 1 ] && [ ! -d "$1" ]; then printf 'O %s\n' "$(stat -L -c %F -- "$1")"
    fi
  elif hf_hidden "$1"; then printf 'N %s\nP %s\n' "$1" "$hf_user"
  else printf 'N %s\nA\n' "$1"; fi
}
""".replace("__MAX1__", str(MAX_FILE_BYTES + 1)).replace("__MAX__", str(MAX_FILE_BYTES))


def shell_glob(pattern: str) -> str:
    """Quote every literal run of an absolute pattern so only * ? [..] are expanded by sh."""
    if not pattern.startswith("/"):
        raise ValueError(f"pattern must be an absolute path: {pattern!r}")
    out, pos = [], 0
    for match in re.finditer(r"\*|\?|\[[^\]/]+\]", pattern):
        if match.start() > pos:
            out.append(shlex.quote(pattern[pos:match.start()]))
        out.append(match.group(0))
        pos = match.end()
    if pos < len(pattern):
        out.append(shlex.quote(pattern[pos:]))
    return "".join(out)


def _literal_dir(pattern: str) -> str:
    """The directory a glob starts in (`/etc/kubernetes` for `/etc/kubernetes/*.conf`)."""
    found = _GLOB_CHARS.search(pattern)
    literal = pattern[:found.start()] if found else pattern
    return literal.rsplit("/", 1)[0] or "/" if found else literal.rstrip("/") or "/"


def _section(index: int, req: FactRequest) -> str:
    head = f"printf '%s\\n' {shlex.quote(_SECTION + str(index))}\n"
    q = shlex.quote(req.target)
    flag = "1" if req.content else "0"
    if req.kind == FILE:
        return head + f"hf_file {q} {flag}\n"
    if req.kind == GLOB:
        expand = shell_glob(req.target) if _GLOB_CHARS.search(req.target) else q
        walked = _GLOB_CHARS.search(req.target) or req.recurse   # its directory is read
        shown = _literal_dir(req.target) if walked else req.target
        seen = shown.rstrip("/") + "/." if walked else shown
        head += (f"if hf_hidden {shlex.quote(seen)}; then printf 'N %s\\nP %s\\n' "
                 f"{shlex.quote(shown)} \"$hf_user\"; fi\n")
        if req.recurse:
            return head + (f"for p in {expand}; do [ -e \"$p\" ] && find \"$p\" -exec stat -L "
                           "--printf 'N %n\\nS %F|%a|%U|%G\\n' {} + 2>/dev/null; done; :\n")
        return head + (f"for p in {expand}; do [ -e \"$p\" ] && hf_file \"$p\" {flag}; "
                       "done; :\n")
    if req.kind == SYSCTL:
        if not _SYSCTL_KEY.match(req.target):
            raise ValueError(f"not a sysctl key: {req.target!r}")
        proc = shlex.quote("/proc/sys/" + req.target.replace(".", "/"))
        return head + (f"if [ -r {proc} ]; then printf 'V '; base64 -w0 < {proc}; echo; "
                       "else echo A; fi\n")
    if req.kind == KUBELET:
        return head + (
            "pid=$(ps -ww -eo pid=,args= | awk '{n=$2; sub(/.*\\//, \"\", n)} "
            "n==\"kubelet\" {print $1; exit}')\n"
            "cfg=\n"
            "if [ -n \"$pid\" ] && [ -r /proc/$pid/cmdline ]; then\n"
            "  printf 'K '; base64 -w0 < /proc/$pid/cmdline; echo\n"
            "  cfg=$(tr '\\0' '\\n' < /proc/$pid/cmdline | awk 'w {print; exit} "
            "/^--config=/ {sub(/^--config=/, \"\"); print; exit} /^--config$/ {w=1}')\n"
            "else echo K; fi\n"
            f"[ -n \"$cfg\" ] || cfg={q}\n"
            "printf 'F %s\\n' \"$cfg\"; hf_file \"$cfg\" 1\n")
    if req.kind == CENSUS:
        return head + census_script()
    if req.kind == CONFIGMAP:
        return head + _configmap_section(req.target)
    if req.kind == UNIT:
        props = " ".join(f"-p {p}" for p in UNIT_PROPERTIES)
        return head + (f"if command -v systemctl >/dev/null 2>&1; then\n"
                       f"  systemctl show {props} -- {q} 2>/dev/null | sed 's/^/U /'\n"
                       f"  printf 'E %s\\n' \"$(systemctl is-enabled -- {q} 2>/dev/null)\"\n"
                       "else echo 'U none'; fi\n")
    if req.kind == PACKAGE:
        return head + (f"if command -v dpkg-query >/dev/null 2>&1; then\n"
                       f"  dpkg-query -W -f='P ${{Status}}|${{Version}}|${{Architecture}}\\n' "
                       f"-- {q} 2>/dev/null || echo 'P absent'\n"
                       f"  printf 'C '; (apt-cache policy -- {q} 2>/dev/null | "
                       "awk '/Candidate:/ {print $2; exit}'); echo\n"
                       "else echo 'P none'; fi\n")
    if req.kind == RPM:
        return head + ("if command -v rpm >/dev/null 2>&1 && { command -v dnf || command -v dnf5 "
                       "|| command -v yum; } >/dev/null 2>&1; then\n"
                       f"  rpm -q --qf 'P %{{VERSION}}-%{{RELEASE}}\\n' -- {q} 2>/dev/null "
                       "| grep '^P ' || echo 'P absent'\n"
                       "else echo 'P none'; fi\n")
    if req.kind == PROBE:
        return head + f"({probes.script(req.target)}) 2>/dev/null | base64 -w0; echo\n"
    if req.kind == FIND:
        depth = "" if req.recurse else " -maxdepth 1"
        return head + (f"if [ -d {q} ]; then find {q} -mindepth 1{depth} -printf "
                       "'F %y|%m|%U|%G|%u|%g|%s|%T@|%P\\n' 2>/dev/null; echo 'F .'; "
                       "else echo 'F -'; fi\n")
    if req.kind == TREE:
        return head + ("if [ -d Q ]; then find Q -mindepth 1 -printf 'T %y|%m|%u|%g|%P\\n' "
                       "2>/dev/null; find Q -mindepth 1 -type f -exec sha256sum -- {} + "
                       "2>/dev/null | sed 's/^/H /'; echo 'T .'; else echo 'T -'; fi\n"
                       ).replace("Q", q)
    if req.kind == LINK:
        return head + (f"if [ -L {q} ]; then printf 'L '; readlink -- {q} | base64 -w0; echo; "
                       "else echo 'L -'; fi\n")
    if req.kind == MOUNTS:
        return head + ("printf 'F '; base64 -w0 < /etc/fstab 2>/dev/null; echo\n"
                       "printf 'M '; base64 -w0 < /proc/self/mounts; echo\n")
    raise ValueError(f"unknown fact kind {req.kind!r}")


def _configmap_section(ref: str) -> str:
    """Y none <b64 why> | Y <rc> <b64 stdout> <b64 stderr>: `kubectl get -o json` of the
    ConfigMap with the node's admin.conf (empty stdout and rc 0: no such object)."""
    namespace, name = ref.split("/", 1)
    node_configmap.path_of(namespace, name, "x")            # checks the parts
    admin = shlex.quote(node_configmap.ADMIN_CONF)
    return (f"if [ ! -e {admin} ]; then echo \"Y none $(printf '%s' '{node_configmap.ADMIN_CONF} "
            "is not on this node' | base64 -w0)\"\n"
            "elif ! command -v kubectl >/dev/null 2>&1; then echo \"Y none $(printf '%s' "
            "'kubectl is not installed on this node' | base64 -w0)\"\n"
            f"else hf_e=$(mktemp); hf_o=$(kubectl --kubeconfig={admin} --request-timeout=20s "
            f"-n {namespace} get configmap {name} --ignore-not-found -o json 2>\"$hf_e\" "
            "</dev/null); hf_rc=$?\n"
            "  echo \"Y $hf_rc $(printf '%s' \"$hf_o\" | base64 -w0) $(base64 -w0 < \"$hf_e\")\"; "
            "rm -f \"$hf_e\"; fi\n")


def parse_configmap(ref: str, line: str) -> ConfigMapState:
    """The Y record of `_configmap_section`."""
    parts = line.split(" ")
    if len(parts) < 3 or parts[0] != "Y":
        raise ValueError(f"fact probe output for configmap {ref} is malformed")
    if parts[1] == "none":
        return ConfigMapState(ref, unavailable=base64.b64decode(parts[2]).decode())
    rc, out = int(parts[1]), base64.b64decode(parts[2]).decode("utf-8", "replace")
    err = base64.b64decode(parts[3]).decode("utf-8", "replace") if len(parts) > 3 else ""
    if rc != 0:
        why = err.strip().splitlines()[-1] if err.strip() else f"exit {rc}"
        return ConfigMapState(ref, unavailable=f"kubectl get configmap {ref} failed: {why}")
    if not out.strip():
        return ConfigMapState(ref)
    try:
        obj = json.loads(out)
    except ValueError as exc:
        return ConfigMapState(ref, unavailable=f"kubectl output for {ref} is not JSON: {exc}")
    data = obj.get("data") or {}
    return ConfigMapState(ref, {str(k): str(v) for k, v in data.items()},
                          str((obj.get("metadata") or {}).get("resourceVersion", "")))


def census_script() -> str:
    """sh: the etcd census of harden.node.etcd_census for the running kube-apiserver (C|, X|
    and Y| records)."""
    return (census_functions() +
            "if apiserver_pid 0; then\n"
            "  argvals \"$apid\" --encryption-provider-config; v=$A1\n"
            "  lay=''; case $v in /*) lay=$(enc_layout \"$R/proc/$apid/root$v\")\n"
            "    printf 'L|%s\\n' \"$lay\";; esac\n"
            "  etcd_census \"$apid\" \"$(census_names \"$lay\")\"\n"
            "else echo 'C|none|no kube-apiserver runs on this node'; fi\n")


def census_functions() -> str:
    """sh function definitions of the census. R, the root prefixed to /proc paths, is empty on
    nodes; $HARDEN_CENSUS_ROOT lets tests run the real script against a fake node tree."""
    return ("R=${HARDEN_CENSUS_ROOT:-}\n"
            + APISERVER_PID + etcd_census.SCRIPT.strip() + "\n")


# `apiserver_pid SECONDS` leaves the running kube-apiserver's pid in $apid. A task right after
# a manifest write finds the static pod restarting: the old process gone, the new one not yet
# started (or gone between `ps` and reading its /proc). For up to SECONDS it looks again each
# second rather than calling the API server absent; 0 looks once (a fact gathered in check mode
# must not wait). Returns 1 when none ran in that time.
APISERVER_PID = r"""apiserver_pid() { ap_w=0
  while :; do
    apid=$(ps -ww -eo pid=,args= | awk '{n=$2; sub(/.*\//, "", n)} n=="kube-apiserver" {print $1; exit}')
    [ -n "$apid" ] && [ -r "$R/proc/$apid/cmdline" ] && return 0
    [ "$ap_w" -lt "$1" ] || return 1
    ap_w=$((ap_w + 1)); sleep 1
  done; }
"""
# How long the modules that read etcd through the API server's flags wait for it to run: the
# kubelet restarts a static pod within seconds, a pulled image or a slow node within a minute.
APISERVER_WAIT = 120


def build_script(requests) -> str:
    """One sh script answering every request; its output is read by `parse_output`."""
    reqs = merge_requests(requests)
    return _PRELUDE + "".join(_section(i, r) for i, r in enumerate(reqs))


def parse_output(requests, stdout: str) -> Facts:
    """Turn the script's output into Facts (requests must be the list given to build_script)."""
    reqs = merge_requests(requests)
    sections: dict[int, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith(_SECTION):
            current = sections.setdefault(int(line[len(_SECTION):]), [])
        elif current is not None:
            current.append(line)
    facts = Facts()
    for index, req in enumerate(reqs):
        lines = sections.get(index)
        if lines is None:
            raise ValueError(f"fact probe output lacks the answer for {req.kind} {req.target}")
        _parse_section(req, lines, facts)
    return facts


def _parse_states(lines: list[str], facts: Facts, with_content: bool) -> list[str]:
    """Read N/S/C/A/X/U records into facts.files; returns the paths in order."""
    paths: list[str] = []
    path = None
    for line in lines:
        tag, _, rest = line.partition(" ")
        if tag == "N":
            path = norm_path(rest)
            paths.append(path)
        elif tag == "A":
            facts.files[path] = None
            facts.with_content.add(path)
        elif tag == "S":
            state, known = _state_from_stat(path, rest), facts.files.get(path)
            if known is not None and known.content is not None:
                state = _with_content(state, known.content)   # another request read it
            facts.files[path] = state
        elif tag == "C":
            content = base64.b64decode(rest)
            if len(content) > MAX_FILE_BYTES:           # grew after it was sized
                raise too_large(path, len(content))
            facts.files[path] = _with_content(facts.files[path], content)
            facts.with_content.add(path)
        elif tag == "L":
            raise too_large(path, int(rest))
        elif tag == "O":
            raise not_regular(path, rest or "special file")
        elif tag == "U":
            raise ValueError(f"{path}: permission denied as user {rest or '?'} (it exists but "
                             "cannot be read); add `become: true` to the play or task")
        elif tag == "P":
            raise ValueError(f"{path}: permission denied as user {rest or '?'} (a directory on "
                             "the way cannot be searched, so whether it exists is unknown); "
                             "add `become: true` to the play or task")
        elif tag == "X":
            raise ValueError(f"{path}: exists but stat failed")
    if with_content:
        facts.with_content.update(paths)    # directories have no content to fetch
    return paths


def _state_from_stat(path: str, rest: str) -> FileState:
    ftype, mode, owner, group = rest.split("|")
    kind = "file" if ftype.startswith("regular") else "directory" if ftype == "directory" \
        else "other"
    return FileState(path, kind, int(mode, 8), owner, group)


def _with_content(state: FileState, content: bytes) -> FileState:
    return FileState(state.path, state.kind, state.mode, state.owner, state.group, content)


def _parse_section(req: FactRequest, lines: list[str], facts: Facts) -> None:
    if req.kind == FILE:
        _parse_states(lines, facts, req.content)
    elif req.kind == GLOB:
        paths = _parse_states(lines, facts, req.content and not req.recurse)
        facts.globs[(req.target, req.recurse)] = sorted(set(paths))
    elif req.kind == SYSCTL:
        value = lines[0] if lines else "A"
        facts.sysctls[req.target] = None if value == "A" else \
            base64.b64decode(value[2:]).decode().strip().replace("\t", " ")
    elif req.kind == CONFIGMAP:
        facts.configmaps[req.target] = parse_configmap(req.target, lines[0] if lines else "")
    elif req.kind == UNIT:
        facts.units[req.target] = _parse_unit(lines)
    elif req.kind == PACKAGE:
        facts.packages[req.target] = _parse_package(lines)
    elif req.kind == RPM:
        word = lines[0][2:] if lines and lines[0].startswith("P ") else "none"
        facts.rpms[req.target] = {"rpm": False} if word == "none" else {
            "rpm": True, "installed": word != "absent",
            "version": None if word == "absent" else word}
    elif req.kind == PROBE:
        facts.probes[req.target] = base64.b64decode(lines[0] if lines else "").decode(
            errors="replace")
    elif req.kind == FIND:
        facts.listings[(norm_path(req.target), req.recurse)] = _parse_listing(req.target, lines)
    elif req.kind == TREE:
        facts.trees[norm_path(req.target)] = _parse_tree(req.target, lines)
    elif req.kind == LINK:
        value = lines[0][2:] if lines and lines[0].startswith("L ") else "-"
        facts.links[norm_path(req.target)] = None if value == "-" else \
            base64.b64decode(value).decode(errors="replace").rstrip("\n")
    elif req.kind == MOUNTS:
        facts.mount_table = {line[0]: base64.b64decode(line[2:]).decode(errors="replace")
                             for line in lines if line[:2] in ("F ", "M ")}
    elif req.kind == CENSUS:
        census = etcd_census.Census()
        for line in lines:
            etcd_census.parse_line(census, line)
        facts.census = census
    elif req.kind == KUBELET:
        argv = None
        if lines and lines[0].startswith("K "):
            argv = tuple(base64.b64decode(lines[0][2:]).decode().split("\0"))
            argv = tuple(a for a in argv if a) or None
        config = next(line[2:] for line in lines if line.startswith("F "))
        facts.kubelet_process = KubeletProcess(argv, config)
        _parse_states([line for line in lines[1:] if not line.startswith("F ")], facts, True)


def _parse_unit(lines: list[str]) -> dict:
    if lines == ["U none"]:
        return {"systemctl": False}
    state = {"systemctl": True, "enabled": ""}
    for line in lines:
        if line.startswith("U ") and "=" in line:
            key, _, value = line[2:].partition("=")
            state[key] = value
        elif line.startswith("E "):
            state["enabled"] = line[2:].strip()
    return state


def _parse_package(lines: list[str]) -> dict:
    """dpkg's status of a package: installed (and version), or not; candidate from apt."""
    found = {"dpkg": True, "installed": False, "version": None, "candidate": None}
    for line in lines:
        if line == "P none":
            return {"dpkg": False}
        if line.startswith("P ") and "|" in line:
            status, version, _arch = line[2:].split("|", 2)
            found["installed"] = status.split()[-1:] == ["installed"]
            found["config_files"] = status.split()[-1:] == ["config-files"]
            found["version"] = version if found["installed"] else None
        elif line.startswith("C "):
            candidate = line[2:].strip()
            found["candidate"] = None if candidate in ("", "(none)") else candidate
    return found


def _parse_listing(top: str, lines: list[str]) -> list[dict] | None:
    if "F -" in lines:
        return None
    out = []
    for line in lines:
        if not line.startswith("F ") or line == "F .":
            continue
        kind, mode, uid, gid, user, group, size, mtime, rel = line[2:].split("|", 8)
        out.append({"path": norm_path(top) + "/" + rel, "kind": kind, "mode": int(mode, 8),
                    "uid": int(uid), "gid": int(gid), "pw_name": user, "gr_name": group,
                    "size": int(size), "mtime": float(mtime)})
    return out


def _parse_tree(top: str, lines: list[str]) -> list[dict] | None:
    """T records (kind|mode|owner|group|relative path) and H records (sha256sum's lines)."""
    if "T -" in lines:
        return None
    sums, entries = {}, []
    for line in lines:
        if line.startswith("H ") and "  " in line:
            digest, _, path = line[2:].partition("  ")
            sums[path] = digest
    for line in lines:
        if not line.startswith("T ") or line == "T .":
            continue
        kind, mode, owner, group, rel = line[2:].split("|", 4)
        entries.append({"rel": rel, "kind": kind, "mode": int(mode, 8), "owner": owner,
                        "group": group})
    base = norm_path(top)
    for entry in entries:
        entry["sha256"] = sums.get(f"{base}/{entry['rel']}" if base != "/" else
                                   "/" + entry["rel"])
    return sorted(entries, key=lambda e: e["rel"])
