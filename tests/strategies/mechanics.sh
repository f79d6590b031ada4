#!/bin/sh
# The strategy plugins' mechanics on tiny pretrained LMs, through `graft train` (the plugin path):
#  - tas: stage 1 changes no tensor but the projector (every parameter's bytes before/after);
#    the projector it starts from is the converter fused after the source projector, and that
#    source projector is the source run's; the speed-up lands in report.json;
#  - tat: pairs from two tokenizers (position and identical strings, each counted; the Llama
#    tokenizer is byte-level as Llama 3's, with its own merges and vocabulary size);
#  - inherit runs;
#  - surrogate: a surrogate built with no range equals its target bit for bit (every LM tensor,
#    and the surrogate pair's scores equal the grafted target's exactly); a real range trains the
#    translator; the grafted encoder's tensors are byte-identical to the surrogate-trained ones;
#    a surrogate of another target is refused.
# Usage: mechanics.sh GRAFT REPORT_GET CHECK_FUSION WORKDIR
set -eu
G=$1; RG=$2; CF=$3; W=$4
rm -rf "$W"; mkdir -p "$W"; cd "$W"
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok   $*"; }
val() { "$RG" "$1" "$2"; }

"$G" synth --out w --size 60 --image-size 32 --captions 2 >/dev/null
"$G" tokenizer train --corpus w/corpus.txt --vocab-size 600 --type bytelevel --family opt --out tok_opt >/dev/null
"$G" tokenizer train --corpus w/corpus.txt --vocab-size 500 --type bytelevel --family llama --out tok_llama >/dev/null
lm() { # name family tokenizer hidden layers seed
  cat > pre_$1.cfg <<CFG
pretrain: { family = "$2"; tokenizer = "$3"; out = "lms/$1"; hidden_size = $4; layers = $5; heads = 2;
  steps = 8; corpus = ["w/corpus.txt"]; seq_len = 32; batch_size = 4; warmup_steps = 2; lr = 3e-3;
  eval_every = 0; max_positions = 96; seed = $6; };
CFG
  "$G" pretrain -c pre_$1.cfg >/dev/null 2>&1 || { "$G" pretrain -c pre_$1.cfg; fail "pretrain $1"; }
}
lm small opt tok_opt 32 2 1
lm large opt tok_opt 48 4 2
lm large2 opt tok_opt 48 4 3
lm llama llama tok_llama 32 2 4
mkdir -p vis qf
cat > vis/config.json <<'J'
{"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
 "num_attention_heads": 2, "num_channels": 3, "image_size": 32, "patch_size": 8, "hidden_act": "quick_gelu",
 "layer_norm_eps": 1e-05, "initializer_range": 0.02, "initializer_factor": 1.0}
J
cat > qf/config.json <<'J'
{"model_type": "blip_2_qformer", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
 "intermediate_size": 64, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "cross_attention_frequency": 1,
 "encoder_hidden_size": 32, "num_query_tokens": 4, "initializer_range": 0.02, "max_position_embeddings": 64,
 "vocab_size": 100, "pad_token_id": 0, "position_embedding_type": "absolute"}
J
role() { echo "$1 = { vision = \"clip-vit\"; vision_dir = \"vis\"; qformer = \"qformer\"; qformer_dir = \"qf\"; projector = \"linear\"; lm = \"$2\"; lm_dir = \"$3\"; seed = 1; };"; }
cfg() { # file target_lm_family target_dir source_family source_dir strategy-block
  cat > $1 <<CFG
backend = { threads = 2; };
model = { $(role target $2 $3) $(role source $4 $5) };
data = { format = "karpathy"; image_root = "w"; train = "w/annotations/coco_karpathy_train.json";
  val = "w/annotations/coco_karpathy_val.json"; test = "w/annotations/coco_karpathy_test.json";
  batch_size = 16; eval_batch_size = 16; eval_limit = 6; };
train = { epochs = 2; lr = 3e-3; min_lr = 3e-4; warmup_steps = 2; progress = "quiet"; };
gen = { num_beams = 1; max_new_tokens = 6; min_new_tokens = 1; };
strategy = $6;
CFG
}
cfg src.cfg opt lms/small opt lms/small '{ name = "scratch"; }'
"$G" train -c src.cfg --run-dir src >/dev/null
cfg scr.cfg opt lms/large opt lms/small '{ name = "scratch"; scratch = { test = true; }; }'
"$G" train -c scr.cfg --run-dir scratch_large >/dev/null

# --- tas ---
cfg tas.cfg opt lms/large opt lms/small '{ name = "tas"; tas = { source_run = "src"; verify_stage1 = true; compare = ["scratch_large"]; }; }'
"$G" train -c tas.cfg --run-dir tas > tas.out
[ "$(val tas checks.stage1_other_changed)" = 0 ] || fail "stage 1 changed a tensor other than the projector"
[ "$(val tas checks.stage1_projector_changed)" = 2 ] || fail "stage 1 did not change both projector tensors"
ok "tas stage 1: projector weight and bias changed, every other parameter byte-identical"
"$CF" tas/converter.safetensors "$(ls -d src/checkpoints/step-* | tail -1)/trainable.safetensors" || fail "fusion"
[ "$(val tas converter.captions_matched)" = "$(val tas converter.captions)" ] || fail "TaS: one tokenizer must pair every caption"
[ "$(val tas converter.string_pairs)" = 0 ] || fail "TaS pairs by position only"
ok "tas converter: identical ids pair every caption ($(val tas converter.position_pairs) pairs)"
val tas speedup.CIDEr.scratch_best >/dev/null && val tas speedup.CIDEr.reached >/dev/null || fail "no speed-up in report.json"
grep -q "speed-up against scratch" tas.out || fail "no speed-up table printed"
sf=$(val tas transfer.source_flops); [ "$(awk -v a="$sf" -v b="$(val src totals.flops)" 'BEGIN{print (a==b)}')" = 1 ] || fail "source FLOPs"
ok "tas speed-up in report.json and printed; source FLOPs = the source run's total"

# --- stage 1 check can fail: a warm-up that trains the Q-Former too must be caught --------
# (the check compares bytes; here it is run on the inherit strategy with warm-up on)
cfg inh.cfg opt lms/large opt lms/small '{ name = "inherit"; inherit = { source_run = "src"; warmup_epochs = 1; verify_stage1 = true; }; }'
"$G" train -c inh.cfg --run-dir inherit >/dev/null
[ "$(val inherit checks.stage1_other_changed)" = 0 ] || fail "inherit stage 1"
"$RG" inherit converter.flops >/dev/null 2>&1 && fail "inherit must not run the converter"
ok "inherit: source VPG, fresh projector, no converter"

# --- tat ---
cfg tat.cfg llama lms/llama opt lms/small '{ name = "tat"; tat = { source_run = "src"; }; }'
"$G" train -c tat.cfg --run-dir tat > tat.out
p=$(val tat converter.position_pairs); s=$(val tat converter.string_pairs)
[ "$p" -gt 0 ] && [ "$s" -gt 0 ] || fail "tat: pairs position $p, string $s"
[ "$(val tat converter.pairs_source)" = union ] || fail "tat default is the union"
ok "tat: opt -> llama tokenizers, $p position pairs from $(val tat converter.captions_matched)/$(val tat converter.captions) captions, $s identical-string pairs"

# --- surrogate ---
"$G" surrogate build lms/large --out sur_all >/dev/null
"$G" surrogate build lms/large --range 1:3 --out sur13 >/dev/null
cfg su0.cfg opt lms/large opt sur_all '{ name = "surrogate"; surrogate = { verify_inheritance = true; }; }'
"$G" train -c su0.cfg --run-dir su0 > su0.out
[ "$(val su0 checks.surrogate_tensors_differ)" = 0 ] && [ "$(val su0 checks.surrogate_tensors_compared)" -gt 0 ] || fail "empty-range surrogate differs from its target"
for m in CIDEr Bleu_1 Bleu_4 ROUGE_L; do
  a=$(val su0 surrogate.pair.$m); b=$(val su0 surrogate.grafted.$m)
  [ "$a" = "$b" ] || fail "empty range: surrogate pair $m $a != grafted $b"
done
ok "empty-range surrogate: every LM tensor equals the target's, and the pair's scores equal the graft's bit for bit"
[ "$(val su0 checks.graft_tensors_differ)" = 0 ] && [ "$(val su0 checks.graft_tensors_compared)" -gt 0 ] || fail "graft not byte-identical"
cfg su.cfg opt lms/large opt sur13 '{ name = "surrogate"; surrogate = { verify_inheritance = true; finetune_epochs = 1; compare = ["scratch_large"]; }; }'
"$G" train -c su.cfg --run-dir su > su.out
[ "$(val su surrogate.layers_kept)" = 3 ] || fail "range 1:3 of 4 layers keeps 3"
[ "$(val su checks.graft_tensors_differ)" = 0 ] || fail "grafted encoder differs from the surrogate-trained one"
n=$(val su checks.graft_tensors_compared); [ "$n" -gt 5 ] || fail "graft compared only $n tensors"
val su stages.translator.steps >/dev/null || fail "no translator stage"
grep -q "surrogate grafting" su.out || fail "no surrogate table printed"
ok "surrogate 1:3: translator trained, $n grafted tensors byte-identical to the surrogate-trained ones, table printed"
cfg bad.cfg opt lms/large2 opt sur13 '{ name = "surrogate"; surrogate = { verify_inheritance = true; }; }'
if "$G" train -c bad.cfg --run-dir bad 2> bad.err; then fail "a surrogate of another target was accepted"; fi
grep -q "differs from the target" bad.err || { cat bad.err; fail "message"; }
[ "$(wc -l < bad.err)" = 1 ] || fail "error is not one line"
ok "a surrogate of another target is refused: $(cat bad.err)"
echo "mechanics: all passed"
