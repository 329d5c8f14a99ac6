# The README's two set-up commands: `make demo` and `make test`. Both create .venv
# and install the project with every pip call pinned by constraints.txt (CPU torch).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench gpu-check mutate mutate-sample clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test,lightning,transformers]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bagoftricks demo

test: $(STAMP)
	$(PY) -m pytest -q

$(VENV)/.bench: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[bench]'
	touch $@

bench: $(VENV)/.bench
	$(PY) benchmarks/run.py

# The CUDA tests and a GPU timing of the loop (a no-op without CUDA; under 5 minutes).
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py

$(VENV)/.dev: $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# Mutation testing (docs/mutation.md), not part of CI: hours on 2 cores for every module;
# mutmut keeps its results and resumes. ONLY narrows it: make mutate ONLY='bagoftricks.plateau*'
mutate: $(VENV)/.dev
	$(VENV)/bin/mutmut run $(ONLY)
	$(VENV)/bin/mutmut results > mutants/survivors.txt
	$(VENV)/bin/mutmut results --all true | $(PY) tools/mutation_scores.py

# A seeded sample of N unchecked mutants per module (default 30), scored with intervals:
# make mutate-sample N=30 SEED=1 ONLY='bagoftricks.bias bagoftricks.loop'
# (The first mutmut call only generates the mutants and the test map: its filter matches none.)
mutate-sample: $(VENV)/.dev
	-$(VENV)/bin/mutmut run 'generate.only' > /dev/null 2>&1
	names="$$($(VENV)/bin/mutmut results --all true | \
		$(PY) tools/mutation_sample.py $(or $(N),30) $(or $(SEED),0) $(ONLY))"; \
	test -n "$$names" || { echo "mutate-sample: no unchecked mutants match"; exit 1; }; \
	$(VENV)/bin/mutmut run --max-children 1 $$names
	$(VENV)/bin/mutmut results > mutants/survivors.txt
	$(VENV)/bin/mutmut results --all true | $(PY) tools/mutation_scores.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV)
