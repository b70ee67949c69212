#!/usr/bin/env bash
# Issue 9 on a lent GPU for a few minutes: build a Real-ESRGAN x4plus teacher cache there, then distil three
# 8-block g's side by side (A: L1 to the teacher; B: + 0.1 GAN whose real images are the teacher's;
# C: B + 0.1 random-CNN features). A short rehearsal of all three first fixes each run's step count so that
# it ends inside TRAIN_S seconds, with its cosine schedule complete.
#
#   scripts/gpu-distil.sh prepare   # here: gpu/ (git-ignored) with the photos and an fp16 teacher (< 64 MiB)
#   scripts/gpu-distil.sh           # there, from the repository root, with gpu/ carried
#
# Env: DEV, PY (the command running qusr), WORK (scratch), OUT (results), CACHE_S / TRAIN_S (time budgets),
# CACHE_COUNT, BATCH, CROP, WORKERS, SMOKE (rehearsal steps), LR, RUNS (which of A B C; all three by default).
set -u -o pipefail
if [ "${1:-}" = prepare ]; then
  grep -qx /gpu/ .git/info/exclude 2>/dev/null || echo /gpu/ >> .git/info/exclude
  mkdir -p gpu/train && cp -r ../shared/data/train/. gpu/train/
  exec .venv/bin/python -c "
from safetensors import safe_open
from safetensors.torch import save_file
with safe_open('runs/realesrgan-x4plus.safetensors', 'pt') as f:
    header, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()},
          'gpu/teacher-fp16.safetensors', metadata=header)"
fi
DEV=${DEV:-cuda}; PY=${PY:-python3 -m qusr_cli}; WORK=${WORK:-/tmp/qusr}; OUT=${OUT:-$WORK/out}
CACHE_S=${CACHE_S:-100}; TRAIN_S=${TRAIN_S:-360}; CACHE_COUNT=${CACHE_COUNT:-120000}; BATCH=${BATCH:-32}
CROP=${CROP:-192}; WORKERS=${WORKERS:-14}; SMOKE=${SMOKE:-40}; LR=${LR:-2e-4}; RUNS=${RUNS:-A B C}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# That machine's image has no imagecodecs, which qusr needs only for 16-bit PNG; training reads 8-bit photos.
python3 -c "import imagecodecs" 2>/dev/null && [ "${SHIM:-0}" = 0 ] || export PYTHONPATH=$PWD/scripts/gpu-shim:$PYTHONPATH
mkdir -p "$WORK" "$OUT"
exec > >(tee "$OUT/run.txt") 2>&1
T0=$(date +%s); stamp() { echo "=== $(( $(date +%s) - T0 ))s $*"; }
nvidia-smi --query-gpu=name,memory.total --format=csv 2>/dev/null; python3 -c "import torch;print(torch.__version__)"
stamp truncate
$PY weights truncate gpu/teacher-fp16.safetensors --blocks 8 --out $WORK/rrdb8.safetensors || exit 1
cache() {  # $1 folder, $2 samples, $3 a time limit (timeout N) or nothing
  ${3:-} $PY train teacher-cache --data gpu/train --out $1 --teacher gpu/teacher-fp16.safetensors --count $2 \
  --shard-size 64 --batch 64 --crop $CROP --threads 2 --device $DEV --workers $WORKERS --eval-dir gpu/no-eval; }
common="--data gpu/train --arch rrdbnet --blocks 8 --width 64 --init $WORK/rrdb8.safetensors --teacher-weight 1
  --hr-weight 0 --crop $CROP --batch $BATCH --lr $LR --warmup 100 --threads 2 --workers 4 --device $DEV --val-every 0"
declare -A RECIPE=([A]="" [B]="--gan-weight 0.1 --teacher-as-real --disc-width 32"
                   [C]="--gan-weight 0.1 --feature-weight 0.1 --teacher-as-real --disc-width 32")
train_all() {  # $1 cache, $2 folder prefix, $3 extra options; steps from STEPS
  local pids=()
  for run in $RUNS; do
    timeout $((TRAIN_S + 90)) $PY train aux $common ${RECIPE[$run]} --teacher-cache $1 --out $2-$run \
      --steps ${STEPS[$run]} $3 > $2-$run.log 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
}
stamp smoke cache
cache $WORK/smoke-cache 128 2>&1 | tail -2 || exit 1
declare -A STEPS=([A]=$SMOKE [B]=$SMOKE [C]=$SMOKE)
stamp smoke train
train_all $WORK/smoke-cache $WORK/smoke "--save-every $SMOKE"
for run in $RUNS; do tail -3 $WORK/smoke-$run.log; [ -f $WORK/smoke-$run/aux.safetensors ] || { echo "smoke $run failed"; exit 1; }; done
for run in $RUNS; do
  sps=$(tail -1 $WORK/smoke-$run/log.jsonl | python3 -c "import json,sys;print(json.load(sys.stdin)['samples_per_s'])")
  STEPS[$run]=$(python3 -c "print(max(100, int($TRAIN_S * $sps / $BATCH * 0.85)))")
  echo "run $run: $sps samples/s in the rehearsal -> ${STEPS[$run]} steps"
done
[ "${SMOKE_ONLY:-0}" = 1 ] && exit 0
stamp cache
cache $WORK/cache $CACHE_COUNT "timeout $CACHE_S" 2>&1 | tail -3
ls $WORK/cache | grep -c '^shard-.*safetensors$'; du -sh $WORK/cache
stamp train
train_all $WORK/cache $WORK/run "--save-every 250 --keep-every 1000"
stamp done
for run in $RUNS; do
  tail -2 $WORK/run-$run.log
  cp $WORK/run-$run/aux.safetensors $OUT/g-$run.safetensors
done
for run in $(echo $RUNS | cut -d' ' -f1-2); do  # 64 MiB come back: three finals, two middle snapshots
  snapshots=($WORK/run-$run/snapshots/*.safetensors)
  [ -f "${snapshots[0]}" ] && cp "${snapshots[$(( (${#snapshots[@]} - 1) / 2 ))]}" $OUT/g-$run-mid.safetensors
done
tar czf $OUT/logs.tgz -C $WORK $(cd $WORK && ls -d run-*/log.jsonl run-*.log smoke-*.log) 2>/dev/null
ls -la $OUT
