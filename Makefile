# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test check bench system-deps clean

$(STAMP): pyproject.toml setup.py gateway/rules/_fold.c gateway/_wire.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@test -f var/dkim/veil.key || $(BIN)/veil dkim keygen --config config.toml
	$(BIN)/veil serve --config config.toml

# System packages the end-to-end tests use (Postfix, swaks, Chromium, DKIM verifiers).
# Missing ones make those tests skip with the reason; the rest of the suite still runs.
system-deps:
	@scripts/install-system-deps

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

bench: $(STAMP) system-deps
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache
