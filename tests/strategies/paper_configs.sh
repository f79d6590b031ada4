#!/bin/sh
# configs/paper/*.cfg parse and validate against every declared key (the strategy's included):
# `graft train` on them must get as far as opening the models (which the test does not have),
# and the one-line error must name the model role, not a config file line.
# Usage: paper_configs.sh GRAFT CONFIG_DIR WORKDIR
set -eu
G=$1; C=$2; W=$3
rm -rf "$W"; mkdir -p "$W"; cd "$W"
n=0
for f in "$C"/*.cfg; do
  if "$G" train -c "$f" --run-dir "r_$(basename "$f" .cfg)" 2> err.txt; then echo "FAIL: $f trained without models"; exit 1; fi
  grep -q '^graft: model\.\(source\|target\)' err.txt || { echo "FAIL: $f: $(cat err.txt)"; exit 1; }
  echo "ok   $(basename "$f"): valid, stops at $(cut -c1-60 err.txt)"
  n=$((n + 1))
done
[ "$n" -ge 3 ] || { echo "FAIL: only $n paper configs"; exit 1; }
echo "paper configs: $n valid"
