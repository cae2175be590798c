# One task runner for the README, CI and developers.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test test-long lint fmt openapi bench clean docs

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	# aioboto3 first: it pins botocore, and moto then resolves against it without backtracking.
	$(BIN)/pip install -q aioboto3
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

run: venv
	$(BIN)/python -m devtools.devserver

test: venv
	$(BIN)/python -m pytest -q

test-long: venv
	PODBACKUP_TEST_LONG=1 $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check app workers devtools tests bench
	$(BIN)/ruff format --check app workers devtools tests bench
	$(BIN)/mypy app workers devtools

fmt: venv
	$(BIN)/ruff check --fix app workers devtools tests bench
	$(BIN)/ruff format app workers devtools tests bench

openapi: venv
	$(BIN)/podbackup openapi --out openapi/openapi.json

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

docs: venv
	$(BIN)/python -c "from pathlib import Path; from app.kit.configdoc import BEGIN, END, block; p = Path('README.md'); s = p.read_text(); i = s.index(BEGIN); j = s.index(END) + len(END); p.write_text(s[:i] + block() + s[j:])"
	$(BIN)/python -m app.apidoc.readme README.md
