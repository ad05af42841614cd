# pypbx — `make run` starts a demo PBX, `make test` runs every test.
SHELL := /bin/bash
VENV ?= .venv
CONFIG ?= pypbx.toml
SIP_PORT ?= 5060
PYTEST_ARGS ?=

# python3.11, else python3 if it is 3.11/3.12, else python3.12
PYTHON_FOR_VENV := $(shell for p in python3.11 python3 python3.12; do \
	if command -v $$p >/dev/null 2>&1 && \
	   $$p -c 'import sys; sys.exit(sys.version_info[:2] not in ((3, 11), (3, 12)))' 2>/dev/null; then \
	   command -v $$p; break; fi; done)

.PHONY: run test test-fast venv clean

run: $(VENV)/.installed
	@test -f $(CONFIG) || $(VENV)/bin/pypbx init --demo --config $(CONFIG) --sip-port $(SIP_PORT)
	$(VENV)/bin/pypbx run --config $(CONFIG)

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q -m 'not slow' $(PYTEST_ARGS)

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
	rm -rf build *.egg-info .pytest_cache
