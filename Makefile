PYTHON ?= python3
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: test demo docs clean-venv

# The demo: a synthetic dataset in the real layout, its dictionary, a short training run and the AUC table.
DEMO_STEPS ?= 200

# The virtual environment: the pinned requirements, then this project installed editable with its test and deploy
# extras (console commands s3r-train, ...; the exporter and runtimes of s3r export, which the tests run). Rebuilt
# whenever requirements.txt or pyproject.toml changes.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet -r requirements.txt
	$(VENV_PYTHON) -m pip install --quiet -e ".[test,deploy]"
	touch $(STAMP)

# The suite in two parts: first every other test in TEST_WORKERS processes of one thread each (a file's tests in one
# process, so that its fixtures are built once); then alone, on every thread, the streams fed in real time (on a
# loaded CPU a live watch drops snippets) and the parity tests again (their rounding depends on the thread count).
TEST_WORKERS ?= 2

test: $(STAMP)
	OMP_NUM_THREADS=1 $(VENV_PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not realtime" tests
	$(VENV_PYTHON) -m pytest -q -m "realtime or parity" tests

demo: $(STAMP)
	$(VENV_PYTHON) tools/make_synthetic_dataset.py
	$(VENV_PYTHON) tools/learn_dictionary.py --dataset synthetic
	$(VENV_PYTHON) tools/trainval_anomaly_detector.py --dataset synthetic --version demo \
		--max_epoch $(DEMO_STEPS) --evaluate_min_step 0 --evaluate_freq 25
	$(VENV_PYTHON) tools/trainval_anomaly_detector.py --dataset synthetic --version demo \
		--inference --resume checkpoint/demo/synthetic_s3r_i3d_best.pth

# The command reference, docs/commands.md, rendered from the argument parsers (tests/test_docs.py checks it).
docs: $(STAMP)
	$(VENV_PYTHON) -m anomaly.cli.reference

clean-venv:
	rm -rf $(VENV)
