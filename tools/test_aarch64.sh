#!/usr/bin/env bash
# `make test-aarch64`: the aarch64 build of the package and its tests, on this x86-64 host, under qemu-user.
#
# Sets up by itself, once (all under $AARCH64_DIR, default build/aarch64, kept between runs):
#   - Debian's cross compiler and qemu-user with its binfmt entry (apt-get; root or sudo);
#   - an arm64 Python 3.11 sysroot: Debian's arm64 packages fetched with `apt-get download`, unpacked
#     with `dpkg -x` (nothing is installed into the host's arm64 side);
#   - MindSpore's aarch64 wheel and the test tools, by pip for the aarch64 platform into site/;
#   - qemu-aarch64 registered with binfmt_misc, so aarch64 programs start aarch64 programs (pytest's
#     subprocesses), with QEMU_LD_PREFIX pointing at the sysroot.
# Then cross-builds _C and _bench in place (mindspore_offload/*.cpython-311-aarch64-linux-gnu.so, next to the
# x86 ones) with the emulated Python running setup.py and aarch64-linux-gnu-g++ compiling, and runs:
#   1. the digests of tests/support/digest.py on aarch64 (every level: neon and scalar) against the
#      digests the x86 build makes here in the same run (every x86 level), entry by entry;
#   2. pytest under emulation: the kernel, entry-point, AdamW and master kernel tests, and parity with
#      nn.AdamOffload and nn.AdamWeightDecay on aarch64 MindSpore, GRAPH_MODE and PyNative. By default the CI
#      set, which .ci/run runs; AARCH64_FULL=1 runs the full set (below, where the lists are).
# The last lines say how long each stage took.
# Emulation measures nothing about speed, and tests that need real parallel time skip themselves here
# (tests/support/paths.py's UNDER_EMULATION). Needs the x86 build (`make build` and the lab build) for 2.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DIR=$REPO/${AARCH64_DIR:-build/aarch64}
SYSROOT=$DIR/sysroot
SITE=$DIR/site
HOST_PY=${HOST_PY:-$REPO/.venv/bin/python}
APY=$SYSROOT/usr/bin/python3.11
# The arm64 packages the emulated Python and MindSpore load (python3.11-minimal's and libpython3.11-stdlib's
# dependencies, libgomp1 and libstdc++6 for MindSpore), and libpython3.11-dev for the headers.
ARM64_DEBS=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev libc6 libgcc-s1
  libstdc++6 libgomp1 gcc-12-base zlib1g libbz2-1.0 liblzma5 libexpat1 libffi8 libssl3 libcrypt1 libdb5.3
  libsqlite3-0 libncursesw6 libtinfo6 libreadline8 libuuid1 libnsl2 libtirpc3 libgssapi-krb5-2 libkrb5-3
  libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2)
# What the tests need, for the aarch64 platform: MindSpore and NumPy as requirements-dev.txt pins them.
SITE_REQS=("$(grep -o '^mindspore==[0-9.]*' requirements-dev.txt)" "$(grep -o '^numpy[^ #]*' requirements-dev.txt)"
  "pytest>=7" "hypothesis>=6" "pybind11>=2.10" "setuptools>=64")

# Each stage's start and name; on exit, pass or fail, the run says how long each took.
STAGES=("0 set-up checks")
step() {
  printf '== %s (at %ds)\n' "$1" "$SECONDS"
  STAGES+=("$SECONDS $1")
}
stage_times() {
  local i line
  STAGES+=("$SECONDS end")
  echo "== time by stage:"
  for ((i = 0; i + 1 < ${#STAGES[@]}; i++)); do
    line=${STAGES[i]}
    printf '   %5ds  %s\n' $((${STAGES[i + 1]%% *} - ${line%% *})) "${line#* }"
  done
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_tools() {
  if command -v aarch64-linux-gnu-g++ >/dev/null && command -v qemu-aarch64 >/dev/null &&
    [ -e /usr/lib/binfmt.d/qemu-aarch64.conf ]; then return; fi
  step "apt-get install g++-aarch64-linux-gnu qemu-user qemu-user-binfmt"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++-aarch64-linux-gnu qemu-user qemu-user-binfmt
}

install_sysroot() {
  local stamp=$SYSROOT/.unpacked-$(echo "${ARM64_DEBS[*]}" | sha256sum | cut -c1-12)
  [ -e "$stamp" ] && return
  step "arm64 Python 3.11 sysroot in $SYSROOT"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then as_root dpkg --add-architecture arm64; fi
  if ! apt-cache show libc6:arm64 >/dev/null 2>&1; then as_root apt-get update -qq; fi
  mkdir -p "$DIR/debs"
  (cd "$DIR/debs" && apt-get download -qq "${ARM64_DEBS[@]/%/:arm64}")
  rm -rf "$SYSROOT"
  for name in "${ARM64_DEBS[@]}"; do dpkg -x "$(ls "$DIR/debs/${name}_"*_arm64.deb | tail -1)" "$SYSROOT"; done
  touch "$stamp"
}

install_site() {
  local stamp=$SITE/.installed-$(echo "${SITE_REQS[*]}" | sha256sum | cut -c1-12)
  [ -e "$stamp" ] && return
  step "pip: ${SITE_REQS[*]} for manylinux2014_aarch64 into $SITE"
  rm -rf "$SITE"
  "$HOST_PY" -m pip install -q --disable-pip-version-check --target "$SITE" --platform manylinux2014_aarch64 --python-version 3.11 \
    --only-binary=:all: "${SITE_REQS[@]}"
  touch "$stamp"
}

# pytest starts aarch64 subprocesses, so the kernel itself must hand aarch64 programs to qemu: binfmt_misc.
# A container needs the right to mount and write it (e.g. docker run --privileged), or the entry registered
# on the host (then every container sees it). Without either the run stops here and says so.
register_binfmt() {
  local misc=/proc/sys/fs/binfmt_misc
  if [ ! -e $misc/register ]; then
    as_root mount -t binfmt_misc binfmt_misc $misc || binfmt_failed "cannot mount binfmt_misc on $misc"
  fi
  if [ ! -e $misc/qemu-aarch64 ]; then
    as_root sh -c "cat /usr/lib/binfmt.d/qemu-aarch64.conf > $misc/register" ||
      binfmt_failed "cannot register qemu-aarch64 through $misc/register"
  fi
  [ "$(head -1 $misc/qemu-aarch64)" = enabled ] || binfmt_failed "$misc/qemu-aarch64 is registered but disabled"
}
binfmt_failed() {
  printf '%s\n' "test_aarch64.sh: $1." \
    "The aarch64 tests start aarch64 programs through qemu-user, which needs qemu-aarch64 registered with the" \
    "kernel's binfmt_misc, and this host or container does not allow that. Run as root on a host or VM, or" \
    "run the container with --privileged, or register it once on the host (apt-get install qemu-user-binfmt)." >&2
  exit 1
}

trap stage_times EXIT
install_tools
install_sysroot
install_site
register_binfmt
export QEMU_LD_PREFIX=$SYSROOT PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1
"$APY" -c "import platform, sys; assert platform.machine() == 'aarch64', platform.machine()"

step "cross-build _C and _bench for aarch64"
# The emulated Python runs setup.py, so the build takes aarch64's sources, flags and EXT_SUFFIX as a native
# aarch64 build would; the compiler is the x86-64 cross GCC (a native program, started through execve). All
# its files stay in $DIR, so an empty $DIR means a fresh build.
PYTHONPATH=$SITE CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LDSHARED="aarch64-linux-gnu-g++ -shared" \
  MINDSPORE_OFFLOAD_BENCH=1 "$APY" setup.py -q build_ext --inplace --build-temp "$DIR/temp" --build-lib "$DIR/lib" \
  --include-dirs "$SYSROOT/usr/include/python3.11:$SYSROOT/usr/include"
for so in _C _bench; do  # an ELF for machine 183 (EM_AARCH64)
  [ "$(od -An -tu2 -j18 -N2 "mindspore_offload/$so.cpython-311-aarch64-linux-gnu.so" | tr -d ' ')" = 183 ] ||
    { echo "mindspore_offload/$so for aarch64 was not built" >&2; exit 1; }
done

# The CI set emulates the neon level alone (5-6 minutes here, against 10-11 for both); the scalar level's bits
# equal neon's in the tests below, which force every level. AARCH64_FULL=1 makes both levels' digests.
ARM_LEVELS=${AARCH64_FULL:+neon,scalar}
ARM_LEVELS=${ARM_LEVELS:-neon}
step "digests: x86-64 (native, every level) and aarch64 (emulated, $ARM_LEVELS)"
PYTHONPATH=$REPO "$HOST_PY" tests/support/digest.py --quick --json "$DIR/digest-x86_64.json" >/dev/null
PYTHONPATH=$REPO:$SITE "$APY" tests/support/digest.py --quick --levels "$ARM_LEVELS" --json "$DIR/digest-aarch64.json" >/dev/null
"$HOST_PY" tests/support/digest.py --compare "$DIR/digest-x86_64.json" "$DIR/digest-aarch64.json"

# What pytest runs under emulation. The default is the CI set (.ci/run; 5 of the run's 12 minutes from nothing
# on 2 quiet vCPUs, about twice that under load, docs/hosts.md): the kernel, entry-point, AdamW and 16-bit
# master tests at the neon and scalar levels and every thread count, and optimizer-level parity on aarch64
# MindSpore in GRAPH_MODE and PyNative (nn.AdamOffload with float32 parameters; the masters of float16,
# bfloat16 and float32 parameters against the float32 path; nn.AdamWeightDecay step by step). It leaves out
# what costs minutes under qemu and checks nothing aarch64-specific: the slicing property test (12 minutes
# under load; its arithmetic is Python and the slice entries run in test_custom_op_entry.py,
# test_adamw_entry.py, masters/test_slice_entry.py and the digests) and the tests that start MindSpore or the
# package in subprocesses to read their environment handling.
# AARCH64_FULL=1 (`AARCH64_FULL=1 make test-aarch64`) runs the full set instead: tests/kernel but the idle-CPU
# timing of test_threads_idle.py (test_portability.py and the tests that pin MindSpore's x86 rounding skip
# themselves off x86-64, saying so), tests/entry_points, the master kernel and entry tests, the AdamW parity
# file whole, and two more parity cases with nn.AdamOffload (nesterov). PYTEST_ARGS is added to either.
PARITY=(
  "tests/optimizer/test_parity.py::test_trains_like_mindspore_adam_offload[defaults-graph]"
  "tests/optimizer/test_parity.py::test_trains_like_mindspore_adam_offload[defaults-pynative]"
  "tests/masters/test_optimizer.py::test_masters_follow_the_float32_path_bit_for_bit[plain-graph]"
  "tests/masters/test_optimizer.py::test_masters_follow_the_float32_path_bit_for_bit[plain-pynative]"
)
if [ -n "${AARCH64_FULL:-}" ]; then
  TESTS=(tests/kernel/test_kernel.py tests/kernel/test_kernel_errors.py tests/kernel/test_lab.py
    tests/kernel/test_fp_env.py tests/kernel/test_reliability.py tests/kernel/test_threads_default.py
    tests/kernel/test_portability.py tests/kernel/test_kernel_mindspore.py tests/kernel/test_leftover_mindspore.py
    tests/kernel/test_adamw.py tests/kernel/test_adamw_mindspore.py tests/entry_points tests/masters/test_kernel.py
    tests/masters/test_entry.py tests/masters/test_slice_entry.py "${PARITY[@]}"
    "tests/optimizer/test_parity.py::test_trains_like_mindspore_adam_offload[nesterov-graph]"
    "tests/optimizer/test_parity.py::test_trains_like_mindspore_adam_offload[nesterov-pynative]"
    tests/optimizer/test_adamw_parity.py)
  DESELECT=()
  SET="full set"
else
  TESTS=(tests/kernel/test_kernel.py tests/kernel/test_kernel_errors.py tests/kernel/test_lab.py
    tests/kernel/test_fp_env.py tests/kernel/test_reliability.py tests/kernel/test_threads_default.py
    tests/kernel/test_adamw.py tests/kernel/test_adamw_mindspore.py
    tests/kernel/test_kernel_mindspore.py::test_isa_environment_forces_level
    tests/entry_points/test_custom_op_entry.py tests/entry_points/test_adamw_entry.py
    tests/entry_points/test_bucket_entry.py
    tests/masters/test_kernel.py tests/masters/test_entry.py tests/masters/test_slice_entry.py "${PARITY[@]}"
    "tests/optimizer/test_adamw_parity.py::test_fixed_gradients_step_by_step[in-place-graph]"
    "tests/optimizer/test_adamw_parity.py::test_fixed_gradients_step_by_step[in-place-pynative]")
  DESELECT=(--deselect tests/kernel/test_lab.py::test_threshold_environment_overrides_and_errors
    --deselect tests/kernel/test_fp_env.py::test_what_importing_mindspore_does_to_the_fp_control
    --deselect tests/kernel/test_threads_default.py::test_import_applies_the_rank_share_and_the_override_wins)
  SET="CI set (AARCH64_FULL=1 for the full set)"
fi

step "pytest on aarch64, the $SET"
# MindSpore's import turns on flush-to-zero in the importing thread on aarch64 (tests/kernel/test_fp_env.py),
# so NumPy's finfo, first computed by SciPy inside that import, warns that the smallest subnormal is zero;
# the project's warnings-as-errors would make that warning fail the import itself.
PYTHONPATH=$REPO:$SITE "$APY" -m pytest -p no:cacheprovider -q -rs --durations=15 ${PYTEST_ARGS:-} \
  -W "ignore:The value of the smallest subnormal:UserWarning" "${DESELECT[@]}" "${TESTS[@]}"
