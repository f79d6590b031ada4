#!/bin/sh
# Training parity: the tiny captioning config trained for a few steps on the CPU and on the
# Vulkan backend (only backend.name differs) gives the same loss curve within tolerance.
# Usage: train_parity.sh GRAFT MAKE_TINY COMPARE CONFIG WORKDIR PROBE
set -eu
GRAFT=$1; MAKE_TINY=$2; COMPARE=$3; CFG=$4; W=$5; PROBE=$6
"$PROBE" --probe || exit $?
rm -rf "$W"; mkdir -p "$W"; cd "$W"
"$GRAFT" synth --out tiny/world --size 60 --image-size 32 >/dev/null
"$MAKE_TINY" tiny/world tiny/model >/dev/null
SET="-s train.epochs=1 -s data.batch_size=8 -s train.progress=quiet -s data.eval_limit=4 -s backend.threads=2"
"$GRAFT" train -c "$CFG" $SET -s backend.name=cpu --run-dir cpu
"$GRAFT" train -c "$CFG" $SET -s backend.name=vulkan --run-dir vulkan
"$COMPARE" cpu vulkan 1e-4
