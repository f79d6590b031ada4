#!/bin/sh
# A strategy's config_keys, end to end through the graft binary:
#  - the registry refuses a strategy whose keys break the rules, with one line naming the
#    file and the key, registers nothing of its table, and `strategy.name` = that plugin says
#    why it is not there;
#  - `-s strategy.NAME.KEY=V` works in every command (config, plugins, train, eval), in any
#    order with the -s that sets plugin_path, and the value set is the value the strategy reads;
#  - a second plugin of the same name is shadowed (its keys and defaults are not used).
# usage: strategy_keys.sh GRAFT PLUGIN_DIR SHADOW_DIR WORKDIR   (plugins: keys_plugin.c)
set -eu
G=$1; D1=$2; D2=$3; W=$4
rm -rf "$W"; mkdir -p "$W"; cd "$W"
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
printf 'plugin_path = "%s:%s";\n' "$D1" "$D2" >p.cfg

# ---- refusals -----------------------------------------------------------------------------
"$G" plugins -c p.cfg >list.txt 2>err.txt || fail "graft plugins exited non-zero"
expect_refused() { # NAME KEY-OR-WORDS: one line, naming the file and the key
  n=$(grep -c "^graft: $D1/graft-$1.so: refused: strategy '$1': " err.txt || true)
  [ "$n" = 1 ] || { cat err.txt; fail "graft-$1.so: $n refusal lines, expected 1"; }
  grep "^graft: $D1/graft-$1.so: refused: " err.txt | grep -qF "$2" ||
    { cat err.txt; fail "graft-$1.so: the refusal does not say '$2'"; }
  grep -q " $1 " list.txt && fail "$1 was refused and is listed"
  return 0
}
expect_refused bad-prefix "key 'train.bad_prefix_lr' is outside strategy.bad-prefix.*"
expect_refused bad-doc "key 'strategy.bad-doc.k' has no doc line"
expect_refused bad-default "config key 'strategy.bad-default.steps': default: expected an integer, got 'many'"
expect_refused bad-dup "config key 'strategy.bad-dup.k' is declared twice"
expect_refused bad-type "config key 'strategy.bad-type.k': unknown type 42"
expect_refused bad-count "config_key_count is -1"
[ "$(wc -l <err.txt)" -eq 6 ] || { cat err.txt; fail "expected exactly 6 refusals"; }
grep -q "^strategy  *keys-ok .* $D1/graft-keys-ok.so\$" list.txt || fail "keys-ok not listed"
grep -q "^strategy  *keys-ok .* $D2/graft-keys-ok.so\$" list.txt || fail "the shadowed keys-ok not listed"
ok "six strategies with broken key tables refused, one line each naming file and key"

# A refused table leaves nothing behind: bad-default's first key was fine, and is unknown.
if "$G" config -c p.cfg -s strategy.bad-default.ok=2 >/dev/null 2>err.txt; then
  fail "a key of a refused plugin was accepted"
fi
grep -q "unknown key 'strategy.bad-default.ok'" err.txt || { cat err.txt; fail "no unknown-key error"; }
# The core's key a plugin tried to declare is not declared either.
if "$G" config -c p.cfg -s train.bad_prefix_lr=1 >/dev/null 2>err.txt; then
  fail "train.bad_prefix_lr (declared by a refused plugin) was accepted"
fi
# Selecting a refused strategy names the refusal, not just "no such plugin".
if "$G" train -c p.cfg -s strategy.name=bad-default --run-dir r0 >/dev/null 2>err.txt; then
  fail "training with a refused strategy succeeded"
fi
[ "$(wc -l <err.txt)" -eq 1 ] || { cat err.txt; fail "the error is not one line"; }
grep -q "strategy plugin 'bad-default' was refused: $D1/graft-bad-default.so: refused: .*'strategy.bad-default.steps'" err.txt ||
  { cat err.txt; fail "selecting a refused strategy does not say why"; }
ok "refused tables register nothing; selecting a refused strategy says why"

# ---- -s strategy.NAME.KEY in every command --------------------------------------------------
# plugin_path itself set by -s, after the strategy key that needs it
"$G" config -s strategy.keys-ok.n=3 -s strategy.keys-ok.n=4 -s "plugin_path=$D1:$D2" >resolved.cfg 2>/dev/null ||
  fail "graft config -s strategy.keys-ok.n (plugin_path from -s) failed"
grep -q "^    n = 4;" resolved.cfg || { cat resolved.cfg; fail "the last override of strategy.keys-ok.n did not win"; }
"$G" config --reference -c p.cfg >ref.md 2>/dev/null
grep -q '^| `strategy.keys-ok.n` | int | `7` |' ref.md || fail "the reference does not show the first keys-ok's default"
[ "$(grep -c '^## Plugin `keys-ok`' ref.md)" = 1 ] || fail "keys-ok documented other than once"
grep -q 'bad-' ref.md && fail "a refused plugin's keys are in the reference"
"$G" plugins -c p.cfg -s strategy.keys-ok.b=false >/dev/null 2>&1 || fail "graft plugins -s strategy.keys-ok.b"
ok "graft config / plugins accept -s strategy.keys-ok.*; the first keys-ok owns the keys"

# The values reach the strategy (it reports what it reads).
report_has() { # RUN KEY VALUE
  grep -q "\"$2\": $3,\?\$" "$1/report.json" || { cat "$1/report.json"; fail "$1: $2 is not $3"; }
}
"$G" train -c p.cfg -s strategy.name=keys-ok --run-dir defaults 2>/dev/null || fail "train keys-ok (defaults)"
for kv in "n 7.0" "x 0.5" "b 1.0" "s_len 8.0" "names 2.0" "v1 2.5" "opt_set 0.0"; do
  report_has defaults $kv
done
"$G" train -c p.cfg -s strategy.name=keys-ok -s strategy.keys-ok.n=3 -s strategy.keys-ok.x=2 \
  -s strategy.keys-ok.b=false -s strategy.keys-ok.s=abc -s strategy.keys-ok.names=a,b,c \
  -s strategy.keys-ok.deep.v=1,4.5 -s strategy.keys-ok.opt=1 --run-dir set 2>/dev/null ||
  fail "graft train -s strategy.keys-ok.* failed"
for kv in "n 3.0" "x 2.0" "b 0.0" "s_len 3.0" "names 3.0" "v1 4.5" "opt_set 1.0"; do
  report_has set $kv
done
ok "graft train: defaults and every -s strategy.keys-ok.* value reach the strategy"

# Wrong type and unknown key: one line naming the key, nothing run.
if "$G" train -c p.cfg -s strategy.name=keys-ok -s strategy.keys-ok.n=many --run-dir bad1 2>err.txt; then
  fail "a wrong type was accepted"
fi
grep -q "^graft: -s strategy.keys-ok.n: expected an integer, got 'many'\$" err.txt || { cat err.txt; fail "type error"; }
if "$G" train -c p.cfg -s strategy.keys-ok.nope=1 --run-dir bad2 2>err.txt; then
  fail "an unknown strategy key was accepted"
fi
grep -q "unknown key 'strategy.keys-ok.nope'" err.txt || { cat err.txt; fail "unknown-key error"; }
[ -e bad1 ] || [ -e bad2 ] && fail "a refused command created its run directory"

# Keys in a file are validated by every command, and -s applies on top of the file.
cat >k.cfg <<CFG
plugin_path = "$D1:$D2";
strategy = { name = "keys-ok"; keys-ok = { n = 5; deep = { v = [3.0, 6.5]; }; }; };
CFG
"$G" config -c k.cfg >/dev/null 2>&1 || fail "graft config refused a file with strategy keys"
"$G" train -c k.cfg -s strategy.keys-ok.x=0.25 --run-dir file 2>/dev/null || fail "train -c k.cfg"
report_has file n 5.0; report_has file v1 6.5; report_has file x 0.25
printf 'strategy = { name = "keys-ok"; keys-ok = { n = "five"; }; };\nplugin_path = "%s";\n' "$D1" >bad.cfg
if "$G" config -c bad.cfg >/dev/null 2>err.txt; then fail "a file with a wrong strategy key type was accepted"; fi
grep -q "bad.cfg:1: strategy.keys-ok.n: expected an integer" err.txt || { cat err.txt; fail "file type error"; }
ok "strategy keys in files: validated by graft config/train, -s on top"

# A run directory's configuration (no -c): -s of a strategy key after the run's plugin_path.
"$G" train --resume file -s strategy.keys-ok.n=6 >/dev/null 2>err.txt && fail "resuming a run without checkpoint succeeded"
grep -q "unknown key" err.txt && { cat err.txt; fail "--resume -s strategy.keys-ok.n: unknown key"; }
grep -q "^graft: file: no checkpoint to resume from$" err.txt || { cat err.txt; fail "--resume did not reach the checkpoint"; }
ok "graft train --resume RUN -s strategy.keys-ok.n: the key is known from the run's plugin_path"
