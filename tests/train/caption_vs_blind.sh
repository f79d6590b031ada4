#!/bin/sh
# Done-criterion of the engine: BLIP-2 on the synthetic world (configs/tiny_blip2.cfg): a tiny CLIP
# ViT + Q-Former + projector trained from scratch in front of a FROZEN tiny OPT that `graft
# pretrain` made here, and its test CIDEr rises well above the blind baseline (the same model
# captioning a blank image). Generous bound: trained >= blind + 0.15 and >= 1.3 x blind (measured
# 0.93 vs 0.44). Then the LM's weights are checked unchanged, and generation from the CLI.
# Usage: caption_vs_blind.sh GRAFT SOURCE_DIR WORKDIR
set -eu
GRAFT=$1; SRC=$2; W=$3
rm -rf "$W"; mkdir -p "$W"; cd "$W"
"$GRAFT" synth --out synth --size 600 --image-size 32 >/dev/null
"$GRAFT" tokenizer train --corpus synth/corpus.txt --vocab-size 1024 --type bytelevel --family opt --out tokenizers/opt >/dev/null
"$GRAFT" pretrain -c "$SRC/configs/pretrain/opt_small.cfg" > pretrain.log; tail -1 pretrain.log
cp -r "$SRC/configs/demo/parts" parts
sum_before=$(cksum < lms/opt_small/model.safetensors)
"$GRAFT" train -c "$SRC/configs/tiny_blip2.cfg" --run-dir run > train.log; tail -1 train.log
[ "$(cksum < lms/opt_small/model.safetensors)" = "$sum_before" ] || { echo "FAIL: the frozen LM's file changed"; exit 1; }
ls run/checkpoints/*/trainable.safetensors >/dev/null || { echo "FAIL: no checkpoint written"; exit 1; }
if grep -q 'language_model\.' run/checkpoints/*/trainable.safetensors; then echo "FAIL: the checkpoint holds LM tensors"; exit 1; fi
"$GRAFT" eval --checkpoint run --split test > trained.txt
"$GRAFT" eval --checkpoint run --split test --blind > blind.txt
t=$(sed -n 's/^CIDEr //p' trained.txt); b=$(sed -n 's/^CIDEr //p' blind.txt)
echo "test CIDEr: trained $t, blind $b"
awk -v t="$t" -v b="$b" 'BEGIN { exit !(t >= b + 0.15 && t >= 1.3 * b) }' || { echo "FAIL: not well above the blind baseline"; exit 1; }
# generation from the CLI: a caption, a VQA-style prompt, and a chat without a TTY
img=synth/images/$(ls synth/images | head -1)
cap=$("$GRAFT" generate --checkpoint run --image $img); echo "caption: $cap"; [ -n "$cap" ]
"$GRAFT" generate --checkpoint run --image $img --prompt "Question: what shape is it? Answer:" >/dev/null
n=$(printf 'what color is the shape?\nhow many shapes are there?\n' | "$GRAFT" generate --checkpoint run --image $img --chat | wc -l)
[ "$n" = 2 ] || { echo "FAIL: chat gave $n answers for 2 questions"; exit 1; }
test -f run/report.json && test -f run/eval_test.json
echo ok
