# The README's two commands: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PKGS := ssf ingest detectors revocation tokenwarden

.PHONY: demo test lint serve bench clean compile

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The detectors' hot modules compiled with mypyc (detectors/_native.py): rebuilt when a
# detector source changes; without a C compiler the same code runs as Python (not in CI).
$(VENV)/.compiled: $(VENV)/.installed setup.py $(wildcard detectors/*.py)
	TOKENWARDEN_COMPILE=1 $(BIN)/python setup.py -q build_ext --inplace \
		|| { echo "mypyc could not compile the detectors: they run as Python" >&2; \
		     [ "$${CI:-}" != true ]; }
	touch $@

compile: $(VENV)/.compiled

demo: $(VENV)/.compiled
	$(BIN)/tokenwarden demo

serve: $(VENV)/.compiled
	$(BIN)/tokenwarden serve

lint: $(VENV)/.installed
	$(BIN)/ruff check $(PKGS) tests bench setup.py
	$(BIN)/ruff format --check $(PKGS) tests bench setup.py
	$(BIN)/mypy $(PKGS)
	$(BIN)/lint-imports

test: lint $(VENV)/.compiled
	$(BIN)/pytest
	# the detectors as Python too: the compiled and the interpreted code must agree
	TOKENWARDEN_PURE_PYTHON=1 $(BIN)/pytest -q tests/detectors

bench: $(VENV)/.compiled
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build detectors/*.so
