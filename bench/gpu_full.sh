#!/usr/bin/env bash
# The full-size chain on one GPU, prepared to run in one short device session (issue 14, item 5).
#
#   bench/gpu_full.sh [--dry-run] [DATA_DIR]        (or DRY_RUN=1 bench/gpu_full.sh)
#
# Steps, each under its own time limit (seconds; a step past its limit is killed, with its children, and the
# steps after it still run, so the report shows what finished):
#   preflight  refuse FLUKEID_DEVICE=cuda at once where torch sees no CUDA device (nothing else runs)
#   peak       the device's bf16 matmul TFLOP/s                              LIMIT_PEAK_S    (60)
#   data       `flukeid synth --scale $SCALE` into $WORK/data, unless DATA_DIR is given or it exists
#                                                                           LIMIT_DATA_S    (420)
#   chain      observe the data folder, then `dagster asset materialize` of the chain with configs/$PROFILE.yaml,
#              DAGSTER_HOME and storage under $WORK, on Dagster's in-process executor (EXECUTOR=multiprocess
#              for a process per step, as `make demo`: each step then imports torch, Dagster and ultralytics
#              afresh, seconds per step that a 15-minute session cannot spare)  LIMIT_CHAIN_S (480; dry: 1200)
#   report     per-step seconds from the event log, the memory the stages recorded, training throughput as a
#              share of the measured peak (bench/stage_report.py)           LIMIT_REPORT_S  (120)
# STEPS (default "peak data chain report") picks steps: a 15-minute device session can run `STEPS="peak data"`
# in one call and `STEPS="chain report"` in the next (the machine keeps $WORK while it stays warm); the limits
# leave room under the 10-minute cap of one call. The report is written to $WORK/report.txt and report.json.
#
# --dry-run: the same code path on the CPU, end to end: a tiny generated set (SCALE 0.006), the tiny profile,
# FLUKEID_DEVICE=cpu, a small matmul. tests/bench/test_gpu_full.py runs it.
#
# Environment: WORK (default ./data/gpu_full; dry: a temporary folder), SCALE (1.0), SEED (5113), PROFILE (gpu),
# FLUKEID_DEVICE (cuda), SELECTION (the chain's assets: "not group:experiments"), EXECUTOR (in_process),
# PYTHON (.venv/bin/python).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN="${DRY_RUN:-0}"
DATA_ARG=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,30p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) DATA_ARG="$arg" ;;
  esac
done

if [[ "$DRY_RUN" == "1" ]]; then
  WORK="${WORK:-$(mktemp -d -t flukeid-gpu-dry-XXXXXX)}"
  SCALE="${SCALE:-0.006}"
  SEED="${SEED:-7}"
  PROFILE="${PROFILE:-tiny}"
  export FLUKEID_DEVICE="${FLUKEID_DEVICE:-cpu}"
  PEAK_ARGS=(--size 256 --seconds 0.2)
  LIMIT_CHAIN_S="${LIMIT_CHAIN_S:-1200}"  # the CPUs here are shared: seconds per step, not a GPU's
else
  WORK="${WORK:-$REPO/data/gpu_full}"  # data/ is git-ignored, and kept on a warm device machine between calls
  SCALE="${SCALE:-1.0}"
  SEED="${SEED:-5113}"
  PROFILE="${PROFILE:-gpu}"
  export FLUKEID_DEVICE="${FLUKEID_DEVICE:-cuda}"
  PEAK_ARGS=()
fi
STEPS="${STEPS:-peak data chain report}"
SELECTION="${SELECTION:-not group:experiments}"
EXECUTOR="${EXECUTOR:-in_process}"
LIMIT_PEAK_S="${LIMIT_PEAK_S:-60}"
LIMIT_DATA_S="${LIMIT_DATA_S:-420}"
LIMIT_CHAIN_S="${LIMIT_CHAIN_S:-480}"
LIMIT_REPORT_S="${LIMIT_REPORT_S:-120}"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
BIN="$(dirname "$PYTHON")"
DATA="${DATA_ARG:-$WORK/data}"
PROFILE_FILE="$REPO/configs/$PROFILE.yaml"
[[ -f "$PROFILE_FILE" ]] || { echo "error: no profile $PROFILE_FILE" >&2; exit 2; }

export DAGSTER_HOME="$WORK/dagster_home"
export FLUKEID_DATA_DIR="$DATA"
export FLUKEID_STORAGE_DIR="$WORK/storage"
export FLUKEID_PROFILE="$PROFILE_FILE"
export YOLO_OFFLINE=1
export DAGSTER_DISABLE_TELEMETRY=1
cd "$REPO"

wants() { [[ " $STEPS " == *" $1 "* ]]; }
# `timeout` signals the whole process group it starts: Dagster's step processes go with the CLI.
limited() {
  local limit="$1" name="$2"; shift 2
  local started=$SECONDS rc=0
  echo "== $name (limit ${limit}s): $*"
  timeout --kill-after=15 "$limit" "$@" || rc=$?
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "== $name: stopped at its ${limit}s limit"
  fi
  echo "== $name: rc $rc after $((SECONDS - started))s"
  return $rc
}

echo "flukeid gpu_full: work $WORK, data $DATA, profile $PROFILE, device $FLUKEID_DEVICE, steps: $STEPS"
"$PYTHON" bench/stage_report.py preflight --device "$FLUKEID_DEVICE" || exit 2
mkdir -p "$WORK"

status=0
if wants peak; then
  limited "$LIMIT_PEAK_S" peak "$PYTHON" bench/stage_report.py peak --device "$FLUKEID_DEVICE" \
    --out "$WORK/peak.json" "${PEAK_ARGS[@]}" || status=$?
fi
if wants data; then
  if [[ -n "$DATA_ARG" || -f "$DATA/train.csv" ]]; then
    echo "== data: using $DATA"
  else
    limited "$LIMIT_DATA_S" data "$BIN/flukeid" synth "$DATA" --scale "$SCALE" --seed "$SEED" --quiet || status=$?
  fi
fi
if wants chain; then
  [[ -f "$DATA/train.csv" ]] || { echo "error: no $DATA/train.csv: run the data step first" >&2; exit 2; }
  "$BIN/flukeid" init-home --home "$DAGSTER_HOME"
  "$BIN/dagster" asset materialize -m pipelines.definitions --select raw_image_files
  printf 'execution:\n  config:\n    %s: {}\n' "$EXECUTOR" > "$WORK/executor.yaml"
  limited "$LIMIT_CHAIN_S" chain "$BIN/dagster" asset materialize -m pipelines.definitions \
    --select "$SELECTION" -c "$PROFILE_FILE" -c "$WORK/executor.yaml" || status=$?
fi
if wants report; then
  limited "$LIMIT_REPORT_S" report "$PYTHON" bench/stage_report.py report --home "$DAGSTER_HOME" \
    --peak "$WORK/peak.json" --json "$WORK/report.json" | tee "$WORK/report.txt" || status=$?
fi
echo "flukeid gpu_full: done (rc $status); report in $WORK/report.txt"
exit "$status"
