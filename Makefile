# Two entry points: `make demo` and `make test`. Both set up what they need on a fresh
# Debian machine (as root): system packages (checked every time, installed only when missing)
# and a virtualenv with harden installed (rebuilt when pyproject.toml changes).
# The MIT Kerberos packages (KDC, kadmin.local, kinit) serve the GSSAPI login test, which starts
# its own KDC in a temporary directory; DEBIAN_FRONTEND=noninteractive answers krb5-config's
# debconf questions (realm, servers) with their defaults.
# gcc, libc6-dev and libssl-dev build the FIDO login test's security-key provider
# (tests/fixtures/sk_provider), which plays an authenticator for the system ssh.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LABDIR ?= $(CURDIR)/.lab-demo
PROFILE ?= kubeadm

.PHONY: demo test test-unit test-lab setup syspkgs clean bench

syspkgs:
	@if ! test -x /usr/sbin/sshd || ! command -v ssh >/dev/null 2>&1 || ! command -v sudo >/dev/null 2>&1 \
	   || ! command -v unshare >/dev/null 2>&1 || ! command -v ps >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1 \
	   || ! command -v tmux >/dev/null 2>&1 \
	   || ! test -x /usr/sbin/krb5kdc || ! test -x /usr/sbin/kadmin.local || ! command -v kinit >/dev/null 2>&1 \
	   || ! command -v cc >/dev/null 2>&1 || ! test -f /usr/include/stdlib.h || ! test -f /usr/include/openssl/evp.h \
	   || ! test -x /usr/lib/openssh/ssh-sk-helper || ! command -v busybox >/dev/null 2>&1 \
	   || ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
	        openssh-server openssh-client sudo util-linux procps iproute2 openssl python3-venv tmux \
	        krb5-kdc krb5-admin-server krb5-user gcc libc6-dev libssl-dev busybox; \
	fi
	@# etcd is optional (the lab emulates it when absent); install it when the archive has it.
	@command -v etcd >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client || true
	@# kubectl: the lab's API server is used with the distribution's client (section 5, rotation)
	@command -v kubectl >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y kubernetes-client || true

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

setup: syspkgs $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=25 tests

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

demo: setup
	$(BIN)/python -m harden.demo --dir $(LABDIR) --profile $(PROFILE)

bench: setup
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build *.egg-info
