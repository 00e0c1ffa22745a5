# The two commands of the README: `make run` (install + start the app) and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Datasets may live in ./data; on dev machines and CI the shared real photos sit beside the repo.
export TRANSFERLAB_DATA_ROOTS ?= $(CURDIR)/data:$(abspath $(CURDIR)/../shared/datasets)

.PHONY: install run test
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-ray.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt -r requirements-ray.txt
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/streamlit run serve.py

# Two test processes (pytest-xdist), a test file each at a time: most tests wait on a subprocess, a browser or
# a single Python thread, so two share 2 cores well; a file's tests keep their module fixtures (one Ray runtime).
test: install
	$(PY) -m pytest -n 2 --dist loadfile
