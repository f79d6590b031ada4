#!/bin/sh
# Every malformed tokenizer directory must fail with exit status 1 and exactly one stderr line
# "graft: <path of the bad file>: ...". Usage: malformed.sh GRAFT_BIN TESTS_TOKENIZE_DIR
graft="$1"
root="$2/malformed"
fail=0
n=0
check() { # dir  expected-file
    n=$((n + 1))
    err=$("$graft" tokenize "$root/$1" "some text" 2>&1 >/dev/null)
    rc=$?
    lines=$(printf '%s\n' "$err" | wc -l)
    case "$err" in
    "graft: $root/$1/$2:"*) ok=1 ;;
    *) ok=0 ;;
    esac
    if [ $rc -ne 1 ] || [ "$lines" -ne 1 ] || [ $ok -ne 1 ]; then
        echo "FAIL $1: rc=$rc lines=$lines: $err"
        fail=$((fail + 1))
    else
        echo "ok   $1: $err"
    fi
}
check truncated_model tokenizer.model
check overlong_field spiece.model
check bad_charsmap spiece.model
check missing_bytes tokenizer.model
check no_unk spiece.model
check truncated_json tokenizer.json
check bad_merge tokenizer.json
check no_merges_key tokenizer.json
check missing_merges merges.txt
check vocab_gap vocab.json
check unknown_pretokenizer tokenizer.json
check bad_config tokenizer_config.json
# a directory with no tokenizer files at all
n=$((n + 1))
err=$("$graft" tokenize "$root" "x" 2>&1 >/dev/null)
case "$err" in "graft: $root: no tokenizer.json"*) echo "ok   empty dir: $err" ;; *) echo "FAIL empty dir: $err"; fail=$((fail + 1)) ;; esac
# a malformed cases file names its line
n=$((n + 1))
printf '{"text": "a", "ids": [1], "add_special_tokens": false}\n{"text": 5}\n' > "${TMPDIR:-/tmp}/graft_bad_cases_$$.jsonl"
err=$("$graft" tokenize --check "${TMPDIR:-/tmp}/graft_bad_cases_$$.jsonl" "$2/data/gpt2" 2>&1 >/dev/null)
rc=$?
rm -f "${TMPDIR:-/tmp}/graft_bad_cases_$$.jsonl"
case "$err" in "graft: "*"graft_bad_cases_$$.jsonl:2: "*) [ $rc -eq 1 ] && echo "ok   bad cases line: $err" || { echo "FAIL rc $rc"; fail=$((fail + 1)); } ;;
*) echo "FAIL bad cases line: $err"; fail=$((fail + 1)) ;; esac
echo "malformed: $((n - fail)) of $n behaved"
[ $fail -eq 0 ]
