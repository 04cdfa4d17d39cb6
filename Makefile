# The two set-up commands (README): `make serve` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: serve test check install install-test

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e .

# The dashboard's browser tests drive Debian's Chromium through Playwright (never `playwright install`).
install-test: $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

serve: install
	$(BIN)/routeway serve $(ARGS)

# Lint (ruff, no formatting) and strict typing (mypy); both configured in pyproject.toml. .ci/run runs it
# before `make test`.
check: install-test
	$(BIN)/ruff check src tests
	$(BIN)/mypy

# Coverage counts the routeway server processes the tests start (pyproject.toml [tool.coverage]); the
# floor (fail_under) applies to a whole run only, not to `make test ARGS=tests/test_x.py`.
test: install-test
	rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest $(ARGS)
	$(BIN)/python -m coverage combine -q
	$(BIN)/python -m coverage report $(if $(ARGS),--fail-under=0)
