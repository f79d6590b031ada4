#!/bin/sh
# Done-criterion: a tiny VLM (CLIP ViT + Q-Former + OPT, random init) trains from scratch on the
# synthetic world and its test CIDEr rises well above the blind baseline (the same model
# captioning a blank image). Generous bound: trained >= blind + 0.08 and >= 1.2 x blind.
# Usage: caption_vs_blind.sh GRAFT MAKE_TINY CONFIG WORKDIR
set -eu
GRAFT=$1; MAKE_TINY=$2; CFG=$3; W=$4
rm -rf "$W"; mkdir -p "$W"; cd "$W"
"$GRAFT" synth --out tiny/world --size 600 --image-size 32 >/dev/null
"$MAKE_TINY" tiny/world tiny/model
"$GRAFT" train -c "$CFG" -s train.progress=lines --run-dir run
"$GRAFT" eval --checkpoint run --split test > trained.txt
"$GRAFT" eval --checkpoint run --split test --blind > blind.txt
t=$(sed -n 's/^CIDEr //p' trained.txt); b=$(sed -n 's/^CIDEr //p' blind.txt)
echo "test CIDEr: trained $t, blind $b"
awk -v t="$t" -v b="$b" 'BEGIN { exit !(t >= b + 0.08 && t >= 1.2 * b) }' || { echo "FAIL: not above the blind baseline"; exit 1; }
# generation from the CLI: a caption, a VQA-style prompt, and a chat without a TTY
img=tiny/world/images/$(ls tiny/world/images | head -1)
cap=$("$GRAFT" generate --checkpoint run --image $img); echo "caption: $cap"; [ -n "$cap" ]
"$GRAFT" generate --checkpoint run --image $img --prompt "Question: what shape is it? Answer:" >/dev/null
n=$(printf 'what color is the shape?\nhow many shapes are there?\n' | "$GRAFT" generate --checkpoint run --image $img --chat | wc -l)
[ "$n" = 2 ] || { echo "FAIL: chat gave $n answers for 2 questions"; exit 1; }
test -f run/report.json && test -f run/eval_test.json
echo ok
