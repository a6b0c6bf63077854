"""`harden check` loads its catalogue in a thread while the hosts are probed
(harden.cis.run.CatalogueLoad): the name is checked at once, the file is loaded once, and a
load error reaches whoever needs the catalogue."""

from __future__ import annotations

import threading

import pytest

from harden.cis import catalogue as catalogue_module
from harden.cis.run import CatalogueLoad
from harden.errors import InputError


def test_an_unknown_name_fails_when_made_before_anything_loads(monkeypatch):
    loads = []
    monkeypatch.setattr(catalogue_module, "load_catalogue", lambda name: loads.append(name))
    with pytest.raises(InputError, match="unknown benchmark 'cis-0.1'"):
        CatalogueLoad("cis-0.1")
    assert loads == []


def test_every_host_gets_the_one_catalogue_loaded_once(monkeypatch):
    loads = []
    real = catalogue_module.load_catalogue

    def counted(name):
        loads.append(name)
        return real(name)
    monkeypatch.setattr(catalogue_module, "load_catalogue", counted)
    load = CatalogueLoad("cis-1.12")
    seen = []
    hosts = [threading.Thread(target=lambda: (load.start(), seen.append(load.get())))
             for _ in range(5)]
    for host in hosts:
        host.start()
    for host in hosts:
        host.join()
    assert loads == ["cis-1.12"]
    assert len(seen) == 5 and all(c is seen[0] for c in seen)
    assert seen[0].benchmark == "cis-1.12" and len(seen[0].checks) > 100


def test_get_loads_even_when_no_host_started_it():
    load = CatalogueLoad("cis-1.12")      # e.g. every host unreachable: no host connected
    assert load.get().benchmark == "cis-1.12"


def test_a_load_error_is_raised_to_each_caller(monkeypatch):
    def broken(name):
        raise InputError("invalid YAML: boom", "cis-1.12.yaml", 3)
    monkeypatch.setattr(catalogue_module, "load_catalogue", broken)
    load = CatalogueLoad("cis-1.12")
    load.start()
    for _ in range(2):
        with pytest.raises(InputError, match="cis-1.12.yaml:3: invalid YAML: boom"):
            load.get()
