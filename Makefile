# Two commands: `make run` starts everything on embedded defaults, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test demo venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/accord dev

test: $(STAMP)
	$(BIN)/pytest -q

demo: $(STAMP)
	$(BIN)/accord demo

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
