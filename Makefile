# Timbel Dagster: what the README tells people to run.
#   make demo   set up, then run the platform end to end on SQLite and the sample organisation
#   make test   set up, then run every test (PostgreSQL from TIMBEL_TEST_DATABASE_URL)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.timbel-setup
TIMBEL_HOME ?= .timbel
export TIMBEL_HOME

.PHONY: setup demo dev test lint format bench ci lock clean

setup: $(STAMP)

# Re-run only when the dependencies change; installs exactly the locked versions.
# uv (pinned, installed by pip into the venv) installs the locked set in seconds where pip
# took about three minutes of every fresh setup and CI run; the installed set is the same.
UV_VERSION := 0.9.30
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/timbel demo

# The Dagster UI and daemon on the demo's instance. Sample data unless the environment says
# otherwise (TIMBEL_SAMPLE_DATA=false binds the configured servers instead).
# Where the UI listens: `make dev PORT=3001 HOST=0.0.0.0`. Only the make command line sets
# them (plain `=`, not `?=`): a PORT or HOST a shell or platform exported for something else
# must not move or expose the UI.
HOST = 127.0.0.1
PORT = 3000
_digits = $(subst 0,,$(subst 1,,$(subst 2,,$(subst 3,,$(subst 4,,$(subst 5,,$(subst 6,,$(subst \
	7,,$(subst 8,,$(subst 9,,$(1)))))))))))
dev: setup
	$(if $(strip $(PORT)),,$(error make dev: PORT is empty; give a port number, e.g. PORT=3001))
	$(if $(call _digits,$(PORT)),$(error make dev: PORT must be a port number, not '$(PORT)'))
	$(if $(filter 1,$(words $(HOST))),,$(error make dev: HOST must be one address, not '$(HOST)'))
	@mkdir -p $(TIMBEL_HOME)/dagster && test -f $(TIMBEL_HOME)/dagster/dagster.yaml || \
		printf 'telemetry:\n  enabled: false\n' > $(TIMBEL_HOME)/dagster/dagster.yaml
	DAGSTER_HOME=$(abspath $(TIMBEL_HOME))/dagster TIMBEL_SAMPLE_DATA=$${TIMBEL_SAMPLE_DATA:-true} \
		$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

test: setup
	$(BIN)/pytest -n auto --dist loadgroup --durations=20 --cov --cov-report=term-missing:skip-covered --cov-fail-under=80

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/bandit --quiet --recursive timbel_dagster --severity-level medium
	$(BIN)/lint-imports --no-cache

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python -m benchmarks.run_all

ci: lint
	CI=true $(MAKE) test

# The jupyter extra is not in dev (CI does not need JupyterLab) but its pins belong in the lock.
lock: setup
	$(BIN)/python -m pip install --quiet -e '.[dev,jupyter]'
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^timbel' | \
		sed '1i # Locked versions for CI and users: make setup installs with -c requirements.lock.\n# Regenerate: make lock (after changing pyproject.toml).' > requirements.lock

clean:
	rm -rf $(VENV) $(TIMBEL_HOME) .pytest_cache .ruff_cache .coverage
