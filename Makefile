# Two entry points: `make demo` and `make test`. Both set up what they need on a fresh
# Debian machine (as root): system packages, a virtualenv with harden installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SYSPKG := /var/lib/harden-syspkgs.stamp
LABDIR ?= $(CURDIR)/.lab-demo

.PHONY: demo test test-unit test-lab setup syspkgs clean bench

syspkgs: $(SYSPKG)
$(SYSPKG):
	@if ! command -v sshd >/dev/null 2>&1 && ! test -x /usr/sbin/sshd || ! command -v sudo >/dev/null 2>&1 \
	   || ! command -v unshare >/dev/null 2>&1 || ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
	        openssh-server openssh-client sudo util-linux procps iproute2 python3-venv; \
	fi
	@# etcd is optional (the lab emulates it when absent); install it when the archive has it.
	@command -v etcd >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client || true
	@mkdir -p $(dir $@) && touch $@

$(STAMP): pyproject.toml $(SYSPKG)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

demo: setup
	$(BIN)/python -m harden.demo --dir $(LABDIR)

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
