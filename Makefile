# make serve: run the API locally on http://127.0.0.1:$${PORT:-7071}/openai (Azurite started if needed)
# make test:  linters, then the test suite (its own Azurite and dev host, nothing left running)
# make fuzz:  the schemathesis fuzz with many more examples
# make load:  the load benchmark (LOAD_ARGS="--clients 16 --seconds 30")
# make bench: the service against the storage floor, under 200 clients, runs against the model, files,
#             vector-store search and ingestion (docs/benchmarks.md)

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The Python SDK most Assistants code pinned, in a venv of its own: the tests drive it as a script.
SDK_1_58 := .venv-openai-1.58
# code_interpreter's own Python (requirements-sandbox.txt), which runs under bubblewrap.
SANDBOX_ENV := .venv-sandbox
# Its interpreter must be readable by the unprivileged users sessions run as: the system's
# Python 3.11 where there is one (an install under /root, like pyenv's, is not).
SANDBOX_PYTHON ?= $(shell /usr/bin/python3.11 -c 'import ensurepip' 2>/dev/null && echo /usr/bin/python3.11 || echo $(PYTHON))

.PHONY: setup bubblewrap serve test fuzz load bench lint format clean

setup: $(VENV)/.installed node_modules/.installed $(SDK_1_58)/.installed $(SANDBOX_ENV)/.installed bubblewrap

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

$(SDK_1_58)/.installed:
	test -x $(SDK_1_58)/bin/python || $(PYTHON) -m venv $(SDK_1_58)
	$(SDK_1_58)/bin/python -m pip install --quiet --disable-pip-version-check openai==1.58.1
	touch $@

$(SANDBOX_ENV)/.installed: requirements-sandbox.txt
	test -x $(SANDBOX_ENV)/bin/python || $(SANDBOX_PYTHON) -m venv $(SANDBOX_ENV)
	$(SANDBOX_ENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-sandbox.txt
	touch $@

# The local sandbox needs bwrap: installed with apt where this runs as root, else said.
bubblewrap:
	@command -v bwrap >/dev/null || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } \
	  || echo "bubblewrap (bwrap) is not installed: code_interpreter's local sandbox will refuse to run"

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

serve: setup
	$(BIN)/python -m devhost

test: lint
	$(BIN)/python -m pytest

# Many more fuzz examples than make test runs (FUZZ_EXAMPLES per operation, default 500 here).
fuzz: setup
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-500} $(BIN)/python -m pytest tests/test_fuzz.py

# Concurrent clients against the dev host on Azurite, then a check that nothing was lost.
load: setup
	$(BIN)/python -m bench.load $(LOAD_ARGS)

# Latency against the storage floor, round trips, growth, cold start, memory: one table; then
# 200 concurrent clients against one dev host, with the event loop's lag (CONCURRENCY_ARGS); then
# what a run costs over the model it calls, streams at once, polled runs, CPU per run (RUNS_ARGS);
# files: throughput against the blob floor, storage requests per upload, memory (FILES_ARGS); the
# code sandbox: first output cold and warm against a bare kernel, memory, sessions (SANDBOX_ARGS);
# vector stores: search latency as a store grows, ingestion against its floor, retrieval quality
# (SEARCH_ARGS, VECTOR_STORES_ARGS); file_search runs against their floor, small and 10k-chunk
# stores (FILE_SEARCH_ARGS="--large 100000" for the 100k-chunk one).
bench: setup
	$(BIN)/python -m bench.bench $(BENCH_ARGS)
	$(BIN)/python -m bench.concurrency $(CONCURRENCY_ARGS)
	$(BIN)/python -W ignore::DeprecationWarning -m bench.runs $(RUNS_ARGS)
	$(BIN)/python -m bench.files $(FILES_ARGS)
	$(BIN)/python -m bench.sandbox $(SANDBOX_ARGS)
	$(BIN)/python -m bench.search $(SEARCH_ARGS)
	$(BIN)/python -m bench.vector_stores $(VECTOR_STORES_ARGS)
	$(BIN)/python -W ignore::DeprecationWarning -m bench.file_search $(FILE_SEARCH_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(SDK_1_58) $(SANDBOX_ENV) node_modules .azurite .pytest_cache .mypy_cache .ruff_cache
