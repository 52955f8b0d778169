# payswitch: `make up` runs the local stack with traffic flowing through it; `make test` runs
# the tests. Both set up what a fresh machine lacks first (a virtualenv with the project, and
# redis-server through apt-get when it is missing).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test setup redis protos lint typecheck buf clean

up: setup redis
	$(BIN)/payswitch up --traffic 15

test: setup redis
	$(BIN)/pytest

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# redis-server is the one system package the stack and the tests need.
redis:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "redis-server is missing; installing it with apt-get"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }

# Regenerate the Python code and type stubs for protos/ (never edit protos/gen by hand).
protos: setup
	$(BIN)/python protos/generate.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy switch adapters bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
