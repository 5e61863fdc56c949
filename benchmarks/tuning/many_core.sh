#!/usr/bin/env bash
# The many-core figures of docs/performance.md in one go, on a host that has no MindSpore: builds _C and
# the lab module (_bench) with this host's own Python, then runs, over 1..N threads:
#   bench_masters.py   the 16-bit passes against float32 apply and their bandwidth probes
#   bench_kernel.py    ours against DeepSpeed's cpu_adam and torch's fused Adam, where importable
#   bench_prefetch.py  software prefetch on/off (tuning.cpp turns it on only on Intel)
#   bench_grain.py     the thread pool's grain (elements per extra thread), with DeepSpeed beside it
# Each stage has its own time limit and writes its own file, so a stage that fails or runs long
# leaves the others' results.
#
#   OUT=results/ THREADS=1,2,4,8,16 bash benchmarks/tuning/many_core.sh
#   STAGES="masters grain" bash benchmarks/tuning/many_core.sh      # some stages only (default: all four)
#
# PEERS: a folder to put on PYTHONPATH for DeepSpeed (its package copied from an install); PEER_WHEELS:
# a folder of wheels it needs that this host lacks (installed into /tmp/peer-site first).
set -u
cd "$(dirname "$0")/../.."  # the repository root
OUT=${OUT:-benchmarks/results/many_core}
PY=${PYTHON:-python3}
THREADS=${THREADS:-1,2,4,8,$(nproc)}
mkdir -p "$OUT"
# Peers' OpenMP threads sleep between calls instead of spinning on the cores our pool is about to use
# (and ours do not spin either), so interleaved samples do not slow each other down.
export PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE

{
  lscpu
  echo "nproc: $(nproc)"
  echo "THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
  $PY --version
} >"$OUT/machine.txt" 2>&1

if ! MINDSPORE_OFFLOAD_BENCH=1 $PY setup.py -q build_ext --inplace >"$OUT/build.log" 2>&1; then
  tail -40 "$OUT/build.log"
  exit 1
fi
export PYTHONPATH="$PWD"
if [ -n "${PEER_WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/peer-site \
    "$PEER_WHEELS"/*.whl >>"$OUT/build.log" 2>&1 && PYTHONPATH="$PYTHONPATH:/tmp/peer-site"
fi
if [ -n "${PEERS:-}" ]; then
  PYTHONPATH="$PYTHONPATH:$PEERS"
  export DS_ACCELERATOR=cpu  # DeepSpeed's CPU build of cpu_adam, also where a GPU is present
  # DeepSpeed compiles cpu_adam on first use: do it here, apart from the timed stages.
  timeout 240 $PY -c "from deepspeed.ops.op_builder import CPUAdamBuilder as B; B().load(verbose=False)" \
    >"$OUT/deepspeed_build.log" 2>&1 || echo "DeepSpeed cpu_adam did not build (see deepspeed_build.log)"
fi

STAGES=${STAGES:-masters kernel prefetch grain}
stage() {  # stage NAME SECONDS command...
  local name=$1 limit=$2
  shift 2
  case " $STAGES " in *" $name "*) ;; *) return 0 ;; esac
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1 || echo "$name stopped: exit $?"
  tail -n 4 "$OUT/$name.txt"
}
stage masters 150 $PY benchmarks/bench_masters.py --sizes 20,24,26 --threads "$THREADS" --repeat 7 \
  --csv "$OUT/masters.csv"
stage kernel 200 $PY benchmarks/bench_kernel.py --sizes "${KERNEL_SIZES:-20,22,24,26}" --threads "$THREADS" --isas default \
  --no-numpy --no-mindspore --repeat 7 --out-dir "$OUT"
stage prefetch 90 $PY benchmarks/tuning/bench_prefetch.py --sizes 22,24,26 --threads "1,4,$(nproc)" --repeat 9
stage grain 120 $PY benchmarks/tuning/bench_grain.py --sizes "${GRAIN_SIZES:-16,18,20,22}" --threads "4,8,$(nproc)" \
  --grains "${GRAINS:-13,14,15,16,17}" --repeat 15
echo "== done ($(date +%T))"
