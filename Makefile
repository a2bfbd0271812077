# pytgi: two commands for users (make run, make test); the rest for developers.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench fuzz load soak demo-model clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev,examples]"
	# TGI's own Python client pins an old huggingface_hub; it only needs a
	# header helper from it, so it goes in without its dependencies.
	$(PIP) install -q --no-deps "text-generation>=0.7"
	# The CPU kernels compile once (~45 s) into torch's extension cache, so no
	# server start pays for it; without a compiler pytgi runs the torch path.
	-$(PY) -m pytgi.kernels
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/pytgi serve

test: $(STAMP)
	-bash scripts/install-browser.sh  # Chromium for tests/web when apt can; they skip without it
	$(PY) -m pytest tests

# The chat page in a headless Chromium (Debian's chromium package, driven by Playwright).
.PHONY: test-browser
test-browser: $(STAMP)
	bash scripts/install-browser.sh
	$(PY) -m pytest tests/web

lint: $(STAMP)
	$(VENV)/bin/ruff check pytgi tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# schemathesis over every route of the live demo-model server (make test runs a bounded pass).
fuzz: $(STAMP)
	$(PY) tests/fuzz/fuzz_server.py --max-examples $(or $(EXAMPLES),100)

# 16 clients mixing routes for 60 s (also part of make test).
load: $(STAMP)
	$(PY) tests/load/load_runner.py --mix load --duration 60 --report load-report.json

# 10 minutes with disconnects, invalid, grammar and slow-reader requests; report in soak-report.json.
soak: $(STAMP)
	$(PY) tests/load/load_runner.py --mix soak --duration 600 --report soak-report.json

bench: $(STAMP)
	$(PY) -m pytgi.bench.core_bench

demo-model: $(STAMP)
	$(PY) -m pytgi.demo.train

clean:
	rm -rf $(VENV) build *.egg-info

# The llama.cpp baseline of `pytgi bench --compare-cmd llamacpp`: llama-cpp-python[server]
# compiled from source (native CPU) plus `gguf`, in its own .venv-llamacpp (~8 min on 2 cores).
.PHONY: llama-cpp
llama-cpp:
	PYTHON=$(PYTHON) bash scripts/build-llamacpp.sh

# llama.cpp's own C++ server (parallel slots) from the same source, into .venv-llamacpp/bin (~6 min).
.PHONY: llama-server
llama-server:
	bash scripts/build-llama-server.sh
