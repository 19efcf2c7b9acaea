# SWBA-MLIR: one-command build, demo and tests.
#   make demo    build, then run swba-opt on the bundled examples
#   make check   build, then run the lit test suite (check-swba)
#   make check-python  the Python package's tests (pytest) in a virtual
#                environment under the build directory with PyTorch from PyPI;
#                the GPU tests skip themselves without CUDA
#   make docs    regenerate docs/*.md (dialect, passes) from the ODS definitions

BUILD ?= build
LLVM_PREFIX ?= /usr/lib/llvm-22
SWBA_OPT := $(BUILD)/bin/swba-opt
VENV ?= $(BUILD)/venv-torch

.PHONY: all setup configure build check check-python demo docs clean

all: build

setup:
	bash scripts/setup.sh

$(BUILD)/build.ninja: | setup
	cmake -G Ninja -S . -B $(BUILD) \
	  -DCMAKE_BUILD_TYPE=Release \
	  -DMLIR_DIR=$(LLVM_PREFIX)/lib/cmake/mlir \
	  -DPython3_EXECUTABLE=/usr/bin/python3

configure: $(BUILD)/build.ninja

build: configure
	ninja -C $(BUILD)

check: build
	ninja -C $(BUILD) check-swba

$(VENV)/bin/pytest: | setup
	/usr/bin/python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check torch numpy pytest

check-python: build $(VENV)/bin/pytest
	SWBA_OPT=$(abspath $(SWBA_OPT)) $(VENV)/bin/python -m pytest -q python/tests

demo: build
	@for f in examples/*.mlir; do \
	  flags=$$(sed -n 's|^// DEMO: ||p' $$f); \
	  echo "== swba-opt $$f $$flags"; \
	  $(SWBA_OPT) $$f $$flags || exit 1; \
	done

docs: build
	ninja -C $(BUILD) mlir-doc
	cp $(BUILD)/docs/SWBA/*.md docs/

clean:
	rm -rf $(BUILD)
