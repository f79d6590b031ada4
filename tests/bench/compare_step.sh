#!/bin/sh
# Runs `graft bench step` and the identical step in PyTorch (tests/bench/torch_step.py) on the
# same checkpoint and inputs, and prints both figures and their ratio.
#
#   compare_step.sh [GRAFT_BINARY] [ROUNDS]
#
# GRAFT_BINARY defaults to build/bin/graft; THREADS (default: all cores) is given to both.
# With ROUNDS > 1 the two programs alternate and the medians are compared (the machine may be
# shared: each round's graft figure comes with its own same-run sgemm ceiling). Both programs
# must report the same loss and soft-prompt gradient norm: that is what makes the step identical.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
graft=${1:-build/bin/graft}
rounds=${2:-1}
threads=${THREADS:-$(nproc)}
dir=$(mktemp -d "${TMPDIR:-/tmp}/graft-compare-XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

median() { sort -g | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); $threads threads"
i=1
while [ "$i" -le "$rounds" ]; do
    "$graft" bench step --threads "$threads" --keep "$dir/model" > "$dir/graft.$i" 2>&1 || { cat "$dir/graft.$i"; exit 1; }
    /usr/bin/python3 "$here/torch_step.py" --model "$dir/model" --threads "$threads" > "$dir/torch.$i" 2>&1 \
        || { cat "$dir/torch.$i"; exit 1; }
    g=$(sed -n 's/^bench step: \([0-9.]*\) GFLOP\/s, \([0-9.]*\)% of sgemm ceiling$/\1 \2/p' "$dir/graft.$i")
    t=$(sed -n 's/^torch step: \([0-9.]*\) GFLOP\/s.*/\1/p' "$dir/torch.$i")
    c=$(sed -n 's/^sgemm ceiling.*; using \([0-9.]*\)$/\1/p' "$dir/graft.$i")
    gl=$(grep '^loss ' "$dir/graft.$i"); tl=$(grep '^loss ' "$dir/torch.$i")
    echo "round $i: graft ${g% *} GFLOP/s (${g#* }% of a ${c} GFLOP/s sgemm ceiling), torch $t GFLOP/s ($(awk "BEGIN{printf \"%.1f\", 100*$t/$c}")% of it); load $(cut -d' ' -f1 /proc/loadavg)"
    echo "  graft $gl"
    echo "  torch $tl"
    if [ "$gl" != "$tl" ]; then echo "compare_step: the two steps differ (loss / gradient norm)"; exit 1; fi
    echo "${g% *}" >> "$dir/g"; echo "$t" >> "$dir/t"; echo "${g#* }" >> "$dir/p"
    i=$((i + 1))
done
[ "$rounds" -gt 1 ] || cat "$dir/graft.1" "$dir/torch.1"
G=$(median < "$dir/g"); T=$(median < "$dir/t"); P=$(median < "$dir/p")
echo "graft: $G GFLOP/s ($P% of sgemm ceiling); torch: $T GFLOP/s; graft/torch = $(awk "BEGIN{printf \"%.2f\", $G/$T}")x (medians of $rounds)"
