# One task runner for the README, CI and developers.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test test-compat test-long lint fmt openapi bench clean docs constraints

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	# The versions pinned in constraints.txt (the image installs the same ones).
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# Re-pin every dependency at its newest allowed version: a fresh venv, resolved without
# the old pins, frozen (minus the project itself). Commit constraints.txt after `make test`.
constraints:
	rm -rf var/constraints-venv
	$(PY) -m venv var/constraints-venv
	var/constraints-venv/bin/pip install -q --upgrade pip wheel setuptools
	# aioboto3 first: it pins botocore, and moto then resolves against it without backtracking.
	var/constraints-venv/bin/pip install -q aioboto3
	var/constraints-venv/bin/pip install -q '.[dev]'
	{ echo "# Pinned versions of every dependency (pyproject.toml, dev extras included): used by"; \
	  echo "# 'make venv' and the Dockerfile (pip -c). Regenerate with 'make constraints'."; \
	  echo "# python $$(var/constraints-venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; \
	  var/constraints-venv/bin/pip freeze --exclude podbackup; } > constraints.txt
	rm -rf var/constraints-venv

run: venv
	$(BIN)/python -m devtools.devserver

test: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

# What must keep working with the oldest restic we support (Debian 12's 0.14) when the main
# suite runs with 0.18: backup, restore (content repair included), check, prune, and the
# error taxonomy of refused and damaged repositories. `.ci/run` runs it with the system's.
COMPAT := tests/backups/test_local_e2e.py tests/restores/test_roundtrip.py \
	tests/restores/test_content_repair.py tests/checks tests/retention/test_retention.py \
	tests/targets/test_repository.py tests/integrations/restic

test-compat: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(COMPAT)

test-long: venv
	PODBACKUP_TEST_LONG=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

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
