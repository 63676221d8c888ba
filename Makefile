# s2vs: install, test, demo. Everything runs from the project's own virtual environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Seeded random weights (labelled as such in the output) for machines that cannot download the
# published ones: `make demo OFFLINE=1`.
DEMO_WEIGHTS := $(if $(OFFLINE),--backbone-weights random --pca random --model random,)

.PHONY: install test demo benchmarks gpu-check clean

install: $(BIN)/s2vs

# torch goes in first, pinned, so pip never picks another build of several GB. The `train` extra (AugLy's
# fonts and emoji for training's overlays) goes in too, so every test runs.
$(BIN)/s2vs: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev,train]'
	touch $@

test: install
	$(BIN)/python -m pytest -q

demo: install
	$(BIN)/python examples/make_demo_pair.py demo
	$(BIN)/s2vs compare demo/original.mp4 demo/suspect.mp4 --heatmap demo/heatmap.png $(DEMO_WEIGHTS)

benchmarks: install
	$(BIN)/python benchmarks/bench_extractor.py
	$(BIN)/python benchmarks/bench_similarity.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_compare.py
	$(BIN)/python benchmarks/bench_extract_features.py
	$(BIN)/python benchmarks/bench_evaluate.py
	$(BIN)/python benchmarks/bench_train.py
	# 100,000 synthetic videos: 7.7 GB in the folder, about 10 minutes
	$(BIN)/python benchmarks/bench_search.py all --folder $${TMPDIR:-/tmp}/s2vs-bench-search

# On a machine with a CUDA GPU: CUDA tests and GPU-against-CPU figures, under 8 minutes (BENCHMARKS.md).
gpu-check:
	bash benchmarks/gpu_check.sh

clean:
	rm -rf $(VENV) demo .pytest_cache *.egg-info
