#!/usr/bin/env bash
# docs/plugins.md as a reader follows it: every ```sh block of the page, in order, in one shell,
# started in an empty directory that holds graft's source as graft/ — except a block marked
# <!-- doc_walk: skip ... --> (building graft: this test installs the build it tests to
# $HOME/graft, HOME being a fresh directory). Then check_warmup reads the run directories the
# page's strategy section leaves (what the page says they hold).
#
# usage: doc_walk.sh BUILD_DIR SOURCE_DIR CHECK_WARMUP
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
check_warmup=$3
tmp=$(mktemp -d "${TMPDIR:-/tmp}/graft-docwalk-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset GRAFT_PLUGIN_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH
fail() { echo "FAIL: $*" >&2; exit 1; }
export HOME="$tmp/home"
mkdir -p "$HOME" "$tmp/walk"
cmake --install "$build" --prefix "$HOME/graft" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; fail "cmake --install"; }
ln -s "$src" "$tmp/walk/graft"

# The page's sh blocks -> one script; each block echoes where it starts.
awk '
  /^<!-- doc_walk: skip/ { skip = 1; next }
  /^```sh$/ { inblock = 1; n++; first = 1; next }
  /^```/ && inblock { inblock = 0; skip = 0; next }
  inblock && !skip {
    if (first) { printf "echo \"--- docs/plugins.md block %d (line %d)\"\n", n, NR; first = 0 }
    print
  }
  inblock && skip { next }
' "$src/docs/plugins.md" >"$tmp/walk.sh"
blocks=$(grep -c '^echo "--- docs/plugins.md block' "$tmp/walk.sh")
[ "$blocks" -ge 8 ] || { cat "$tmp/walk.sh"; fail "expected at least 8 runnable sh blocks, found $blocks"; }
cd "$tmp/walk"
if ! bash -euo pipefail "$tmp/walk.sh" >"$tmp/walk.log" 2>&1; then
  tail -40 "$tmp/walk.log"
  fail "a step of docs/plugins.md failed (last output above)"
fi
grep '^--- docs/plugins.md block' "$tmp/walk.log"
echo "ran $blocks blocks of docs/plugins.md from an empty directory"

# What the page says the projector steps and the warm-up leave.
grep -q "^projector  *my-projector .* $tmp/walk/my-projector/build/graft-my-projector.so\$" "$tmp/walk.log" ||
  fail "graft plugins -c my.cfg did not list my-projector"
[ -f my-projector/graft-my-projector.so ] || fail "the cc line built no graft-my-projector.so"
w=warmup-only/runs
"$check_warmup" $w/vpg $w/warmup 20 0.005 || fail "runs/warmup is not what the page says"
"$check_warmup" $w/vpg $w/warmup-x10 20 0.01 >/dev/null || fail "runs/warmup-x10: -s lr_scale=10 not applied"
[ -s $w/warmup/eval_val.json ] || fail "graft eval --checkpoint runs/warmup wrote no eval_val.json"
grep -q '"strategy.warmup-only.steps"\|steps = 20;' "$tmp/walk.log" || fail "graft config did not print the plugin's keys"
echo "the run directories hold what docs/plugins.md says"
