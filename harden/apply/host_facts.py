"""`gather_facts`: the `ansible_*` facts hardening content branches on, gathered in the play's one
fact exec and derived on the controller the way Ansible's setup module derives them.

The node only prints raw material (os-release, uname, PID 1's name, which package tools exist,
/proc/self/mounts with statfs numbers, the environment, the container and DMI hints); nothing
is parsed there, so a node needs sh and coreutils only. Which names come out and how they are
decided follows ansible-core's fact collectors (distribution, platform, service_mgr, pkg_mgr,
mounts, env, virtual); `tests/integration/test_gather_facts.py` compares the values with what
`ansible -m setup` reports on the same lab node.
"""

from __future__ import annotations

import base64
import datetime
import re

MARK = "@@harden-hostfact "

# Raw material, one base64 value per name (a value may hold any byte).
SCRIPT = r"""hx() { printf '%s%s\n' '@@harden-hostfact ' "$1"; shift; "$@" 2>/dev/null | base64 -w0; echo; }
hx env env -0
hx os_release cat /etc/os-release
hx debian_version cat /etc/debian_version
hx uname_s uname -s
hx uname_r uname -r
hx uname_v uname -v
hx uname_m uname -m
hx uname_n uname -n
hf_fqdn() {
  n=$(uname -n); ip=$(getent hosts "$n" | awk '{print $1; exit}')
  if [ -z "$ip" ]; then echo "$n"; return 0; fi
  getent hosts "$ip" | awk 'NR == 1 {for (i = 2; i <= NF; i++) if (index($i, ".")) {print $i; exit}; print $2; exit}'
}
hx fqdn hf_fqdn
hx comm cat /proc/1/comm
hx paths sh -c 'for p in /run/systemd/system /dev/.run/systemd /dev/.systemd /sbin/openrc /etc/init.d /usr/bin/apt-get /usr/bin/dnf /usr/bin/yum /usr/bin/zypper /sbin/apk /usr/bin/pacman /usr/bin/rpm /.dockerenv /.dockerinit /proc/vz /proc/lve /proc/bc /proc/xen; do [ -e "$p" ] && echo "$p"; done; :'
hx cgroup cat /proc/1/cgroup
hx pid1_env sh -c 'tr "\000" "\n" < /proc/1/environ'
hx systemd_container cat /run/systemd/container
hx dmi sh -c 'cat /sys/devices/virtual/dmi/id/product_name /sys/devices/virtual/dmi/id/sys_vendor'
hx mounts cat /proc/self/mounts
hx statfs sh -c 'while read -r d m r; do printf "%s\t" "$m"; stat -f -c "%S %s %b %f %a %c %d" -- "$m" 2>/dev/null || echo; done < /proc/self/mounts'
hx binds sh -c 'findmnt -lnuo TARGET,SOURCE'
hx uuids sh -c 'lsblk -ln --output UUID,NAME'
hx date date '+%s %N %z %Z'
hx tz sh -c 'y=$(date +%Y); date -d "$y-01-01 12:00" "+%z %Z"; date -d "$y-07-01 12:00" "+%z %Z"'
hx selinux sh -c 'for d in /lib /usr/lib /lib64 /usr/lib64 /lib/*-linux-gnu /usr/lib/*-linux-gnu; do [ -e "$d/libselinux.so.1" ] && { echo lib; break; }; done; grep -qw selinuxfs /proc/self/mounts && [ -e /sys/fs/selinux/enforce ] && echo "enforce $(cat /sys/fs/selinux/enforce)" && echo "policyvers $(cat /sys/fs/selinux/policyvers)" && sed -n "s/^SELINUX\(TYPE\)\{0,1\}=/config\1 /p" /etc/selinux/config; :'
"""

OS_FAMILY = {name: family for family, names in {
    "RedHat": ("RedHat", "RHEL", "Fedora", "CentOS", "Scientific", "OracleLinux", "Amazon",
               "AlmaLinux", "Rocky", "CloudLinux", "EulerOS", "openEuler", "TencentOS"),
    "Debian": ("Debian", "Ubuntu", "Raspbian", "Linux Mint", "Devuan", "Kali", "Pop!_OS",
               "Neon", "Deepin"),
    "Suse": ("SLES", "SLED", "openSUSE", "openSUSE Leap", "openSUSE Tumbleweed", "SLES_SAP"),
    "Archlinux": ("Archlinux", "Manjaro"), "Gentoo": ("Gentoo",), "Alpine": ("Alpine",),
}.items() for name in names}
DISTRIBUTION_IDS = {"debian": "Debian", "ubuntu": "Ubuntu", "rhel": "RedHat",
                    "centos": "CentOS", "fedora": "Fedora", "amzn": "Amazon",
                    "ol": "OracleLinux", "almalinux": "AlmaLinux", "rocky": "Rocky",
                    "sles": "SLES", "sled": "SLED", "opensuse-leap": "openSUSE Leap",
                    "opensuse-tumbleweed": "openSUSE Tumbleweed", "arch": "Archlinux",
                    "alpine": "Alpine", "gentoo": "Gentoo", "raspbian": "Debian",
                    "linuxmint": "Linux Mint", "kali": "Kali", "devuan": "Devuan"}
PKG_MGRS = (("/usr/bin/dnf", "dnf"), ("/usr/bin/yum", "yum"), ("/usr/bin/apt-get", "apt"),
            ("/usr/bin/zypper", "zypper"), ("/sbin/apk", "apk"), ("/usr/bin/pacman", "pacman"))
PROC1_NAMES = {"procd": "openwrt_init", "runit-init": "runit", "svscan": "svc",
               "openrc-init": "openrc"}
DMI_GUESTS = (("KVM", "kvm"), ("QEMU", "kvm"), ("Bochs", "kvm"), ("VMware", "VMware"),
              ("VirtualBox", "virtualbox"), ("HVM domU", "xen"), ("Amazon EC2", "kvm"),
              ("OpenStack", "openstack"), ("BHYVE", "bhyve"), ("Virtual Machine", "VirtualPC"))


def parse(stdout: str) -> dict:
    """The script's output → Ansible's fact names without the `ansible_` prefix (as in
    `ansible_facts`)."""
    raw: dict[str, str] = {}
    name = None
    for line in stdout.splitlines():
        if line.startswith(MARK):
            name = line[len(MARK):]
        elif name is not None:
            raw[name] = base64.b64decode(line or "").decode("utf-8", errors="replace")
            name = None
    facts = {"system": raw.get("uname_s", "").strip(), "kernel": raw.get("uname_r", "").strip(),
             "kernel_version": raw.get("uname_v", "").strip(),
             "machine": raw.get("uname_m", "").strip(),
             "architecture": raw.get("uname_m", "").strip(),
             "nodename": raw.get("uname_n", "").strip()}
    facts["hostname"] = facts["nodename"].split(".")[0]
    facts["fqdn"] = raw.get("fqdn", "").strip().splitlines()[0] if raw.get("fqdn", "").strip() \
        else facts["nodename"]
    facts["domain"] = facts["fqdn"].split(".", 1)[1] if "." in facts["fqdn"] else ""
    facts.update(distribution(raw.get("os_release", ""), raw.get("debian_version", "")))
    paths = set(raw.get("paths", "").split())
    facts["service_mgr"] = service_mgr(raw.get("comm", ""), paths)
    facts["pkg_mgr"] = pkg_mgr(facts["os_family"], paths)
    facts["env"] = dict(item.split("=", 1) for item in raw.get("env", "").split("\0")
                        if "=" in item)
    facts["mounts"] = mounts(raw.get("mounts", ""), raw.get("statfs", ""),
                             raw.get("binds", ""), raw.get("uuids", ""))
    facts.update(virtualization(raw, paths))
    facts.update(selinux(raw.get("selinux", "")))
    if raw.get("date", "").strip():
        facts["date_time"] = date_time(raw["date"], raw.get("tz", ""))
    return facts


def date_time(date: str, zones: str) -> dict:
    """Ansible's `ansible_date_time` from the node's `date +'%s %N %z %Z'`: one instant, its
    local fields in the node's zone and the iso8601 ones in UTC, all strings as in ansible-core's
    date_time collector. `tz_dst` is Python's `time.tzname[1]`: the name the zone uses in
    summer (of Jan 1 and Jul 1 this year, the one with the larger offset; the zone's own name
    when neither is daylight time)."""
    seconds, nanos, offset, name = (date.split() + ["", "", "+0000", "UTC"])[:4]
    epoch = int(seconds) + int(nanos or 0) / 1e9
    delta = datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
    zone = datetime.timezone(-delta if offset.startswith("-") else delta)
    now = datetime.datetime.fromtimestamp(epoch, tz=zone)
    utc = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    fields = {key: now.strftime(fmt) for key, fmt in (
        ("year", "%Y"), ("month", "%m"), ("weekday", "%A"), ("weekday_number", "%w"),
        ("weeknumber", "%W"), ("day", "%d"), ("hour", "%H"), ("minute", "%M"),
        ("second", "%S"))}
    fields.update(epoch=seconds, epoch_int=str(int(seconds)), date=now.strftime("%Y-%m-%d"),
                  time=now.strftime("%H:%M:%S"),
                  iso8601_micro=utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                  iso8601=utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                  iso8601_basic=now.strftime("%Y%m%dT%H%M%S%f"),
                  iso8601_basic_short=now.strftime("%Y%m%dT%H%M%S"),
                  tz=name, tz_dst=_summer_name(zones, name), tz_offset=offset)
    return fields


def _summer_name(zones: str, name: str) -> str:
    """The zone's daylight-time name from `+hhmm NAME` lines for Jan 1 and Jul 1."""
    seen = [line.split() for line in zones.splitlines() if len(line.split()) == 2]
    if len(seen) != 2 or seen[0][0] == seen[1][0]:
        return seen[0][1] if seen else name
    return max(seen, key=lambda item: int(item[0]))[1]


def selinux(text: str) -> dict:
    """Ansible's `selinux` facts: its module loads libselinux.so.1 (ctypes) and asks whether
    SELinux is enabled (selinuxfs mounted); roles branch on `ansible_facts.selinux.status`."""
    lines = dict((line.split(" ", 1) + [""])[:2] for line in text.splitlines())
    if "lib" not in lines:
        return {"selinux": {"status": "Missing selinux Python library"},
                "selinux_python_present": False}
    if "enforce" not in lines:
        return {"selinux": {"status": "disabled"}, "selinux_python_present": True}
    modes = {"1": "enforcing", "0": "permissive"}
    return {"selinux": {"status": "enabled", "policyvers": int(lines["policyvers"] or 0),
                        "mode": modes.get(lines["enforce"].strip(), "unknown"),
                        "config_mode": lines.get("config", "").strip() or "unknown",
                        "type": lines.get("configTYPE", "").strip() or "unknown"},
            "selinux_python_present": True}


def as_variables(facts: dict) -> dict:
    """`ansible_facts` and every fact as `ansible_NAME`, as Ansible injects them."""
    return {"ansible_facts": facts, **{f"ansible_{k}": v for k, v in facts.items()}}


def _os_release(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip("\"'")
    return out


def distribution(os_release: str, debian_version: str) -> dict:
    data = _os_release(os_release)
    ident = data.get("ID", "").lower()
    name = DISTRIBUTION_IDS.get(ident, ident.capitalize() if ident else "NA")
    version = data.get("VERSION_ID", "")
    if name == "Debian" and re.match(r"^\d+(\.\d+)*$", debian_version.strip()):
        version = debian_version.strip()        # 12.11, not os-release's 12
    release = data.get("VERSION_CODENAME", "")
    found = re.search(r"\(([^)]+?)\)", data.get("PRETTY_NAME", ""))
    if name == "Debian" and found:
        release = found.group(1)
    return {"distribution": name, "distribution_version": version or "NA",
            "distribution_major_version": version.split(".")[0] if version else "NA",
            "distribution_release": release or "NA",
            "os_family": OS_FAMILY.get(name, name)}


def service_mgr(comm: str, paths: set[str]) -> str:
    """As Ansible: PID 1's name unless it is `init` or a shell; then systemd's runtime dir."""
    proc1 = comm.strip().rsplit("/", 1)[-1] or None
    if proc1 is not None and (proc1 == "init" or proc1.endswith("sh")):
        proc1 = None
    if proc1 is not None:
        return PROC1_NAMES.get(proc1, proc1)
    if paths & {"/run/systemd/system", "/dev/.run/systemd", "/dev/.systemd"}:
        return "systemd"
    if "/sbin/openrc" in paths:
        return "openrc"
    if "/etc/init.d" in paths:
        return "sysvinit"
    return "service"


def pkg_mgr(os_family: str, paths: set[str]) -> str:
    if os_family == "Debian" and "/usr/bin/apt-get" in paths:
        return "apt"
    if os_family == "RedHat":
        return "dnf" if "/usr/bin/dnf" in paths else "yum" if "/usr/bin/yum" in paths else \
            "unknown"
    for path, name in PKG_MGRS:
        if path in paths:
            return name
    return "unknown"


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts(table: str, statfs: str, binds: str, uuids: str) -> list[dict]:
    """Ansible's `ansible_mounts`: only device-backed (or network) mounts, in mount order,
    with statvfs sizes, `,bind` added to bind mounts and the device's UUID or N/A."""
    sizes = {}
    for line in statfs.splitlines():
        point, _, numbers = line.rpartition("\t")
        if numbers.split():
            sizes[_unescape(point)] = [int(n) for n in numbers.split()]
    bound = set()
    for line in binds.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].endswith("]"):
            bound.add(_unescape(parts[0]))
    by_device = {}
    for line in uuids.splitlines():
        parts = line.split()
        if len(parts) == 2:
            by_device["/dev/" + parts[1]] = parts[0]
    out = []
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        device, point, fstype, options = (_unescape(f) for f in fields[:4])
        if (not device.startswith(("/", "\\")) and ":/" not in device) or fstype == "none":
            continue
        entry = {"device": device, "mount": point, "fstype": fstype,
                 "options": options + (",bind" if point in bound else ""),
                 "dump": int(fields[4]), "passno": int(fields[5]),
                 "uuid": by_device.get(device, "N/A")}
        if point in sizes and len(sizes[point]) == 7:
            frsize, bsize, blocks, _free, bavail, files, ffree = sizes[point]
            entry.update(size_total=frsize * blocks, size_available=frsize * bavail,
                         block_size=bsize, block_total=blocks, block_available=bavail,
                         block_used=blocks - bavail, inode_total=files, inode_available=ffree,
                         inode_used=files - ffree)     # "used" as Ansible counts it
        out.append(entry)
    return out


def virtualization(raw: dict, paths: set[str]) -> dict:
    """The first of Ansible's Linux checks that matches: containers from PID 1's cgroup and
    environment, OpenVZ, systemd's container file, docker's marker files, Xen, then DMI."""
    found = _container(raw, paths)
    if found:
        return {"virtualization_type": found, "virtualization_role": "guest"}
    if "/proc/vz" in paths and "/proc/lve" not in paths:
        return {"virtualization_type": "openvz",
                "virtualization_role": "host" if "/proc/bc" in paths else "guest"}
    if "/proc/xen" in paths:
        return {"virtualization_type": "xen", "virtualization_role": "guest"}
    dmi = raw.get("dmi", "")
    for needle, kind in DMI_GUESTS:
        if needle in dmi:
            return {"virtualization_type": kind, "virtualization_role": "guest"}
    return {"virtualization_type": "NA", "virtualization_role": "NA"}


def _container(raw: dict, paths: set[str]) -> str:
    for line in raw.get("cgroup", "").splitlines():
        if re.search(r"/docker(/|-[0-9a-f]+\.scope)", line):
            return "docker"
        if "/lxc/" in line or "/machine.slice/machine-lxc" in line:
            return "lxc"
        if "/system.slice/containerd.service" in line:
            return "containerd"
    for line in raw.get("pid1_env", "").splitlines():
        if "container=lxc" in line:
            return "lxc"
        if "container=podman" in line:
            return "podman"
        if re.match(r"^container=.", line):
            return "container"
    if "/proc/vz" in paths and "/proc/lve" not in paths:
        return ""
    if raw.get("systemd_container", "").strip():
        return raw["systemd_container"].strip()
    if paths & {"/.dockerenv", "/.dockerinit"}:
        return "docker"
    return ""
