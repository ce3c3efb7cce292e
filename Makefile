# The two commands: `make demo` (run it) and `make test` (set up and test).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
#: two workers, each running whole test files (session fixtures such as the Redis
#: Cluster start once per worker); PYTEST_ARGS="-n0" runs serially
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: test demo lint generate os-deps venv clean

# Everything a fresh Debian machine needs, then the whole suite.
test: os-deps venv
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS) --durations=20

demo: os-deps venv
	$(BIN)/cache-slo-exporter demo $(DEMO_ARGS)

generate: venv
	$(BIN)/cache-slo-exporter generate

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy

os-deps:
	./scripts/install-os-deps.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
