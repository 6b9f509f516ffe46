# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-slow docs bench bench-quality clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's requirements change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/mlgraph demo --force

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

docs: $(STAMP)
	$(BIN)/python -m mlgraph_cli.cli.docs > docs/cli.md

# Speed and embedding benchmarks: minutes. Each script prints a table and writes benchmarks/results/*.json.
bench: $(STAMP)
	$(BIN)/python benchmarks/speed.py
	$(BIN)/python benchmarks/extract_speed.py
	$(BIN)/python benchmarks/predict_speed.py
	$(BIN)/python benchmarks/extract_scale.py
	$(BIN)/python benchmarks/asge_scale.py
	$(BIN)/python benchmarks/build_graph_speed.py
	$(BIN)/python benchmarks/embed_quality.py
	$(BIN)/python benchmarks/video_files_speed.py

# Quality studies: they generate data, extract and train many heads (hours on 2 CPU cores).
bench-quality: $(STAMP)
	$(BIN)/python benchmarks/quality.py
	$(BIN)/python benchmarks/thresholds.py
	$(BIN)/python benchmarks/video_quality.py
	$(BIN)/python benchmarks/video_files_quality.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
