# The two set-up commands (README): `make serve` and `make test`. Both create .venv and install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: serve test install install-test

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

test: install-test
	$(BIN)/python -m pytest $(ARGS)
