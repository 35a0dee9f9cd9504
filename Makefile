# voicekit — two commands do all set-up on a fresh clone:
#   make lab    create .venv, install, start JupyterLab on notebooks/quickstart.ipynb
#   make test   create/refresh .venv with dev tools, install system packages, ruff, mypy, pytest
# Both are idempotent: a second run reinstalls nothing when nothing changed.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
SYSPKGS := libportaudio2 alsa-utils libasound2-plugins pulseaudio pulseaudio-utils chromium openjdk-17-jre-headless
PYTEST_ARGS ?=
# two workers: most tests wait on real-time audio, not on the CPU (see README, Development)
PYTEST_WORKERS ?= 2
LAB_PORT ?= 8888

.PHONY: lab test lint typecheck pytest sysdeps bench clean help

help:
	@echo "make lab    - install and start JupyterLab on notebooks/quickstart.ipynb"
	@echo "make test   - install dev tools and system packages, run ruff, mypy --strict, pytest"
	@echo "make bench  - run the benchmarks in benchmarks/ and print their figures"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[dev]'
	@touch $(VENV)/.installed $@

# System packages the tests need (PortAudio for the sound-device path, Debian's chromium for the
# browser tests, a Java runtime for the Spark test). Installed with apt-get when root; otherwise
# we say what is missing and go on.
sysdeps:
	@missing=""; for p in $(SYSPKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "installing system packages:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null \
	    || { echo "apt-get install$$missing failed"; exit 1; }; \
	else \
	  echo "not root: cannot install$$missing; run 'sudo apt-get install$$missing' (tests needing them will fail)"; \
	fi

# JupyterLab starts wherever a newcomer runs it (tools/lab.py): as root (--allow-root), with no
# display (--no-browser) and with LAB_PORT taken (the next free port, said in one line).
lab: $(VENV)/.installed
	$(PY) -c 'import jupyterlab, ipympl' 2>/dev/null || $(PIP) install -q 'jupyterlab>=4.2' 'ipympl>=0.9.4'
	$(PY) tools/lab.py --port=$(LAB_PORT) notebooks/quickstart.ipynb

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check voicekit tests benchmarks tools
	$(VENV)/bin/ruff format --check voicekit tests benchmarks tools

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy --strict voicekit

pytest: $(VENV)/.installed-dev sysdeps
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist load $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
