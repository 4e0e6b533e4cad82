# The course's commands. `make lab` runs the course, `make test` passes the tests; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8888
LAB_ARGS ?=
# JupyterLab refuses to run as root without --allow-root; added apart from LAB_ARGS so that setting LAB_ARGS keeps it
ROOT_ARGS := $(if $(filter 0,$(shell id -u)),--allow-root,)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9]*.ipynb))

.PHONY: help setup lab test unit nbtest bench gpu-report fetch student e2e clean

help:  ## list the commands
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install the course (done by every other command)

lab: setup  ## start JupyterLab on the course (HOST, PORT, LAB_ARGS to change)
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=$(HOST) --port=$(PORT) $(ROOT_ARGS) $(LAB_ARGS)

test: setup  ## unit tests + every notebook under nbval with COURSE_PROFILE=smoke
	COURSE_PROFILE=smoke COURSE_CHECKS_STRICT=1 $(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval-lax --durations=20

unit: setup  ## unit tests only (fast)
	COURSE_PROFILE=smoke $(BIN)/python -m pytest tests

nbtest: setup  ## notebooks only, under nbval with COURSE_PROFILE=smoke
	COURSE_PROFILE=smoke COURSE_CHECKS_STRICT=1 $(BIN)/python -m pytest $(NOTEBOOKS) --nbval-lax --durations=0

bench: setup  ## print the course's benchmark table, write bench/results.json
	MPLBACKEND=Agg $(BIN)/python -m course_lib bench

gpu-report: setup  ## on a CUDA GPU: measure the full profile's targets in minutes, write bench/gpu.json
	MPLBACKEND=Agg $(BIN)/python -m course_lib gpu-report

fetch: setup  ## download datasets, weights and paintings into data/ for offline use
	$(BIN)/python -m course_lib fetch

student: setup  ## write build/student/*.ipynb: solutions replaced by stubs, outputs cleared
	$(BIN)/python tools/student.py --src notebooks --out build/student

E2E_NOTEBOOK ?= notebooks/01_gan.ipynb
CHROMIUM ?= /usr/bin/chromium
e2e: setup  ## run E2E_NOTEBOOK in JupyterLab in headless Chromium, move its slider, screenshot to build/e2e/
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "make e2e: installing Debian's chromium (apt-get)"; \
	    $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get install -y -qq chromium; \
	  else \
	    echo "make e2e needs Chromium at $(CHROMIUM) and apt-get is not available here:" \
	         "install Chromium with your package manager and pass CHROMIUM=/path/to/chromium" >&2; exit 1; \
	  fi; \
	fi
	COURSE_PROFILE=smoke $(BIN)/python tools/e2e.py $(E2E_NOTEBOOK) --chromium $(CHROMIUM) --out build/e2e

clean:  ## remove the virtual environment and build outputs (keeps data/)
	rm -rf $(VENV) build .pytest_cache
