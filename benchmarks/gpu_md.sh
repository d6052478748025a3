#!/usr/bin/env bash
# MD throughput on a GPU, in one call of a leased GPU machine: bench_md.py's rows for the
# 1,000-atom molten NaCl (SR and LR, float32 and mixed precision, with the ASE step for the ratio),
# the 10,648-atom cell and the 66-atom Au2/MgO slab (float32), one process per row set.
#
# The GPU image has Python 3.12 with jax (CUDA), flax, optax, numpy, scipy and matplotlib but not
# e3nn-jax, jax-md, ase or vesin; they travel as wheels in .whl/ (ignored by git):
#
#   bash benchmarks/gpu_md.sh download     # here, once, where PyPI is reachable: fills .whl/
#   bash benchmarks/gpu_md.sh run [OUT]    # there: installs .whl/ into /tmp/site (no network),
#                                          # writes OUT/md_gpu.jsonl and OUT/md_gpu.log
#
# OUT defaults to $OUT (the device tool's output folder), else benchmarks/results/gpu. Each step
# has its own time limit and the run stops starting new steps after GPU_MD_BUDGET_S seconds
# (default 480), so a 600 s call returns with what it measured, most important rows first.
# Works on a CPU too (for checking the script): GPU_MD_SMALL=1 shrinks every size.
set -uo pipefail
cd "$(dirname "$0")/.."

WHEELS=(e3nn-jax==0.21.0 jax-md==0.2.29 ase==3.29.0 vesin==0.6.2 jraph==0.0.6.dev0 ml-collections==1.1.0
        frozendict==2.5.1)

case "${1:-}" in
download)
    mkdir -p .whl
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}" || exit 1
    ls .whl
    exit 0 ;;
run) ;;
*) echo "usage: bash benchmarks/gpu_md.sh download|run [OUT]" >&2; exit 2 ;;
esac

out="${2:-${OUT:-benchmarks/results/gpu}}"
mkdir -p "$out"
log="$out/md_gpu.log"
rows="$out/md_gpu.jsonl"
py="${PYTHON:-python3}"

if ls .whl/*.whl >/dev/null 2>&1; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "wheel install failed" | tee -a "$log"; exit 1; }
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false

{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
  "$py" -c "import jax; print('jax', jax.__version__, jax.devices())"; } 2>&1 | tee -a "$log"

budget="${GPU_MD_BUDGET_S:-480}"
start=$SECONDS
small="${GPU_MD_SMALL:-0}"
n1=1000; n2=10648; slab=experiments/data/xtb/au2_mgo.xyz.gz
if [ "$small" = 1 ]; then n1=64; n2=216; fi

step() {  # step LIMIT_S ARGS...: one bench_md.py process, its rows appended to $rows
    local limit=$1; shift
    local left=$((budget - (SECONDS - start)))
    if [ "$left" -le 30 ]; then echo "[gpu_md] budget spent, skipped: $*" | tee -a "$log"; return; fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "[gpu_md] $((SECONDS - start)) s: bench_md.py $* (limit $limit s)" | tee -a "$log"
    timeout "$limit" "$py" benchmarks/bench_md.py "$@" 2>>"$log" | tee -a "$rows"
    echo "[gpu_md] exit ${PIPESTATUS[0]}" | tee -a "$log"
}

# most important first: the issue's GPU goal (LR, 1000 atoms, float32) and the ratio to ASE
step 200 --natoms "$n1" --models lr sr --dtype float32 --chunk 50 --rounds 5 --ase-steps 10
step 120 --natoms "$n1" --models lr sr --dtype mixed --chunk 50 --rounds 5 --ase-steps 0
step 120 --natoms "$n2" --models sr lr --dtype float32 --chunk 10 --rounds 3 --ase-steps 0
step 80 --natoms 0 --slab "$slab" --models sr lr --dtype float32 --chunk 50 --rounds 5 --ase-steps 10
echo "[gpu_md] done in $((SECONDS - start)) s" | tee -a "$log"
