#!/bin/sh
# The data-parallel scaling figure of docs/distributed.md: training throughput (examples/s,
# median over steps after the first 5) of `graft train` on the tiny captioning VLM with 1 rank
# and with 2 ranks (mpirun, each rank batch B, so 2 ranks take a global batch of 2B), and the
# scaling efficiency = throughput(2 ranks) / (2 x throughput(1 rank)). Also 1 rank with 2
# threads: what the same cores give without MPI. Each configuration runs REPS times,
# interleaved, and the best median counts (other load on the machine only ever slows a run
# down). Not a ctest (no timing assertions); run it on an idle machine:
#   sh tests/dist/scaling.sh build/bin/graft build/bin/make_tiny configs/tiny_caption.cfg /tmp/scaling [B] [REPS]
set -eu
GRAFT=$(realpath "$1"); MAKE_TINY=$(realpath "$2"); CFG=$(realpath "$3"); W=$4; B=${5:-32}; REPS=${6:-3}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
rm -rf "$W"; mkdir -p "$W"; cd "$W"
"$GRAFT" synth --out tiny/world --size 200 --image-size 32 >/dev/null
"$MAKE_TINY" tiny/world tiny/model >/dev/null
SET="-s train.epochs=1 -s train.progress=quiet -s data.eval_limit=8 -s train.eval_every_epoch=false -s data.batch_size=$B"
median_eps() { # median examples/s of a run's steps after the first 5
  grep -o '"type":"step".*"examples_per_s":[0-9.e+-]*' "$1/metrics.jsonl" | sed 's/.*"examples_per_s"://' |
    tail -n +6 | sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'
}
best() { awk -v a="$1" -v b="$2" 'BEGIN {print (a + 0 > b + 0 ? a : b)}'; }
e1=0; e1t=0; e2=0
for r in $(seq "$REPS"); do
  rm -rf one one_t2 two
  "$GRAFT" train -c "$CFG" $SET -s backend.threads=1 --run-dir one 2>/dev/null
  "$GRAFT" train -c "$CFG" $SET -s backend.threads=2 --run-dir one_t2 2>/dev/null
  mpirun -np 2 --bind-to none "$GRAFT" train -c "$CFG" $SET -s backend.threads=1 --run-dir two 2>/dev/null
  e1=$(best $e1 "$(median_eps one)"); e1t=$(best $e1t "$(median_eps one_t2)"); e2=$(best $e2 "$(median_eps two)")
done
echo "load average before the last run: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores); best of $REPS runs each"
echo "1 rank  x 1 thread : $e1 examples/s (batch $B)"
echo "1 rank  x 2 threads: $e1t examples/s (batch $B)"
echo "2 ranks x 1 thread : $e2 examples/s (global batch $((2 * B)))"
awk -v a="$e1" -v b="$e2" 'BEGIN {printf "scaling efficiency (2 ranks vs 1 rank, 1 thread each): %.0f%%\n", 100 * b / (2 * a)}'
