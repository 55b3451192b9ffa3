# make run  : create .venv if missing, install, run the whole pipeline
# make test : create .venv if missing, install, ruff + the full test suite (slow tests included;
#             the JAX backend is installed too, so its tests run)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.cryptoflow-installed

.PHONY: install run demo deploy test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,jax]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/cryptoflow run $(ARGS)

# The whole pipeline offline, against a replay of recorded candles (../shared/data by default).
SHARED_DATA ?= $(or $(CRYPTO_SHARED_DATA),../shared/data)
DEMO_FILE ?= $(SHARED_DATA)/poloniex-USDT_BTC-5m-2017-07-14--2017-08-09.csv
DEMO_PORT ?= 8765
demo: $(STAMP)
	@test -f "$(DEMO_FILE)" || { echo "no recorded candles at $(DEMO_FILE) (set DEMO_FILE)"; exit 2; }
	$(BIN)/cryptoflow replay --data "$(DEMO_FILE)" --port $(DEMO_PORT) & pid=$$!; \
	trap "kill $$pid" EXIT; sleep 3; \
	$(BIN)/cryptoflow run --base-url http://127.0.0.1:$(DEMO_PORT) --start 2017-07-14 $(ARGS)

# Work pool + every deployment of prefect.yaml on the server at $$PREFECT_API_URL.
deploy: $(STAMP)
	$(BIN)/prefect work-pool create cryptoflow-local --type process --overwrite
	$(BIN)/prefect --no-prompt deploy --all

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
