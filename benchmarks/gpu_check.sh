#!/usr/bin/env bash
# Everything a lent GPU should run, in one go (<= 8 minutes on an H100/H200), offline:
#   1. build sgs_ext with its CUDA kernels (FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST, default 9.0)
#   2. the CUDA tests (tests/test_ops_cuda.py) and the emulated ones (same kernels on the CPU)
#   3. compute-sanitizer memcheck, racecheck and synccheck on a small case
#   4. benchmarks/gpu_check.py: no host sync, CUDA-graph capture, launch splits, > 2^31
#      elements, and dot_norm / project_ / surgery_ bandwidth against a device copy probe
# Needs: a CUDA build of torch in the active Python (or $PYTHON), nvcc and compute-sanitizer
# (from $CUDA_HOME, default /usr/local/cuda).  Writes one log: $LOG (default
# $OUT/gpu_check.log when $OUT is set, else benchmarks/results/gpu_check.log).
# Exit status: the number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export PATH="$CUDA_HOME/bin:$PATH"
LOG="${LOG:-${OUT:+$OUT/gpu_check.log}}"
LOG="${LOG:-benchmarks/results/gpu_check.log}"
mkdir -p "$(dirname "$LOG")"
exec > >(tee "$LOG") 2>&1
failed=0
step() {  # step NAME TIMEOUT_S COMMAND...
  local name="$1" limit="$2"; shift 2
  echo "== $name ($(date -u +%T))"
  local t0=$SECONDS
  if timeout "$limit" "$@"; then echo "-- $name: ok ($((SECONDS - t0)) s)"
  else echo "-- $name: FAILED (status $?, $((SECONDS - t0)) s)"; failed=$((failed + 1)); fi
}

echo "== gpu_check on $(hostname) at $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'device', torch.cuda.get_device_name(0))" || exit 99

export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-16}"
step build 300 "$PYTHON" setup.py -q build_ext --inplace
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
step import 60 "$PYTHON" -c "import sgs_ext; assert sgs_ext.CUDA_COMPILED, 'built without CUDA'; print('sgs_ext CUDA kernels:', sgs_ext.CUDA_COMPILED)"
step cuda-tests 180 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_ops_cuda.py tests/test_ops_cuda_emulated.py
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck synccheck; do
    step "sanitizer-$tool" 120 compute-sanitizer --tool "$tool" --error-exitcode 1 "$PYTHON" benchmarks/gpu_check.py --small
  done
else
  echo "== compute-sanitizer not found under $CUDA_HOME/bin: sanitizer steps skipped"; failed=$((failed + 1))
fi
step checks 240 "$PYTHON" benchmarks/gpu_check.py
echo "== gpu_check: $failed step(s) failed; log at $LOG"
exit "$failed"
