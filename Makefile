# mt5lab: the two commands are `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
LOCK    := requirements-lock.txt
STAMP   := $(VENV)/.installed

.PHONY: demo test install lint lab ui report bench soak soak-ci audit clean-data help

help:
	@echo "make demo    - install into .venv, load the real samples, build, apply, materialize, print online features"
	@echo "make test    - the whole test suite (unit, services, notebooks); what CI runs"
	@echo "make lab     - JupyterLab on notebooks/ with an mt5lab kernel"
	@echo "make ui      - Feast's web UI (feast ui) on http://127.0.0.1:8888 [UI_PORT= PROFILE= TIMEFRAME=]"
	@echo "make report  - execute every notebook into reports/ (ipynb, HTML, PNG, index.html)"
	@echo "make bench   - run the benchmarks (ratios against baselines, one run)"
	@echo "make lint    - ruff"
	@echo "make soak    - 5 min soak: feature server under load while update writes (soak-ci: 60 s, fails on errors)"
	@echo "make audit   - pip-audit of requirements-lock.txt (says DEGRADED if it could not look)"

$(STAMP): pyproject.toml $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mt5lab demo

test: $(STAMP)
	$(BIN)/ruff check mt5lab tests benchmarks feature_repo
	$(BIN)/python -m pytest
	# nbval runs every notebook on its defaults, against the store MT5LAB_DATA_DIR names (the user's
	# store rule): a throwaway store, given the samples through the CLI as a user would.
	nb="$$(mktemp -d)" && export MT5LAB_DATA_DIR="$$nb/data" TQDM_DISABLE=1 && \
	  $(BIN)/mt5lab ingest --sample >/dev/null && $(BIN)/mt5lab build >/dev/null && \
	  MPLBACKEND=Agg MT5LAB_NB_BATCH=1 JUPYTER_PATH="$(CURDIR)/$(VENV)/share/jupyter" MT5LAB_NB_OUT="$$nb" \
	  $(BIN)/python -m pytest --nbval-lax notebooks/

lint: $(STAMP)
	$(BIN)/ruff check mt5lab tests benchmarks feature_repo

lab: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name mt5lab --display-name "mt5lab (.venv)"
	$(BIN)/jupyter lab notebooks/

# Feast's own web UI (the server `feast ui` runs) on 127.0.0.1 only: `mt5lab ui`, which takes the
# store from mt5lab's setup (works for postgres and without exported variables).
#   make ui [UI_PORT=8888] [PROFILE=local|postgres] [TIMEFRAME=D1|H1|...]
UI_PORT   ?= 8888
PROFILE   ?= $(MT5LAB_PROFILE)
TIMEFRAME ?= $(MT5LAB_TIMEFRAME)
ui: $(STAMP)
	@exec $(BIN)/mt5lab ui --port '$(UI_PORT)' $(if $(PROFILE),--profile '$(PROFILE)') \
	  $(if $(TIMEFRAME),--timeframe '$(TIMEFRAME)')

report: $(STAMP)
	$(BIN)/python -m mt5lab.notebook.report reports/

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_compute.py
	$(BIN)/python benchmarks/bench_ingest_pg.py
	$(BIN)/python benchmarks/bench_materialize.py
	$(BIN)/python benchmarks/bench_online.py
	$(BIN)/python benchmarks/bench_server.py
	$(BIN)/python benchmarks/bench_training_set.py
	$(BIN)/python benchmarks/bench_follow.py
	$(BIN)/python benchmarks/bench_model.py
	$(BIN)/python benchmarks/bench_spark.py
	@command -v wrk >/dev/null && command -v h2load >/dev/null || { echo "bench_wrk.py needs wrk and h2load: apt-get install wrk nghttp2-client"; exit 1; }
	$(BIN)/python benchmarks/bench_wrk.py

soak: $(STAMP)
	$(BIN)/python benchmarks/bench_soak.py --seconds 300

# CI: a 60 s soak that fails on any request or update error (a correctness check, not a timing one).
soak-ci: $(STAMP)
	$(BIN)/python benchmarks/bench_soak.py --seconds 60 --check

# pip-audit on the locked set; prints DEGRADED (exit 0) when the vulnerability service cannot answer.
audit: $(STAMP)
	$(BIN)/python benchmarks/audit_deps.py

clean-data:
	rm -rf data/ reports/
