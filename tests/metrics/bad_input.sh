#!/bin/sh
# Bad input to `graft score`: every case must exit with status 1 (2 for usage errors) and print exactly
# one line, "graft: ...", naming the file and the offending entry.
# usage: bad_input.sh GRAFT DATA_DIR
G=$1; D=$2; B=$D/bad; fail=0; n=0
ERR=$(mktemp); trap 'rm -f "$ERR"' EXIT

# expect STATUS "SUBSTRING..." -- ARGS: runs graft ARGS, checks status, one line, and every substring
expect() {
  want=$1; shift; subs=""
  while [ "$1" != "--" ]; do subs="$subs
$1"; shift; done; shift
  n=$((n+1))
  "$G" "$@" >/dev/null 2>"$ERR"; got=$?
  lines=$(wc -l < "$ERR")
  msg=$(cat "$ERR")
  ok=1
  [ "$got" = "$want" ] || { echo "FAIL (exit $got, want $want): graft $*"; ok=0; }
  [ "$lines" = 1 ] || { echo "FAIL ($lines lines on stderr): graft $*"; ok=0; }
  case "$msg" in "graft: "*) ;; *) echo "FAIL (no 'graft: ' prefix): $msg"; ok=0;; esac
  echo "$subs" | while IFS= read -r s; do
    [ -z "$s" ] && continue
    case "$msg" in *"$s"*) ;; *) echo "FAIL (message lacks '$s'): $msg"; exit 1;; esac
  done || ok=0
  if [ $ok = 1 ]; then echo "ok: $msg"; else fail=$((fail+1)); fi
}

C="score captions --refs"
expect 1 "pred_missing_image.json" "no prediction for image 2" "images[1]" -- $C "$B/refs_small.json" --pred "$B/pred_missing_image.json"
expect 1 "captions_pred_subset.json" "no prediction for image 441922" -- $C "$D/captions_refs.json" --pred "$D/captions_pred_subset.json"
expect 1 "pred_unknown_image.json" "[2]" "image 77 is not in" -- $C "$B/refs_small.json" --pred "$B/pred_unknown_image.json"
expect 1 "pred_duplicate.json" "[2]" "second prediction for image 1" -- $C "$B/refs_small.json" --pred "$B/pred_duplicate.json"
expect 1 "pred_not_list.json" "found an object" -- $C "$B/refs_small.json" --pred "$B/pred_not_list.json"
expect 1 "pred_caption_not_string.json" "[1]" "'caption'" -- $C "$B/refs_small.json" --pred "$B/pred_caption_not_string.json"
expect 1 "pred_id_not_int.json" "[0]" "'image_id'" -- $C "$B/refs_small.json" --pred "$B/pred_id_not_int.json"
expect 1 "pred_empty_list.json" "empty" -- $C "$B/refs_small.json" --pred "$B/pred_empty_list.json"
expect 1 "empty.json" "empty file" -- $C "$B/refs_small.json" --pred "$B/empty.json"
expect 1 "empty.json" "empty file" -- $C "$B/empty.json" --pred "$B/pred_ok.json"
expect 1 "truncated.json" "not valid JSON" "line 1" -- $C "$B/refs_small.json" --pred "$B/truncated.json"
expect 1 "refs_list.json" "found a list" -- $C "$B/refs_list.json" --pred "$B/pred_ok.json"
expect 1 "refs_duplicate_image.json" "images[2]" "duplicate image id 1" -- $C "$B/refs_duplicate_image.json" --pred "$B/pred_ok.json"
expect 1 "refs_image_without_caption.json" "image 2" "no caption" -- $C "$B/refs_image_without_caption.json" --pred "$B/pred_ok.json"
expect 1 "no_such_file.json" "cannot open" -- $C "$B/refs_small.json" --pred "$B/no_such_file.json"
expect 1 "$B" "is a directory" -- $C "$B/refs_small.json" --pred "$B"
expect 2 "--refs and --pred are required" -- score captions --pred "$B/pred_ok.json"

V="score vqa --questions $D/vqa_questions.json --annotations"
A=$D/vqa_annotations.json
expect 1 "vqa_results_missing.json" "no answer for question 467214000" -- $V "$A" --results "$B/vqa_results_missing.json"
expect 1 "vqa_results_unknown.json" "[82]" "question 123 is not in" -- $V "$A" --results "$B/vqa_results_unknown.json"
expect 1 "vqa_results_duplicate.json" "[82]" "second answer for question 540587002" -- $V "$A" --results "$B/vqa_results_duplicate.json"
expect 1 "vqa_results_answer_null.json" "question 138158001" "'answer'" -- $V "$A" --results "$B/vqa_results_answer_null.json"
expect 1 "vqa_results_object.json" "found an object" -- $V "$A" --results "$B/vqa_results_object.json"
expect 1 "vqa_annotations_duplicate.json" "annotations[82]" "duplicate question 132936000" -- $V "$B/vqa_annotations_duplicate.json" --results "$D/vqa_results_exact.json"
expect 1 "vqa_annotations_no_answers.json" "annotations[2]" "question 336581001" "'answers'" -- $V "$B/vqa_annotations_no_answers.json" --results "$D/vqa_results_exact.json"
expect 1 "empty.json" "empty file" -- $V "$A" --results "$B/empty.json"
expect 1 "refs_list.json" "expected a VQA annotation file" -- $V "$B/refs_list.json" --results "$D/vqa_results_exact.json"
expect 1 "no_such_file.json" "cannot open" -- score vqa --questions "$B/no_such_file.json" --annotations "$A" --results "$D/vqa_results_exact.json"
expect 2 "--evaluator must be" -- $V "$A" --results "$D/vqa_results_exact.json" --evaluator lavish

echo "$((n-fail))/$n bad-input cases behave"
[ $fail = 0 ]
