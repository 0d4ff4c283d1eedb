# Two commands for a fresh machine: `make demo` (install + the end-to-end demo) and `make test`.
# The virtual environment lives outside the checkout, keyed by a hash of the pins, so it is built once and
# rebuilt whenever constraints.txt, setup.cfg or pyproject.toml change.
SHELL := /bin/bash
PYTHON ?= python3
KEY := $(shell cat constraints.txt setup.cfg pyproject.toml | sha256sum | cut -c1-12)
VENV ?= $(HOME)/.cache/finetuner/venv-$(KEY)
PY := $(VENV)/bin/python
export JINA_OPTOUT_TELEMETRY := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export HF_HUB_OFFLINE := 1

.PHONY: install demo test lint bench

$(VENV)/.installed:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[all,test,bench]'
	touch $@

install: $(VENV)/.installed
	@# point the editable install at this checkout (CI clones elsewhere)
	@$(PY) -c "import finetuner, pathlib, sys; sys.exit(pathlib.Path(finetuner.__file__).resolve().parents[1] != pathlib.Path('$(CURDIR)').resolve())" \
		|| $(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .

demo: install
	$(VENV)/bin/finetuner demo

test: install
	$(PY) -m pytest -q -p no:cacheprovider tests

lint: install
	$(VENV)/bin/ruff check finetuner tailor_ir models tests benchmarks

bench: install
	for script in onnx_conformance tailor_torch tailor_keras tailor_paddle fit_quality fit_text serving labeler distributed; do \
		(cd benchmarks && $(PY) $$script.py) || exit 1; \
	done
	for framework in torch keras paddle; do \
		(cd benchmarks && $(PY) tailor_zoo.py --framework $$framework) || exit 1; \
	done
