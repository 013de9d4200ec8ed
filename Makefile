# thresher: `make demo` and `make test` set everything up on a fresh Debian machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KERNEL := stages/dedup/_minhash_kernel.so
UNICODE := stages/text/_unicode_data.npz

.PHONY: install demo test docs check-docs lint clean lock bench system-deps report-screenshot

# Bytecode for the project's own modules (the editable install has none): where the
# environment sets PYTHONDONTWRITEBYTECODE, as this workplace's does, every process would
# otherwise compile them from source (about 0.1 CPU s a `thresher validate`, measured).
install: $(STAMP) $(KERNEL) $(UNICODE)
	@$(PY) -m compileall -q -j 0 pipelines stages

# The Unicode properties dedup's tables start from (planes 0-3, from this venv's Python's
# unicodedata; stages/text/unicode_data.py): without it they fill code point by code point.
$(UNICODE): stages/text/unicode_data.py $(STAMP)
	@$(PY) -m stages.text.unicode_data

# The compiled MinHash kernel (stages/dedup/minhash_native.py loads it; without it the numpy
# path runs, same output, slower). The library records its source's sha256, so one older
# than its source is not used. target_clones picks AVX-512/AVX2 code at run time on x86-64;
# a compiler without it builds the portable code.
$(KERNEL): stages/dedup/minhash_kernel.c
	@command -v $(CC) >/dev/null 2>&1 || { \
	  echo "no C compiler ($(CC)): installing gcc with apt-get"; \
	  { apt-get update -qq && apt-get install -y -qq gcc; } || true; }
	@if command -v $(CC) >/dev/null 2>&1; then \
	  tag=$$(sha256sum $< | cut -c1-16); \
	  $(CC) -O3 -fPIC -shared -Wall -DTHR_SOURCE=\"$$tag\" -o $@ $< 2>/dev/null \
	  || $(CC) -O3 -fPIC -shared -Wall -DTHR_SOURCE=\"$$tag\" -DTHR_NO_CLONES -o $@ $<; \
	else \
	  echo "warning: no C compiler: MinHash will run its numpy path (same output, slower)"; \
	fi

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
	rm -rf $(VENV) runs .pytest_cache $(KERNEL)

# Re-pin every dependency from the ranges in pyproject.toml (needs the network).
lock:
	rm -rf .lockvenv && $(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install -q ".[dev]" setuptools wheel && .lockvenv/bin/pip uninstall -q -y thresher
	# --all: setuptools and wheel are needed by `pip install -e .` without build isolation
	.lockvenv/bin/pip freeze --all --exclude pip > requirements.lock && rm -rf .lockvenv

# Benchmarks (docs/benchmarks.md, "Running the benchmarks from a fresh clone"): everything
# they read is bundled or built here from bundled files. datatrove gets its own venv (its
# processing extra pins trafilatura<1.12, which clashes with ours), plus thresher's
# trafilatura installed beside it with --no-deps, so that bench_e2e.py and
# bench_extraction.py also run datatrove on the same version (its other dependencies
# already have the versions of our lock; bench_e2e.py checks that on every run).
DT_VENV := benchmarks/.venv-datatrove
TRAFILATURA_PIN = $(shell sed -n 's/^trafilatura==//p' requirements.lock)
$(DT_VENV)/.installed: benchmarks/requirements-datatrove.txt
	$(PYTHON) -m venv $(DT_VENV)
	$(DT_VENV)/bin/pip install -q --disable-pip-version-check -r $<
	@touch $@

$(DT_VENV)/trafilatura-same/.installed: requirements.lock $(DT_VENV)/.installed
	rm -rf $(DT_VENV)/trafilatura-same
	$(DT_VENV)/bin/pip install -q --disable-pip-version-check --no-deps \
	  --target $(DT_VENV)/trafilatura-same trafilatura==$(TRAFILATURA_PIN)
	@touch $@

# the end-to-end input: 311 bundled pages (benchmarks/pages) as WARCs + tests/data/warc
benchmarks/data/manifest.txt: benchmarks/make_bench_warc.py benchmarks/pages/*.tar.xz \
  tests/data/warc/*.warc.gz
	$(PY) benchmarks/make_bench_warc.py --out benchmarks/data

.PHONY: bench-data bench-venv bench-extraction
bench-data: install benchmarks/data/manifest.txt
bench-venv: $(DT_VENV)/.installed $(DT_VENV)/trafilatura-same/.installed

bench: install bench-venv benchmarks/data/manifest.txt
	$(PY) benchmarks/bench_e2e.py --write-doc

bench-extraction: install bench-venv
	$(PY) benchmarks/bench_extraction.py --write-doc
