# Two commands matter on a fresh Debian/Ubuntu machine:
#   make up    install everything, then bring a local cluster up
#   make test  install everything, then run the test suite
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
APT_PKGS := etcd-server libvirt-dev pkg-config containerd runc containernetworking-plugins busybox-static iptables

# For real VMs: the libvirt runtime on qemu:///system (QEMU, libvirtd, a seed-ISO maker), and what
# tools/vm/build-busybox-image.sh needs for the opt-in `pytest -m kvm` test.  `make up` installs them;
# `make test` does not (the default tests use libvirt's test driver).  Where no systemd starts libvirtd
# after installing, start it by hand: virtlogd -d && libvirtd -d
VM_PKGS := qemu-system-x86 qemu-utils libvirt-daemon-system genisoimage busybox-static cpio syslinux \
	syslinux-common mtools dosfstools

.PHONY: install system-deps vm-deps venv up down test lint bench clean

install: system-deps venv

# apt-get install those of $(1) that are missing (with sudo unless root); $(2) says what they are for,
# $(3) are extra apt-get options.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for $(2):$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(3) $$missing; \
	fi
endef

system-deps:
	$(call apt_install,$(APT_PKGS),the cluster and the tests,)

vm-deps:
	$(call apt_install,$(VM_PKGS),real VMs,--no-install-recommends)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -U pip
	$(PIP) install -q -e '.[test]'
	@touch $@

up: install vm-deps
	$(VENV)/bin/arktos up

down:
	$(VENV)/bin/arktos down

test: install
	$(VENV)/bin/pytest

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
