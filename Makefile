# One entry point for every developer task. `make help` lists them.
PYTHON ?= python3
PY_LIBDIR := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))")
EXT_SUFFIX := $(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
NATIVE := python/heapscope/_native$(EXT_SUFFIX)
CARGO_TARGET_DIR ?= target
CONSTRAINTS := requirements/constraints.txt
PIP := $(PYTHON) -m pip install -q -c $(CONSTRAINTS)

.PHONY: help install install-browser install-tools build test test-rust test-python test-versions wheels lint fmt bench bench-versions lock clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: ## Install heapscope (editable) with its pinned test dependencies (requirements/constraints.txt)
	$(PIP) -e '.[test]'

install-browser: ## Headless Chromium + playwright for the HTML report's browser tests (apt, pip)
	PYTHON=$(PYTHON) scripts/install-browser.sh

install-tools: ## gdb, tmux, strace, Go, jemalloc and g++ for the attach, live-UI, pprof and --native tests (apt)
	scripts/install-tools.sh

build: ## Rebuild the native module in place (fast dev loop after `make install`)
	PYO3_PYTHON=$(PYTHON) cargo build --release -p heapscope-py
	# Replaced, not overwritten: a running interpreter that has the old file mapped keeps it.
	cp $(CARGO_TARGET_DIR)/release/libheapscope_native.so $(NATIVE).tmp && mv -f $(NATIVE).tmp $(NATIVE)

test: install install-browser install-tools test-rust test-python ## Install, then run the whole test suite (Rust + Python)

test-rust: ## Rust unit tests (the tracer's link libpython, hence the library path)
	LD_LIBRARY_PATH=$(PY_LIBDIR) cargo test --workspace --exclude heapscope-py

test-python: ## pytest through the installed package (PYTEST_ARGS=... passes arguments on)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

wheels: ## One wheel per supported CPython in dist/, each smoke-tested in a fresh venv without Rust (root)
	PYTHON=$(PYTHON) scripts/wheels.sh

test-versions: ## The Python suite on CPython 3.13, 3.14, 3.15 in a Debian root (root, debootstrap; builds ~/.cache/heapscope/sid-root once)
	scripts/test-versions.sh

lint: ## rustfmt, clippy, ruff, mypy
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(PIP) -e '.[lint]'
	$(PYTHON) -m ruff check python tests benchmarks
	$(PYTHON) -m ruff format --check python tests benchmarks
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest heapscope._native

fmt: ## Format Rust and Python sources
	cargo fmt --all
	$(PYTHON) -m ruff format python tests benchmarks

bench: ## Overhead and report-speed benchmarks (prints a table of ratios; BENCH_ARGS=--quick)
	$(PIP) -e '.[bench]'
	$(PYTHON) benchmarks/run.py $(BENCH_ARGS)

bench-versions: ## The overhead benchmark on CPython 3.13-3.15 in the Debian root (after test-versions; BENCH_ARGS)
	scripts/bench-versions.sh

lock: ## Re-resolve the newest test/lint/bench dependencies into requirements/constraints.txt
	PYTHON=$(PYTHON) scripts/lock-deps.sh

clean: ## Remove build products
	cargo clean
	rm -f $(NATIVE)
