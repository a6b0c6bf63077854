"""pflag rules of the lab components' command lines."""

from __future__ import annotations

import pytest

from harden.lab.components.flags import FlagError, FlagSet, kinds_from_table, parse_duration

FLAGS = FlagSet("kube-apiserver", kinds_from_table(
    "profiling:b secure-port:i request-timeout:d enable-admission-plugins:l feature-gates:m "
    "advertise-address:ip token-auth-file goaway-chance:f v:i"), {"v": "v"})


def test_scalars_last_wins_and_lists_append():
    parsed = FLAGS.parse(["--secure-port=1", "--secure-port=2", "--enable-admission-plugins=A,B",
                          "--enable-admission-plugins=C", "--feature-gates=X=true,Y=false"])
    assert parsed.get("secure-port") == 2
    assert parsed.get("enable-admission-plugins") == ["A", "B", "C"]
    assert parsed.get("feature-gates") == {"X": "true", "Y": "false"}


def test_unknown_and_removed_flags_fail():
    with pytest.raises(FlagError, match="unknown flag: --insecure-port"):
        FLAGS.parse(["--insecure-port=0"])


@pytest.mark.parametrize("value,expected", [("true", True), ("False", False), ("1", True),
                                            ("F", False)])
def test_bool_words(value, expected):
    assert FLAGS.parse([f"--profiling={value}"]).get("profiling") is expected


def test_malformed_bool_fails_with_parsebool_text():
    with pytest.raises(FlagError, match=r'invalid argument "no" for "--profiling" flag: '
                                        r"strconv.ParseBool"):
        FLAGS.parse(["--profiling=no"])


def test_bool_never_takes_separate_value():
    parsed = FlagSet("x", {"profiling": "bool"}, positional_allowed=True).parse(["--profiling", "false"])
    assert parsed.get("profiling") is True and parsed.positional == ["false"]
    with pytest.raises(FlagError, match='does not take any arguments, got \\["false"\\]'):
        FLAGS.parse(["--profiling", "false"])


def test_separate_value_for_non_bool_and_missing_value():
    assert FLAGS.parse(["--secure-port", "6443"]).get("secure-port") == 6443
    with pytest.raises(FlagError, match="flag needs an argument: --token-auth-file"):
        FLAGS.parse(["--token-auth-file"])


@pytest.mark.parametrize("flag,value,detail", [
    ("secure-port", "64x", "strconv.ParseInt"), ("request-timeout", "300", "time: invalid duration"),
    ("advertise-address", "1.2.3", "failed to parse IP"), ("goaway-chance", "x", "ParseFloat"),
    ("feature-gates", "A", 'missing "="')])
def test_typed_values(flag, value, detail):
    with pytest.raises(FlagError, match=detail):
        FLAGS.parse([f"--{flag}={value}"])


def test_underscores_normalise_and_shorthand():
    assert FLAGS.parse(["--secure_port=5"]).get("secure-port") == 5
    assert FLAGS.parse(["-v=4"]).get("v") == 4
    with pytest.raises(FlagError, match="unknown shorthand"):
        FLAGS.parse(["-x"])


@pytest.mark.parametrize("text,seconds", [("300s", 300), ("1h30m", 5400), ("0", 0), ("1.5s", 1.5),
                                          ("20ms", 0.02)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_optional_value_flag_may_be_bare():
    flags = FlagSet("kube-apiserver", kinds_from_table("version:o token-auth-file"))
    assert flags.parse(["--version"]).get("version") == "true"
    assert flags.parse(["--version=raw"]).get("version") == "raw"
    assert flags.parse(["--version", "--token-auth-file=/t"]).get("token-auth-file") == "/t"
