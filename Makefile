# Two commands matter on a fresh Debian/Ubuntu machine:
#   make up    install everything, then bring a local cluster up
#   make test  install everything, then run the test suite
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
APT_PKGS := etcd-server libvirt-dev pkg-config containerd runc containernetworking-plugins busybox-static iptables

# For real VMs (the libvirt runtime on qemu:///system) and the opt-in `pytest -m kvm` test; not part of
# `install`: most machines run VM pods on the test driver or hollow.  After installing, start the
# daemons (no systemd needed): virtlogd -d && libvirtd -d
VM_PKGS := qemu-system-x86 qemu-utils libvirt-daemon-system genisoimage busybox-static cpio syslinux \
	syslinux-common mtools dosfstools

.PHONY: install system-deps vm-deps venv up down test lint bench clean

install: system-deps venv

# Debian packages the cluster and the tests need; skipped when already present.
system-deps:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# Debian packages for real VMs (see VM_PKGS); skipped when already present.
vm-deps:
	@missing=""; for p in $(VM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for VMs:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -e '.[test]'
	@touch $@

up: install
	$(VENV)/bin/arktos up

down:
	$(VENV)/bin/arktos down

test: install
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
