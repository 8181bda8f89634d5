# The two commands a user needs are `make demo` and `make test`; each sets up .venv on its own.
# GPU users: `make install TORCH=torch CONSTRAINTS=` (any torch from PyPI, CUDA wheels included).

PYTHON      ?= python3
VENV        ?= .venv
TORCH       ?= torch==2.13.0
CONSTRAINTS ?= ci/constraints-cpu.txt
PIP_FLAGS   ?= --quiet --disable-pip-version-check

BIN      := $(VENV)/bin
MEMBERS  := shared $(sort $(wildcard packages/*))
STAMP    := $(VENV)/.installed
PIP      := $(BIN)/python -m pip $(PIP_FLAGS)
CFLAG    := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))
# Triton kernels run on the CPU through the interpreter in tests and demos (no-op on a GPU machine
# only if the caller unsets it).
export TRITON_INTERPRET ?= 1

.PHONY: install demo test test-fast lint bench bench-gpu wheels ci-matrix clean

install: $(STAMP)

$(STAMP): $(wildcard shared/pyproject.toml packages/*/pyproject.toml) $(CONSTRAINTS) Makefile
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip hatchling editables
	$(PIP) install $(CFLAG) "$(TORCH)"
	$(PIP) install $(CFLAG) --no-build-isolation pytest ruff build $(foreach m,$(MEMBERS),-e "$(m)[all]")
	@touch $@
	@echo "installed into $(VENV): $(MEMBERS)"

demo: $(STAMP)
	$(BIN)/python ci/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not packaging"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	@for f in shared/benchmarks/bench_*.py packages/*/benchmarks/bench_*.py; do \
	  [ -f $$f ] || continue; echo "== $$f"; TRITON_INTERPRET=0 $(BIN)/python $$f || exit 1; done

# The one GPU suite (run on the device machine with its own Python; see benchmarks/gpu_suite.py).
bench-gpu:
	bash benchmarks/gpu_suite.sh $(OUT)

wheels: $(STAMP)
	@rm -rf dist && mkdir -p dist
	@for m in $(MEMBERS); do $(BIN)/python -m build --wheel --no-isolation --outdir dist $$m >/dev/null || exit 1; done
	@ls dist

ci-matrix:
	@$(PYTHON) ci/members.py --matrix

clean:
	rm -rf $(VENV) dist build .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
