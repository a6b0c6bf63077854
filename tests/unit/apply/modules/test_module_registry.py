"""The module registry (harden.apply.modules) names every module without importing it, and each
name leads to the Module that carries that name; no module file is left out of it."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import harden.apply.modules as package
from harden.apply.modules import MODULES, get_module
from harden.apply.modules.base import Module


def test_every_registered_name_is_the_name_of_its_module():
    for name in MODULES:
        assert isinstance(MODULES[name], Module) and MODULES[name].name == name
    assert get_module("file") is MODULES["file"] and get_module("no_such_module") is None
    assert "assert" in MODULES and "no_such_module" not in MODULES


def test_every_module_defined_in_the_package_is_registered():
    defined = {}
    for info in pkgutil.iter_modules(package.__path__):
        source = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(source).values():
            if isinstance(value, Module) and type(value) is not Module and value.name:
                defined[value.name] = value
    assert set(defined) == set(MODULES)
    assert all(MODULES[name] is module for name, module in defined.items())


def test_names_are_listed_and_looked_up_without_importing_the_modules():
    code = ("import sys\nfrom harden.apply.modules import MODULES, get_module\n"
            "names = sorted(MODULES); assert 'file' in MODULES and len(names) == len(MODULES)\n"
            "get_module('copy')\n"
            "print(' '.join(m for m in sys.modules if m.startswith('harden.apply.modules.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert "harden.apply.modules.copy" in loaded
    assert not loaded & {"harden.apply.modules.file", "harden.apply.modules.assert_",
                         "harden.apply.modules.static_pod", "harden.apply.modules.sysctl"}
