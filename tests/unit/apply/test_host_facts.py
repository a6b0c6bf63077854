"""gather_facts: the raw material a node prints becomes Ansible's fact values by Ansible's
rules (distribution, service manager, package manager, mounts, virtualization)."""

from __future__ import annotations

import base64

from harden.apply import host_facts

DEBIAN = ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
          'VERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n')
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="22.04"\nVERSION_CODENAME=jammy\nID=ubuntu\n'


def output(**raw: str) -> str:
    return "".join(f"{host_facts.MARK}{k}\n{base64.b64encode(v.encode()).decode()}\n"
                   for k, v in raw.items())


def test_debian_takes_its_full_version_from_debian_version():
    facts = host_facts.distribution(DEBIAN, "12.11\n")
    assert facts == {"distribution": "Debian", "distribution_version": "12.11",
                     "distribution_major_version": "12", "distribution_release": "bookworm",
                     "os_family": "Debian"}
    assert host_facts.distribution(UBUNTU, "bookworm/sid\n")["distribution_version"] == "22.04"


def test_service_manager_is_pid_1_unless_init_or_a_shell():
    assert host_facts.service_mgr("systemd\n", set()) == "systemd"
    assert host_facts.service_mgr("bash\n", {"/run/systemd/system"}) == "systemd"
    assert host_facts.service_mgr("init\n", {"/etc/init.d"}) == "sysvinit"
    assert host_facts.service_mgr("sh\n", set()) == "service"


def test_package_manager_by_family():
    assert host_facts.pkg_mgr("Debian", {"/usr/bin/apt-get"}) == "apt"
    assert host_facts.pkg_mgr("RedHat", {"/usr/bin/dnf", "/usr/bin/yum"}) == "dnf"
    assert host_facts.pkg_mgr("Suse", {"/usr/bin/zypper"}) == "zypper"


def test_mounts_keep_device_backed_ones_with_ansible_numbers_and_bind_marks():
    table = ("/dev/vda / ext4 rw,relatime 0 0\nproc /proc proc rw 0 0\n"
             "/dev/vda /etc/kubernetes ext4 rw,relatime 0 0\n")
    statfs = "/\t4096 4096 100 30 20 50 10\n/etc/kubernetes\t4096 4096 100 30 20 50 10\n"
    mounts = host_facts.mounts(table, statfs, "/etc/kubernetes /dev/vda[/tmp/x]\n",
                               "abcd vda\n")
    assert [m["mount"] for m in mounts] == ["/", "/etc/kubernetes"]
    assert mounts[1]["options"] == "rw,relatime,bind" and mounts[0]["uuid"] == "abcd"
    assert mounts[0]["block_used"] == 80 and mounts[0]["size_available"] == 20 * 4096
    assert mounts[0]["inode_used"] == 40


def test_parse_names_every_fact_and_prefixes_them_for_variables():
    facts = host_facts.parse(output(
        os_release=DEBIAN, debian_version="12.11", uname_s="Linux", uname_r="6.1.0",
        uname_v="#1 SMP", uname_m="x86_64", uname_n="node1.example.org",
        fqdn="node1.example.org\n", comm="systemd\n", paths="/usr/bin/apt-get\n/.dockerenv\n",
        env="HOME=/root\0PATH=/usr/bin\0", mounts="", statfs="", binds="", uuids="",
        cgroup="0::/\n"))
    assert (facts["hostname"], facts["domain"]) == ("node1", "example.org")
    assert facts["virtualization_type"] == "docker" and facts["env"]["HOME"] == "/root"
    names = host_facts.as_variables(facts)
    assert names["ansible_kernel"] == "6.1.0" and names["ansible_facts"]["pkg_mgr"] == "apt"


def test_date_time_has_ansible_keys_local_fields_in_the_node_zone_and_iso_in_utc():
    # 2026-12-06 05:30:07.250000 UTC, on a node in Central European Time
    facts = host_facts.date_time("1796535007 250000000 +0100 CET\n",
                                 "+0100 CET\n+0200 CEST\n")
    assert set(facts) == {"year", "month", "weekday", "weekday_number", "weeknumber", "day",
                          "hour", "minute", "second", "epoch", "epoch_int", "date", "time",
                          "iso8601_micro", "iso8601", "iso8601_basic", "iso8601_basic_short",
                          "tz", "tz_dst", "tz_offset"}
    assert (facts["date"], facts["time"], facts["weekday"]) == \
        ("2026-12-06", "06:30:07", "Sunday")
    assert facts["iso8601"] == "2026-12-06T05:30:07Z"
    assert facts["iso8601_micro"] == "2026-12-06T05:30:07.250000Z"
    assert facts["iso8601_basic_short"] == "20261206T063007"
    assert facts["iso8601_basic"] == "20261206T063007250000"
    assert (facts["epoch"], facts["epoch_int"]) == ("1796535007", "1796535007")
    assert (facts["tz"], facts["tz_dst"], facts["tz_offset"]) == ("CET", "CEST", "+0100")


def test_date_time_in_a_zone_without_daylight_time_names_the_zone_twice():
    facts = host_facts.date_time("1796535007 0 +0000 UTC", "+0000 UTC\n+0000 UTC\n")
    assert (facts["tz"], facts["tz_dst"], facts["hour"]) == ("UTC", "UTC", "05")


def test_parse_without_a_date_line_gathers_no_date_time():
    assert "date_time" not in host_facts.parse(output(uname_s="Linux"))
