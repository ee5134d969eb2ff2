# idrs — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PY_BOOT ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench lint typecheck clean

install: $(STAMP)

$(CURDIR)/.tools/bin/uv:
	$(PY_BOOT) -m venv .tools
	.tools/bin/pip install --quiet uv

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --compile-bytecode
	$(VENV)/bin/python -m compileall -q src  # the editable project too: idrs starts at once
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/idrs demo

test: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=25

test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -x -m "not postgres and not slow"

bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || apt-get install -y wrk >/dev/null 2>&1 || echo "wrk not installed: the HTTP benchmark falls back to its Python load generator"
	$(VENV)/bin/python -m bench $(BENCH)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .tools .pytest_cache
