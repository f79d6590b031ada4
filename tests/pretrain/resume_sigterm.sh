#!/bin/sh
# `graft pretrain` and `graft pretrain-vision`: SIGTERM mid-run saves the state and exits 1 naming
# it; `--resume` then finishes a model byte-identical to an uninterrupted run's.
# Usage: resume_sigterm.sh GRAFT SOURCE_DIR WORKDIR
set -eu
G=$1; SRC=$2; W=$3
rm -rf "$W"; mkdir -p "$W"; cd "$W"
fail() { echo "FAIL: $*"; exit 1; }
"$G" synth --out world --size 200 --image-size 32 >/dev/null
"$G" tokenizer train --corpus world/corpus.txt --vocab-size 400 --type bytelevel --family opt --out tok >/dev/null
cp -r "$SRC/configs/demo/parts" parts
cat > lm.cfg <<'CFG'
pretrain: { family = "opt"; tokenizer = "tok"; corpus = ["world/corpus.txt"]; documents = "paragraphs"; out = "A";
  hidden_size = 32; layers = 2; heads = 2; seq_len = 32; batch_size = 8; steps = 1500; warmup_steps = 10; seed = 2; };
backend: { threads = 1; };
CFG
cat > pv.cfg <<'CFG'
pretrain_vision: { world = "world"; tower = "parts/vision"; out = "A"; steps = 400; batch_size = 32; warmup_steps = 20;
  seed = 1; eval_every = 100; };
backend: { threads = 1; };
CFG
# check CMD CFG: uninterrupted A; B killed once its first step is logged, then resumed
check() {
    cmd=$1; cfg=$2
    rm -rf A B
    "$G" $cmd -c $cfg > a.log 2>&1 || true   # the quality bar may fail these tiny runs: not the point here
    [ -f A/model.safetensors ] || { cat a.log; fail "$cmd: no model from the uninterrupted run"; }
    "$G" $cmd -c $cfg -s ${3}.out=B > b.log 2>&1 &
    pid=$!
    n=0
    until grep -q '"type":"step"' B/run/metrics.jsonl 2>/dev/null; do
        n=$((n + 1)); [ $n -lt 600 ] || fail "$cmd: no training step logged in 60 s"; sleep 0.1
    done
    kill -TERM $pid
    rc=0; wait $pid || rc=$?
    [ $rc = 1 ] || { cat b.log; fail "$cmd: SIGTERM exit $rc, expected 1"; }
    grep -q "interrupted at step [0-9]*; state saved in B/run (resume with --resume)" b.log || { cat b.log; fail "$cmd: no saved-state line"; }
    [ ! -f B/model.safetensors ] || fail "$cmd: an interrupted run exported a model"
    "$G" $cmd -c $cfg -s ${3}.out=B --resume > b2.log 2>&1 || true
    grep -q "resuming from B/run/checkpoints/step-" b2.log || { cat b2.log; fail "$cmd: did not resume"; }
    cmp -s A/model.safetensors B/model.safetensors || fail "$cmd: the resumed model differs from the uninterrupted one"
    echo "ok   $cmd: SIGTERM at $(sed -n 's/.*interrupted at step \([0-9]*\);.*/\1/p' b.log), resumed, model byte-identical"
}
check pretrain lm.cfg pretrain
check pretrain-vision pv.cfg pretrain_vision
