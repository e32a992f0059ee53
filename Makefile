# Keyhall: `make run` serves the demo on the embedded default; `make test` passes every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= keyhall-data
PORT ?= 8080

.PHONY: run test lint typecheck unit bench system-deps screenshots clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Keyhall needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	@$(BIN)/keyhall --data-dir $(DATA_DIR) init --if-missing --demo
	@echo
	@echo "Next steps (in another terminal):"
	@echo "  Sign in in a browser: http://127.0.0.1:$(PORT)/start  (user demo, the one-time password above)"
	@echo "  $(BIN)/keyhall login --url http://127.0.0.1:$(PORT)   # add --device on a machine without a browser"
	@echo "  $(BIN)/keyhall configure                              # one AWS profile per account and role"
	@echo "  $(BIN)/keyhall exec sandbox.Developer -- aws sts get-caller-identity"
	@echo "  aws sts get-caller-identity --profile sandbox.Developer  # AWS CLI 2.13+, boto3, the JS SDK"
	@echo "  $(BIN)/keyhall --data-dir $(DATA_DIR) access user demo   # admin: where the demo user can go"
	@echo
	$(BIN)/keyhall --data-dir $(DATA_DIR) serve --port $(PORT)

system-deps:
	./scripts/install-system-deps.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy --strict src/keyhall

tests/e2e/js/node_modules/.installed: tests/e2e/js/package-lock.json
	npm ci --prefix tests/e2e/js --no-audit --no-fund --loglevel=error
	touch $@

test: system-deps lint typecheck tests/e2e/js/node_modules/.installed
	$(BIN)/pytest -q

bench: $(VENV)/.installed-dev system-deps
	$(BIN)/python -m bench.run

screenshots: $(VENV)/.installed-dev system-deps
	KEYHALL_SCREENSHOTS=1 $(BIN)/pytest -q tests/browser

clean:
	rm -rf $(VENV) $(DATA_DIR) .pytest_cache .mypy_cache .ruff_cache
