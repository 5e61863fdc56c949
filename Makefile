# `make test` and `make example` do all set-up on a fresh machine: a virtual environment in .venv,
# MindSpore and the test tools, then this package built and installed in editable mode.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEPS := $(VENV)/.deps-installed
BUILT := $(VENV)/.package-built
LAB := $(VENV)/.lab-built
SOURCES := $(wildcard csrc/*.cpp csrc/*.h) setup.py pyproject.toml
PYTEST_ARGS ?=

.PHONY: all build test test-aarch64 example sanitize bench dist compat clean

all: test

$(DEPS): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(BUILT): $(DEPS) $(SOURCES)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

build: $(BUILT)

# The lab build, mindspore_offload._bench (same kernel plus bandwidth probe and settable thresholds),
# next to _C in the source tree; benchmarks and the tests that force a path need it, users never do.
$(LAB): $(BUILT) $(SOURCES) $(wildcard csrc/lab/*.cpp csrc/lab/*.h)
	MINDSPORE_OFFLOAD_BENCH=1 $(PY) setup.py -q build_ext --inplace
	touch $@

test: $(BUILT) $(LAB)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

# The aarch64 build under qemu-user (tools/test_aarch64.sh, docs/hosts.md): cross compiler, arm64 Python and
# MindSpore's aarch64 wheel set up once in build/aarch64, then its digests against this x86 build's and the
# CI set of tests at the neon and scalar levels, with parity against aarch64 MindSpore (.ci/run runs it).
# AARCH64_FULL=1 runs the full set (about an hour here). Needs root or sudo for apt-get and binfmt_misc.
test-aarch64: $(BUILT) $(LAB)
	HOST_PY="$(abspath $(PY))" tools/test_aarch64.sh

example: $(BUILT)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) examples/lenet5.py

# The peers (DeepSpeed, torch) are optional and not in requirements-dev.txt: point BENCH_PY at a Python
# that has them (docs/performance.md#how-to-rerun); bench_train.py needs MindSpore, so it uses $(PY).
BENCH_PY ?= $(PY)
bench: $(BUILT) $(LAB)
	PYTHONPATH=$(CURDIR) $(BENCH_PY) benchmarks/bench_kernel.py
	PYTHONPATH=$(CURDIR) $(BENCH_PY) benchmarks/bench_ranks.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_models.py

# The source distribution and a wheel in dist/, each built in an isolated environment from pyproject.toml's
# build requirements (tests/packaging/test_sdist_install.py, run by `make test`, installs the sdist into a
# fresh venv).
dist: $(DEPS)
	rm -rf dist && $(PY) -m build --outdir dist

# The kernel tests under AddressSanitizer and UndefinedBehaviorSanitizer (docs/usage.md#sanitizers),
# against a separate build in build/sanitize (checked to be the library the tests load).
SANITIZE_ENV = ASAN_OPTIONS=detect_leaks=0 PYTHONPATH=. \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)"

sanitize: $(DEPS)
	rm -rf build/sanitize && MINDSPORE_OFFLOAD_SANITIZE=1 MINDSPORE_OFFLOAD_BENCH=1 $(PY) setup.py -q build_ext --build-temp build/sanitize \
		--build-lib build/sanitize/lib
	cp mindspore_offload/*.py build/sanitize/lib/mindspore_offload/
	cd build/sanitize/lib && $(SANITIZE_ENV) $(abspath $(PY)) -c \
		"import mindspore_offload._C as c, mindspore_offload._bench as b; \
		assert '/build/sanitize/' in c.__file__ and '/build/sanitize/' in b.__file__, c.__file__"
	cd build/sanitize/lib && $(SANITIZE_ENV) $(abspath $(PY)) -m pytest -p no:cacheprovider -q \
		$(addprefix $(CURDIR)/tests/,kernel/test_kernel.py kernel/test_lab.py kernel/test_kernel_errors.py \
		entry_points/test_custom_op_entry.py entry_points/test_slice_property.py \
		masters/test_kernel.py masters/test_entry.py masters/test_slice_entry.py)

# The tests marked `compat` on every MindSpore release pip can install here (or on COMPAT_VERSIONS, e.g.
# "2.7.0 2.10.0"), each in its own virtual environment under .compat/ (made once, kept by `make clean`),
# with this package installed from a wheel; the table goes to docs/results/compat-<date>.md
# (docs/usage.md#mindspore-versions). Needs only $(PYTHON) and GCC; not part of `make test` or CI.
COMPAT_VERSIONS ?=
compat:
	$(PYTHON) .ci/compat.py $(COMPAT_VERSIONS)

clean:
	rm -rf build dist *.egg-info mindspore_offload/*.so $(BUILT) $(LAB)
