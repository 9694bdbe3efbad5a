# cardline: one command each for set-up, demo, tests and benchmarks on a fresh Debian 12 machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEB_PACKAGES := pcscd libpcsclite-dev vsmartcard-vpcd softhsm2 opensc pcsc-tools openssl \
                fonts-ocr-b fonts-dejavu-core swig \
                postgresql-15 postgresql-client-15 acl \
                chromium openpace
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.installed

.PHONY: setup deb venv token demo test lint typecheck unit bench clean

setup: deb $(STAMP) token

deb:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=25.1"
	$(BIN)/pip install -q -e . --group dev
	@touch $(STAMP)

token: $(STAMP)
	$(BIN)/cardline keys setup-embedded

demo: setup
	$(BIN)/cardline demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy common applets hsm printers qa personalization

# pcscd serves one instance per machine: the tests that use it run one at a time, the rest
# (most of them) in two worker processes, a test file each at a time
unit: $(STAMP)
	$(BIN)/pytest -q -m "not pcscd" -n 2 --dist loadfile
	$(BIN)/pytest -q -m pcscd

test: setup lint unit

bench: setup
	$(BIN)/cardline bench

clean:
	rm -rf $(VENV) .cardline .pytest_cache .mypy_cache .ruff_cache
