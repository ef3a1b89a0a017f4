# Two commands do all the set-up on a fresh machine:
#   make demo   venv + install + execute notebooks/00_tour.ipynb in a real kernel -> out/00_tour.html
#   make test   venv + install + Chromium (if missing) + ruff + the whole test suite
#   make check  the inner loop: ruff + the fast unit tests (no browser, no notebook, nothing marked slow)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_FLAGS := -c constraints.txt $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
CHROMIUM := /usr/bin/chromium

.PHONY: venv demo test check lint lab bench chromium tour docs gallery golden clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_FLAGS) -e ".[notebook,test,bench]"
	touch $@

venv: $(VENV)/.installed

chromium:
	@test -x $(CHROMIUM) || { echo "installing Chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core) \
	  || (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core); }

lint: venv
	$(PY) -m ruff check nbdebug tests bench docs notebooks/build_tour.py
	$(PY) -m ruff format --check nbdebug tests bench docs notebooks/build_tour.py

test: venv chromium lint
	$(PY) notebooks/build_tour.py --check
	$(PY) docs/readme_tables.py --check
	$(PY) -m pytest -q

check: venv lint
	$(PY) -m pytest -q -x -m "not browser and not notebook and not slow" -p no:cacheprovider

# regenerate tests/golden/*.txt after an intended change to a result's text; review the diff before committing
golden: venv
	NBDEBUG_UPDATE_GOLDEN=1 $(PY) -m pytest -q tests/test_golden.py

tour: venv
	$(PY) notebooks/build_tour.py

demo: venv
	@mkdir -p out
	$(PY) -m jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.store_widget_state=False \
	  --output-dir out notebooks/00_tour.ipynb
	@echo "Tour executed in a real kernel and written to $(CURDIR)/out/00_tour.html"

lab: venv
	$(PY) -m jupyter lab notebooks

bench: venv
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) out test-artifacts

docs: venv
	$(PY) docs/readme_tables.py

# README gallery: the browser tests save each panel's screenshot to docs/img/ when NBDEBUG_GALLERY=1
gallery: venv chromium
	NBDEBUG_GALLERY=1 $(PY) -m pytest -q tests/browser
