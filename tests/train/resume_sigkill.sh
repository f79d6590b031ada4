#!/bin/sh
# Exact resume: an uninterrupted run against one stopped by SIGTERM (clean save, exit 130),
# resumed, killed by SIGKILL mid-run, resumed again. Curves must be equal bit for bit.
# Usage: resume_sigkill.sh GRAFT MAKE_TINY COMPARE_RUNS CONFIG WORKDIR
set -eu
GRAFT=$1; MAKE_TINY=$2; COMPARE=$3; CFG=$4; W=$5
rm -rf "$W"; mkdir -p "$W"; cd "$W"
"$GRAFT" synth --out tiny/world --size 200 --image-size 32 >/dev/null
"$MAKE_TINY" tiny/world tiny/model >/dev/null
SET="-s train.epochs=3 -s data.batch_size=8 -s train.ckpt_every_steps=7 -s train.progress=quiet -s data.eval_limit=8 -s backend.threads=1"
"$GRAFT" train -c "$CFG" $SET --run-dir full
last_step() { grep -o '"type":"step","step":[0-9]*' "$1/metrics.jsonl" 2>/dev/null | tail -1 | sed 's/.*://' || true; }
wait_step() { # $1 run dir, $2 step, $3 pid
  i=0
  while :; do
    s=$(last_step "$1"); s=${s:-0}
    [ "$s" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || { echo "FAIL: run ended before step $2"; exit 1; }
    i=$((i+1)); [ $i -lt 6000 ] || { echo "FAIL: timeout"; exit 1; }
    sleep 0.01
  done
}
"$GRAFT" train -c "$CFG" $SET --run-dir part & pid=$!
wait_step part 12 $pid
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ "$rc" = 130 ] || { echo "FAIL: SIGTERM exit status $rc, expected 130"; exit 1; }
grep -q '"event":"stop"' part/metrics.jsonl || { echo "FAIL: no stop event"; exit 1; }
echo "stopped by SIGTERM at step $(last_step part)"
"$GRAFT" train --resume part & pid=$!
wait_step part 45 $pid
kill -KILL $pid; wait $pid || true
echo "killed by SIGKILL at step $(last_step part)"
"$GRAFT" train --resume part
"$COMPARE" full part
test -f part/report.json
