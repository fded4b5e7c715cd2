# The commands: `make bench` (the main job: the benchmark), `make test` and `make mnist` (the seed's reproduction,
# examples/mnist). Each sets up .venv, installs torch and the test/benchmark tools, builds the extension with pip
# against that torch, then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The torch to build against (a CPU wheel where pip finds one); any torch >= 2.4 works
# (e.g. make test TORCH_SPEC='torch>=2.4').
TORCH_SPEC ?= torch==2.13.0
# onnx, onnxscript (torch.onnx.export) and onnxruntime: the export tests (tests/test_export.py).
TOOLS := "setuptools>=70" wheel ninja pytest numpy expecttest hypothesis tqdm matplotlib onnx onnxscript onnxruntime
# torchvision's model definitions (plain Python) for the networks benchmark's whole models and the layer-list
# checks (tests/test_networks.py). The wheel here is built for another torch, so it goes in without its
# dependencies (which would replace torch); its compiled ops do not load and are not needed
# (benchmarks/networks.py: torchvision_models).
MODELS := torchvision==0.29.1
# Every source under csrc/ (any depth): .h, .cpp, .inc, .cu.
SOURCES := setup.py pyproject.toml $(shell find csrc -type f \( -name "*.h" -o -name "*.cpp" -o -name "*.inc" -o -name "*.cu" \))
BENCH_ARGS ?=
# Fashion-MNIST from Debian's dataset-fashion-mnist; MNIST: MNIST_ARGS='--compare --data-dir DIR'.
MNIST_ARGS ?= --compare --dataset fashion-mnist

.PHONY: test bench mnist build venv clean

$(BIN)/.deps: Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)" $(TOOLS)
	$(BIN)/pip install --quiet --no-deps $(MODELS)
	touch $@

# Rebuilt only when a source changes (a full build takes a few minutes on 2 cores).
$(BIN)/.built: $(BIN)/.deps $(SOURCES)
	MAX_JOBS=$${MAX_JOBS:-2} $(BIN)/pip install --quiet --no-build-isolation -e .
	touch $@

venv: $(BIN)/.deps
build: $(BIN)/.built

test: build
	$(BIN)/python -m pytest -q

bench: build
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

mnist: build
	$(BIN)/python -m examples.mnist.train $(MNIST_ARGS)

clean:
	rm -rf build *.egg-info conv_ext/_C*.so
