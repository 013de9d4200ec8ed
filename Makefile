# thresher: `make demo` and `make test` set everything up on a fresh Debian machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test docs check-docs lint clean lock bench system-deps report-screenshot

install: $(STAMP)

# The venv is rebuilt when the lock or the project metadata changes.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "thresher needs Python >= 3.10"'
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { \
	  echo "python3-venv missing: installing it with apt-get"; \
	  apt-get update -qq && apt-get install -y -qq python3-venv python3-dev; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

demo: install
	$(BIN)/thresher run configs/demo.yaml --overwrite

# Two pytest-xdist workers (tests/conftest.py groups tests by module, and every Ray and
# Slurm test into one group); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: install check-docs lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup \
	  --durations=25  # the slowest, to keep the suite short

docs: install
	$(BIN)/thresher stages --markdown > docs/stages.md

check-docs: install
	@$(BIN)/thresher stages --markdown | diff -u docs/stages.md - \
	  || { echo "docs/stages.md is stale: run 'make docs'"; exit 1; }

lint: install
	$(BIN)/ruff check pipelines stages tests

# Debian packages some tests need beyond Python (chromium for tests/test_report.py); root.
system-deps:
	bash scripts/install-system-deps.sh

# docs/report.png: the top of `thresher report` on the demo run, as headless Chromium draws it
report-screenshot: demo
	$(BIN)/thresher report runs/demo -o runs/demo/report.html
	bash scripts/report-screenshot.sh runs/demo/report.html docs/report.png

clean:
	rm -rf $(VENV) runs .pytest_cache

# Re-pin every dependency from the ranges in pyproject.toml (needs the network).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install -q ".[dev]" setuptools wheel && .lockvenv/bin/pip uninstall -q -y thresher
	# --all: setuptools and wheel are needed by `pip install -e .` without build isolation
	.lockvenv/bin/pip freeze --all --exclude pip > requirements.lock && rm -rf .lockvenv

# End-to-end throughput against datatrove (docs/benchmarks.md). Builds the benchmark WARCs
# and datatrove's own venv (its trafilatura<1.12 pin clashes with ours) when missing.
DT_VENV := benchmarks/.venv-datatrove
$(DT_VENV)/.installed: benchmarks/requirements-datatrove.txt
	$(PYTHON) -m venv $(DT_VENV)
	$(DT_VENV)/bin/pip install -q --disable-pip-version-check -r $<
	@touch $@

benchmarks/data/manifest.txt: benchmarks/make_bench_warc.py
	$(PY) benchmarks/make_bench_warc.py --out benchmarks/data

bench: install $(DT_VENV)/.installed benchmarks/data/manifest.txt
	$(PY) benchmarks/bench_e2e.py --write-doc
