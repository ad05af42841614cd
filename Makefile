# pypbx — `make run` starts a demo PBX, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
CONFIG ?= pypbx.toml
SIP_PORT ?= 5060
PYTEST_ARGS ?=
# What `make lint` checks: ruff check and ruff format --check over the whole tree, mypy over the code,
# and fewer than 30 `Any` in pypbx/ (tools/count_any.py).
LINT_PATHS ?= sip acd media tools pypbx cli.py tests bench
# mypy checks the code (strict on sip, acd, media, pypbx.call: see pyproject.toml), not the tests
MYPY_PATHS ?= sip acd media tools pypbx cli.py

# python3.11, else python3 if it is 3.11/3.12, else python3.12
PYTHON_FOR_VENV := $(shell for p in python3.11 python3 python3.12; do \
	if command -v $$p >/dev/null 2>&1 && \
	   $$p -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' 2>/dev/null; then \
	   command -v $$p; break; fi; done)

.PHONY: run test test-fast lint any-count venv clean i18n

run: $(VENV)/.installed
	@test -f $(CONFIG) || $(VENV)/bin/pypbx init --demo --config $(CONFIG) --sip-port $(SIP_PORT)
	$(VENV)/bin/pypbx run --config $(CONFIG)

# `make test` lints first: a lint failure fails the build before the (long) test run.
test: lint
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m 'not slow' $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy $(MYPY_PATHS)
	$(VENV)/bin/python tools/count_any.py --max 29 pypbx > /dev/null

# Re-extract the web desk's strings (templates, pypbx/web/*.py) and update its .po catalogues
# (pypbx/web/locale/<lang>/LC_MESSAGES/messages.po; read at start-up, nothing to compile).
i18n: $(VENV)/.installed
	$(VENV)/bin/python tools/i18n.py

# How many `Any` the core still has (issue 9 wants fewer than 30).
any-count:
	@python3 tools/count_any.py pypbx

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@if [ ! -x $(VENV)/bin/python ]; then \
		if [ -z "$(PYTHON_FOR_VENV)" ]; then echo "error: python3.11 or python3.12 is required" >&2; exit 1; fi; \
		echo "$(PYTHON_FOR_VENV) -m venv $(VENV)"; \
		$(PYTHON_FOR_VENV) -m venv $(VENV); \
	fi
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	@touch $@

clean:
	rm -rf build *.egg-info .pytest_cache .mypy_cache .ruff_cache
