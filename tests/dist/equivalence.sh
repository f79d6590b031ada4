#!/bin/sh
# Data-parallel equivalence: 2 ranks x batch B give the curve of 1 rank x batch 2B (loss and
# grad_norm within float tolerance, identical steps, epochs and learning rates), with and
# without gradient accumulation; rank 0 alone writes the run directory.
# Usage: equivalence.sh GRAFT MAKE_TINY COMPARE_CURVES MPIRUN CONFIG WORKDIR
set -eu
GRAFT=$1; MAKE_TINY=$2; COMPARE=$3; MPIRUN=$4; CFG=$5; W=$6
# OpenMPI as root (CI containers) and TCP over loopback only
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
rm -rf "$W"; mkdir -p "$W"; cd "$W"
"$GRAFT" synth --out tiny/world --size 100 --image-size 32 >/dev/null
"$MAKE_TINY" tiny/world tiny/model >/dev/null
SET="-s train.epochs=1 -s train.progress=quiet -s data.eval_limit=16 -s backend.threads=1 -s train.ckpt_every_steps=10"
MPI="$MPIRUN -np 2 --oversubscribe"

"$GRAFT" train -c "$CFG" $SET -s data.batch_size=16 --run-dir one
$MPI "$GRAFT" train -c "$CFG" $SET -s data.batch_size=8 --run-dir two
"$COMPARE" one two 1e-4
# accumulation: only the last micro-batch's backward is reduced
"$GRAFT" train -c "$CFG" $SET -s data.batch_size=16 -s train.accum=2 --run-dir one_acc
$MPI "$GRAFT" train -c "$CFG" $SET -s data.batch_size=8 -s train.accum=2 --run-dir two_acc
"$COMPARE" one_acc two_acc 1e-4

# rank 0 alone wrote: the same files as a single process, and one record per line per step
[ "$(cd one && find . -type f | sort)" = "$(cd two && find . -type f | sort)" ] ||
  { echo "FAIL: the 2-rank run directory differs from the 1-rank one:"; (cd two && find . -type f | sort); exit 1; }
[ "$(grep -c . one/metrics.jsonl)" = "$(grep -c . two/metrics.jsonl)" ] ||
  { echo "FAIL: metrics.jsonl has $(grep -c . two/metrics.jsonl) lines, want $(grep -c . one/metrics.jsonl)"; exit 1; }
echo "ok: rank 0 alone wrote the run directory"
