#!/usr/bin/env bash
# The SDK as a plugin author gets it: install graft to a temporary prefix, copy plugin sources
# (sdk/templates/*, sdk/examples/*) to a temporary directory outside the source tree, build
# each against the INSTALLED SDK only — with find_package(graft) and with pkg-config — put the
# results on the plugin path through a config file, and check that the installed `graft`
# loads every one (and, for the example strategy, runs it).
#
# The example strategy then trains for a few steps on the synthetic world with the installed
# `graft train`: a scratch run makes the trained VPG it inherits (model.target.init), the
# warm-up trains the projector only; check_warmup reads both run directories.
#
# usage: out_of_tree.sh BUILD_DIR SOURCE_DIR MAKE_TINY CHECK_WARMUP
set -euo pipefail
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
make_tiny=$3
check_warmup=$4
tmp=$(mktemp -d "${TMPDIR:-/tmp}/graft-sdk-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
unset GRAFT_PLUGIN_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH
fail() { echo "FAIL: $*" >&2; exit 1; }
quiet() { # runs a command, showing its output only when it fails
  local log="$tmp/last.log"
  if ! "$@" >"$log" 2>&1; then cat "$log" >&2; fail "$*"; fi
}

prefix="$tmp/prefix"
quiet cmake --install "$build" --prefix "$prefix"
echo "installed to $prefix"

# The installed SDK is the public headers and nothing of the core.
headers=$(cd "$prefix/include" && find . -type f | sort | tr '\n' ' ')
for h in "$src"/sdk/include/graft/*.h; do
  [ -f "$prefix/include/graft/$(basename "$h")" ] || fail "header $(basename "$h") not installed"
done
[ "$(find "$prefix/include" -type f ! -path '*/graft/*.h' | wc -l)" -eq 0 ] ||
  fail "installed headers other than include/graft/*.h: $headers"
[ -f "$prefix/lib/pkgconfig/graft.pc" ] || fail "graft.pc not installed"
[ -f "$prefix/lib/cmake/graft/graftConfig.cmake" ] || fail "graftConfig.cmake not installed"
[ -f "$prefix/lib/cmake/graft/graftConfigVersion.cmake" ] || fail "graftConfigVersion.cmake not installed"
[ -x "$prefix/bin/graft" ] || fail "bin/graft not installed"
abi=$(sed -n 's/^#define GR_ABI_MAJOR \([0-9]*\)$/\1/p' "$prefix/include/graft/plugin.h")
pc_abi=$(PKG_CONFIG_PATH="$prefix/lib/pkgconfig" pkg-config --variable=abi_major graft)
[ "$abi" = "$pc_abi" ] || fail "graft.pc says ABI $pc_abi, plugin.h says $abi"
echo "installed SDK: $headers+ graft.pc, graftConfig.cmake (ABI $abi)"

# Each plugin source tree is copied away from the source tree and built both ways.
plugins="$tmp/plugins"
mkdir -p "$plugins"
built=()
for dir in "$src"/sdk/templates/* "$src"/sdk/examples/*; do
  [ -f "$dir/CMakeLists.txt" ] || continue
  name=$(basename "$dir")
  copy="$tmp/src/$name"
  mkdir -p "$tmp/src"
  cp -r "$dir" "$copy"
  grep -rn "$src" "$copy" && fail "$name refers to the source tree"
  for mode in find_package pkg-config; do
    b="$tmp/build-$name-$mode"
    if [ $mode = find_package ]; then
      quiet cmake -S "$copy" -B "$b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-Werror \
        -DCMAKE_PREFIX_PATH="$prefix"
      grep -q "^graft_DIR:PATH=$prefix/lib/cmake/graft$" "$b/CMakeCache.txt" ||
        fail "$name: find_package(graft) did not find the installed package"
    else
      PKG_CONFIG_PATH="$prefix/lib/pkgconfig" quiet cmake -S "$copy" -B "$b" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS=-Werror -DGRAFT_USE_PKG_CONFIG=ON
    fi
    quiet cmake --build "$b"
    so=$(find "$b" -maxdepth 1 -name 'graft-*.so')
    [ -n "$so" ] || fail "$name ($mode) built no graft-*.so"
    if [ $mode = find_package ]; then
      cp "$so" "$plugins/"
      built+=("$(basename "$so" .so)")
    fi
    echo "built $name with $mode: $(basename "$so")"
  done
done
[ ${#built[@]} -ge 6 ] || fail "expected the five templates and the example, built ${#built[@]}"

# The installed graft finds them through plugin_path in a config file, and refuses none.
cfg="$tmp/plugins.cfg"
printf 'plugin_path = "%s";\n' "$plugins" >"$cfg"
"$prefix/bin/graft" plugins -c "$cfg" >"$tmp/list.txt" 2>"$tmp/err.txt" ||
  { cat "$tmp/list.txt" "$tmp/err.txt"; fail "graft plugins exited non-zero"; }
cat "$tmp/list.txt"
[ -s "$tmp/err.txt" ] && { cat "$tmp/err.txt"; fail "graft plugins refused a plugin"; }
for p in "${built[@]}"; do
  grep -q " $plugins/$p.so\$" "$tmp/list.txt" || fail "$p not listed by graft plugins"
done
# The installed program still has its own plugins (found next to the installed libgraft).
grep -q "^backend  *cpu .*$prefix/bin/../lib/graft/plugins/graft-cpu.so\$" "$tmp/list.txt" ||
  fail "the installed cpu backend is not listed"

# Without the config the out-of-tree plugins are not found: plugin_path is what found them.
"$prefix/bin/graft" plugins >"$tmp/list0.txt"
grep -q "$plugins" "$tmp/list0.txt" && fail "plugins found without plugin_path"
echo "out-of-tree: ${#built[@]} plugins built against the installed SDK and loaded"

# The example strategy's keys are declared like the core's: documented, validated, overridable.
"$prefix/bin/graft" config --reference -c "$cfg" >"$tmp/ref.md"
grep -q '^## Plugin `warmup-only` (strategy)$' "$tmp/ref.md" || fail "warmup-only keys not in the reference"
grep -q '^| `strategy.warmup-only.steps` | int | `100` |' "$tmp/ref.md" || fail "warmup-only.steps not documented"
"$prefix/bin/graft" config -c "$cfg" -s strategy.warmup-only.steps=3 >"$tmp/resolved.cfg"
grep -q "steps = 3;" "$tmp/resolved.cfg" || fail "override of strategy.warmup-only.steps not applied"
if "$prefix/bin/graft" config -c "$cfg" -s strategy.warmup-only.steps=many 2>"$tmp/err.txt"; then
  fail "a wrong type for strategy.warmup-only.steps was accepted"
fi
grep -q "strategy.warmup-only.steps" "$tmp/err.txt" || fail "the type error does not name the key"
echo "example strategy keys: documented, overridable, type-checked"

# ---- The example strategy trains ----------------------------------------------------------
# The synthetic world and tiny model directories (a 2-layer OPT, a CLIP ViT for 32 px images, a
# Q-Former with 8 queries; weights initialised from model.target.seed), as tests/train uses.
cd "$tmp"
quiet "$prefix/bin/graft" synth --out tiny/world --size 64 --image-size 32
quiet "$make_tiny" tiny/world tiny/model
cat >base.cfg <<'CFG'
backend = { threads = 1; };
model = { target = {
    vision = "clip-vit";    vision_dir = "tiny/model/vision";
    qformer = "qformer";    qformer_dir = "tiny/model/qformer";
    projector = "linear";
    lm = "opt";             lm_dir = "tiny/model/lm";
    seed = 1;
}; };
data = {
    format = "karpathy";
    image_root = "tiny/world";
    train = "tiny/world/annotations/coco_karpathy_train.json";
    val = "tiny/world/annotations/coco_karpathy_val.json";
    test = "tiny/world/annotations/coco_karpathy_test.json";
    batch_size = 8;
    eval_batch_size = 8;
    eval_limit = 8;
};
train = {
    task = "caption";
    trainable = ["query_tokens", "qformer.*", "language_projection.*", "language_model.*"];
    schedule = "constant";
    warmup_steps = 0;
    lr = 3e-3;
    progress = "quiet";
};
gen = { max_new_tokens = 8; };
CFG
# the VPG to inherit: 30 steps of the built-in scratch strategy
quiet "$prefix/bin/graft" train -c base.cfg -s train.steps=30 --run-dir init
printf '@include "base.cfg"\nplugin_path = "%s";\nstrategy = { name = "warmup-only"; };\n' \
  "$plugins" >warmup.cfg
# -s strategy.warmup-only.*: declared by a plugin found through the file's plugin_path
quiet "$prefix/bin/graft" train -c warmup.cfg -s model.target.init=init \
  -s strategy.warmup-only.steps=6 -s strategy.warmup-only.lr_scale=4 --run-dir warmup
"$check_warmup" init warmup 6 0.012 || fail "the warm-up run is not what warmup-only promises"
# A run directory's configuration finds the plugin again (its plugin_path), -s included.
quiet "$prefix/bin/graft" eval --checkpoint warmup -s strategy.warmup-only.steps=1
[ -s warmup/eval_val.json ] || fail "graft eval --checkpoint warmup wrote no eval_val.json"
echo "example strategy: trained 6 steps with the installed graft train, run directory checked"
