#!/bin/sh
# Faults with 2 ranks: a stop asked of one rank (SIGTERM to rank 0 only) stops both after the
# same step with a checkpoint; a rank killed (SIGKILL to rank 1) ends the job on every rank
# with a message naming rank 1; `--resume` with 2 ranks then reproduces the uninterrupted
# 2-rank curve bit for bit.
# Usage: kill_resume.sh GRAFT MAKE_TINY COMPARE_RUNS MPIRUN CONFIG WORKDIR
set -eu
GRAFT=$1; MAKE_TINY=$2; COMPARE=$3; MPIRUN=$4; CFG=$5; W=$6
# OpenMPI as root (CI containers) and TCP over loopback only
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl=self,tcp OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
rm -rf "$W"; mkdir -p "$W"; cd "$W"
"$GRAFT" synth --out tiny/world --size 100 --image-size 32 >/dev/null
"$MAKE_TINY" tiny/world tiny/model >/dev/null
SET="-s train.epochs=2 -s data.batch_size=8 -s train.ckpt_every_steps=7 -s train.progress=quiet -s data.eval_limit=8 -s backend.threads=1"
MPI="$MPIRUN -np 2 --oversubscribe"
$MPI "$GRAFT" train -c "$CFG" $SET --run-dir full

last_step() { grep -o '"type":"step","step":[0-9]*' "$1/metrics.jsonl" 2>/dev/null | tail -1 | sed 's/.*://' || true; }
wait_step() { # $1 run dir, $2 step, $3 pid
  i=0
  while :; do
    s=$(last_step "$1"); s=${s:-0}
    [ "$s" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || { echo "FAIL: run ended before step $2"; cat "$1.out"; exit 1; }
    i=$((i+1)); [ $i -lt 6000 ] || { echo "FAIL: timeout"; exit 1; }
    sleep 0.01
  done
}
rank_pid() { # $1 mpirun pid, $2 rank: the graft process of that rank (Linux /proc)
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo $p; return 0; }
  done
  echo "FAIL: no process of rank $2 under mpirun $1" >&2; exit 1
}

# 1. SIGTERM to rank 0 alone: both ranks stop after the same step, rank 0 saves
$MPI "$GRAFT" train -c "$CFG" $SET --run-dir part >part.out 2>&1 & mp=$!
wait_step part 10 $mp
r0=$(rank_pid $mp 0); r1=$(rank_pid $mp 1)
kill -TERM "$r0"
rc=0; wait $mp || rc=$?
[ "$rc" != 0 ] || { echo "FAIL: mpirun exit status 0 after a stop"; exit 1; }
grep -q "interrupted at step" part.out || { echo "FAIL: no 'interrupted' message"; cat part.out; exit 1; }
grep -q '"event":"stop"' part/metrics.jsonl || { echo "FAIL: no stop event"; exit 1; }
echo "SIGTERM to rank 0: both ranks stopped at step $(last_step part) (mpirun exit $rc)"

# 2. resume, then SIGKILL rank 1 after the next checkpoint
$MPI "$GRAFT" train --resume part >part.out 2>&1 & mp=$!
wait_step part 24 $mp
r0=$(rank_pid $mp 0); r1=$(rank_pid $mp 1)
kill -KILL "$r1"
rc=0; wait $mp || rc=$?
[ "$rc" != 0 ] || { echo "FAIL: mpirun exit status 0 after rank 1 was killed"; exit 1; }
grep -q "rank 1" part.out || { echo "FAIL: the message does not name rank 1:"; cat part.out; exit 1; }
i=0; while kill -0 "$r0" 2>/dev/null; do i=$((i+1)); [ $i -lt 1000 ] || { echo "FAIL: rank 0 survived"; exit 1; }; sleep 0.01; done
echo "SIGKILL to rank 1 at step $(last_step part): job ended on every rank; mpirun said:"
grep "rank 1" part.out | head -2

# 3. resume with 2 ranks: the uninterrupted curve, bit for bit
$MPI "$GRAFT" train --resume part
"$COMPARE" full part
test -f part/report.json
