PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: test demo clean-venv

# The virtual environment is rebuilt whenever requirements.txt changes.
$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

test: $(STAMP)
	$(VENV_PYTHON) -m pytest -q tests

clean-venv:
	rm -rf $(VENV)
