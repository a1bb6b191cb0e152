#!/usr/bin/env bash
# One-shot device check (issue #22): every GPU check in ONE run of at most 8 minutes on one GPU,
# results as JSON under $OUT, rendered into benchmarks.md.
#
#   benchmarks/device_check.sh            # CUDA when torch sees a GPU ("full" sizes), else the CPU ("tiny")
#   benchmarks/device_check.sh --cpu      # force the CPU and the tiny sizes (also CAR_CHECK_DEVICE=cpu)
#   CAR_CHECK_DEVICE=cuda benchmarks/device_check.sh   # force the full sizes
#   OUT=/tmp/dc benchmarks/device_check.sh
#
# Steps, each under its own time limit and all under CAR_CHECK_LIMIT_S (480 s):
#   gpu_tests  pytest -m gpu (tests/test_gpu.py): a golden case on CUDA makes the official decisions,
#              stages keep tensors on the device, no per-query host<->device copies, the fp16-weights
#              mode (Q32), autocast, a whole evaluate.py run on the GPU (Lightning, CRF and DataLoader
#              workers) against the CPU run
#   bench      benchmarks/bench_car.py, ViT-B/16 proposals + ViT-L/14 classifier, 20 VOC classes on
#              ~500x375 VOC images, random weights: images/s, ms per stage (first image and steady
#              state), peak memory, in fp32, fp16 autocast and fp16_weights; the per-query reference
#              path on one steady image; the CRF worker pool of car/run/predictor.py overlapping the GPU work
#   golden     the six golden cases end to end on the device, fp32 then fp16_weights, decisions vs the
#              official CPU run (benchmarks/device_check.py golden; full size only: on the CPU
#              tests/test_golden.py does this); last, with the time left
#   report     $OUT/device_check.json (summary, GPU tests, golden parity) and benchmarks.md
#
# $OUT (default outputs/device_check) receives at most 8 files, as the device tool brings back:
#   device_check.json, golden_parity.json, device_check.log, benchmarks.md, benchmarks/<name>_<precision>.json
# The full run also renders results/benchmarks.md in the tree it runs in (with results/benchmarks/*.json);
# to publish a device run here: copy $OUT/benchmarks/*.json to results/benchmarks/ and
# $OUT/device_check.json to results/device_check/, then `python benchmarks/report.py --device-check results/device_check`.
#
# A bare GPU machine lacks packages and ../shared: run benchmarks/device_prep.sh here first and carry
# .whl and .device (this script installs .whl into /tmp/car-site and reads .device/{data,golden}).
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
START=$(date +%s)
LIMIT=${CAR_CHECK_LIMIT_S:-480}
DEVICE=${CAR_CHECK_DEVICE:-}
[ "${1:-}" = "--cpu" ] && DEVICE=cpu
OUT=${OUT:-$REPO/outputs/device_check}
mkdir -p "$OUT/benchmarks"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
LOG="$OUT/device_check.log"
: >"$LOG"
if [ -z "${PY:-}" ]; then  # the active venv, the checkout's .venv, else python3 (a GPU machine's torch)
  if [ -n "${VIRTUAL_ENV:-}" ]; then PY="$VIRTUAL_ENV/bin/python"
  elif [ -x "$REPO/.venv/bin/python" ]; then PY="$REPO/.venv/bin/python"
  else PY=python3; fi
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg

# packages carried as files to a bare machine (benchmarks/device_prep.sh)
if [ -d "$REPO/.whl" ] && ! "$PY" -c "import open_clip, hydra, pydensecrf" 2>/dev/null; then
  echo "== installing .whl into /tmp/car-site" | tee -a "$LOG"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --no-build-isolation \
    --target /tmp/car-site "$REPO"/.whl/* >>"$LOG" 2>&1
  export PYTHONPATH="$REPO:/tmp/car-site${PYTHONPATH:+:$PYTHONPATH}"
fi
# data that does not travel (../shared beside a developer's checkout)
if [ -z "${CAR_SHARED_DATA:-}" ] && [ ! -d "$REPO/../shared/data" ] && [ -d "$REPO/.device/data" ]; then
  export CAR_SHARED_DATA="$REPO/.device/data"
fi
if [ -z "${CAR_GOLDEN_DIR:-}" ] && [ ! -d "$REPO/../shared/golden" ] && [ -d "$REPO/.device/golden" ]; then
  export CAR_GOLDEN_DIR="$REPO/.device/golden"
fi

if [ -z "$DEVICE" ]; then
  DEVICE=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')" 2>>"$LOG" || echo cpu)
fi
if [ "$DEVICE" = cuda ]; then
  SIZE=full
  BENCH=(--device cuda --proposal ViT-B-16 --classifier ViT-L-14 --queries 20 --images 4 --reference-images 1
         --precision fp32,fp16,fp16_weights --crf-workers 4 --name "device_cuda_vitb16_vitl14_q20")
  GPU_TESTS_S=150; BENCH_S=170; GOLDEN_S=150
else
  SIZE=tiny
  BENCH=(--device cpu --proposal car-micro-vit --classifier car-micro-vit --queries 3 --images 2 --reference-images 1
         --precision fp32,fp16_weights --crf-workers 1 --threads 1 --scale 0.5 --name "device_cpu_micro_q3")
  GPU_TESTS_S=60; GOLDEN_S=0; BENCH_S=120
fi
echo "== device check: $DEVICE ($SIZE), limit ${LIMIT} s, out $OUT" | tee -a "$LOG"

STEPS="$WORK/steps.jsonl"
: >"$STEPS"
# step NAME SECONDS COMMAND...: run under min(SECONDS, time left), log to $LOG, record status
step() {
  local name=$1 want=$2 left status rc t0 ms
  shift 2
  left=$((LIMIT - ($(date +%s) - START) - 15))  # 15 s kept for the report
  [ "$want" -lt "$left" ] || want=$left
  t0=$(date +%s%N)
  if [ "$want" -le 5 ]; then
    status=skipped; rc=0
    echo "== $name: skipped (no time left)" | tee -a "$LOG"
  else
    echo "== $name (limit ${want} s): $*" | tee -a "$LOG"
    timeout --kill-after=10 "$want" "$@" >>"$LOG" 2>&1
    rc=$?
    case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  fi
  ms=$((($(date +%s%N) - t0) / 1000000))
  printf '{"name": "%s", "status": "%s", "rc": %d, "seconds": %d.%03d, "limit_s": %d}\n' \
    "$name" "$status" "$rc" $((ms / 1000)) $((ms % 1000)) "$want" >>"$STEPS"
  echo "== $name: $status ($rc)" | tee -a "$LOG"
}

step gpu_tests "$GPU_TESTS_S" "$PY" -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider \
  --junitxml="$WORK/gpu_tests.xml" -o junit_family=xunit1
step bench "$BENCH_S" "$PY" benchmarks/bench_car.py "${BENCH[@]}" --out-dir "$OUT/benchmarks"
if [ "$GOLDEN_S" -gt 0 ]; then  # last: it gets the time left (its JSON is written case by case)
  step golden "$GOLDEN_S" "$PY" benchmarks/device_check.py golden --device "$DEVICE" --out "$OUT"
fi

"$PY" benchmarks/device_check.py summary --out "$OUT" --steps "$STEPS" --junit "$WORK/gpu_tests.xml" \
  --device "$DEVICE" --size "$SIZE" --limit-s "$LIMIT" --total-s $(($(date +%s) - START)) --command "$(echo "benchmarks/device_check.sh $*" | sed 's/ *$//')" >>"$LOG" 2>&1
REPORT=${CAR_CHECK_REPORT:-}
if [ -z "$REPORT" ] && [ "$SIZE" = full ]; then REPORT="$REPO/results/benchmarks.md"; fi
if [ -n "$REPORT" ]; then  # the tree's benchmarks with this run's
  "$PY" benchmarks/report.py --dir "$REPO/results/benchmarks" --dir "$OUT/benchmarks" --device-check "$OUT" \
    --out "$REPORT" >>"$LOG" 2>&1
  [ "$REPORT" != "$OUT/benchmarks.md" ] && cp "$REPORT" "$OUT/benchmarks.md"
else  # tiny: this run's numbers alone, the tree untouched
  "$PY" benchmarks/report.py --dir "$OUT/benchmarks" --device-check "$OUT" --out "$OUT/benchmarks.md" >>"$LOG" 2>&1
fi
rm -rf "$WORK"
echo "== done in $(($(date +%s) - START)) s: $(ls "$OUT" "$OUT/benchmarks" | tr '\n' ' ')" | tee -a "$LOG"
"$PY" -c "import json, sys; sys.exit(0 if json.load(open('$OUT/device_check.json'))['ok'] else 1)"
