#!/bin/sh
# `graft demo --quick` (the demo's orchestration on a miniature; its numbers mean nothing):
#  - from an empty directory: exit 0, every step run once (a log each, a line in times.tsv),
#    both tables, results.txt, three PNG plots; side by side each child got one thread;
#  - a second run: every step cached, the same tables;
#  - a broken tat.cfg: exit 1, one line naming the step and its log; the step running beside it
#    is waited for (its product exists), the failed step's does not; no child left behind;
#  - a failure with --jobs 1 starts nothing after it; repaired, the next run redoes it (and
#    --jobs 1 leaves the configs' thread count alone);
#  - SIGTERM to the demo stops its running steps (no child left, no product) and exits 143;
#  - --jobs 0 / x, a full demo on a quick directory: one-line errors.
# Usage: demo.sh GRAFT CONFIGS WORKDIR
set -eu
G=$1; CFG=$2; W=$3
rm -rf "$W"; mkdir -p "$W"; cd "$W"; W=$(pwd -P)
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok   $*"; }
STEPS="synth tokenizer_opt tokenizer_llama pretrain_vision pretrain_opt_deep pretrain_opt_large pretrain_opt_small
pretrain_llama_small surrogate_analyze surrogate_build source scratch_deep_s1 scratch_large_s1 scratch_llama_s1
surrogate_s1 tas_s1 tat_s1"
N=17
# processes working in directory $1 (every step runs in its demo directory)
procs_in() {
  for p in /proc/[0-9]*; do
    c=$(readlink "$p/cwd" 2>/dev/null) || continue
    case "$c" in "$1"|"$1"/*) echo "${p#/proc/}";; esac
  done
}
one_line_error() { # file regex
  [ "$(wc -l < "$1")" -eq 1 ] || { cat "$1"; fail "$1: expected one line"; }
  grep -Eq "$2" "$1" || { cat "$1"; fail "$1: does not match $2"; }
}
tables() { sed -n '/^Speed-up/,/^training FLOPs/p' "$1"; }

# ---- option errors: one line, non-zero, nothing created
for bad in 0 x; do
  if "$G" demo --quick --dir e --jobs $bad >e.out 2>e.err; then fail "--jobs $bad accepted"; fi
  one_line_error e.err "^graft: --jobs: '$bad' is not 1\.\.[0-9]+$"
  [ ! -s e.out ] && [ ! -e e ] || fail "--jobs $bad: output or directory"
done
ok "--jobs 0 / x: one-line errors"

# ---- from an empty directory
"$G" demo --quick --dir d1 --configs "$CFG" >run1.out 2>run1.err || { cat run1.out run1.err; fail "first run"; }
[ ! -s run1.err ] || { cat run1.err; fail "first run wrote to stderr"; }
for s in $STEPS; do
  grep -Eq "^  $s +[0-9]+\.[0-9] s$" run1.out || { cat run1.out; fail "step $s: no time line"; }
  [ -s d1/logs/$s.log ] || fail "step $s: no log"
  grep -q "^$s	[0-9.]*$" d1/logs/times.tsv || fail "step $s: not in times.tsv"
done
[ "$(wc -l < d1/logs/times.tsv)" -eq $N ] || fail "times.tsv: not $N lines"
grep -Eq "^steps run now: $N, [0-9.]+ s of step time in [0-9.]+ s wall \(2 at once\)$" run1.out || fail "no summary line"
grep -Eq "^demo: [0-9.]+ s wall$" run1.out || fail "no wall time"
grep -q "^Speed-up (val, mean of 1 seed" run1.out || fail "no speed-up table"
grep -q "^Surrogate grafting on" run1.out || fail "no surrogate table"
for t in "^TaS OPT" "^TaT OPT" "^CIDEr " "^training FLOPs"; do grep -q "$t" d1/results.txt || fail "results.txt: no '$t'"; done
for p in tas tat surrogate; do
  [ "$(head -c 8 d1/plots/$p.png | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "plots/$p.png is not a PNG"
done
# side by side, every child that reads a configuration runs with one thread (common.inc says 2)
for r in source scratch_large_s1 tas_s1 tat_s1 surrogate_s1; do
  grep -q "threads = 1;" d1/runs/$r/config.cfg || fail "$r: not run with backend.threads=1"
done
# one seed: TaS compares with the one scratch seed (the config lists two)
grep -q "seeds" d1/logs/tas_s1.log || fail "tas_s1: no speed-up against scratch"
ok "first run: $N steps, both tables, results.txt, 3 PNGs, a log each, one thread per child"

# ---- a second run re-reports
cp d1/results.txt results1.txt
"$G" demo --quick --dir d1 >run2.out 2>run2.err || { cat run2.out run2.err; fail "second run"; }
[ "$(grep -Ec '^  [a-z0-9_]+ +cached$' run2.out)" -eq $N ] || { cat run2.out; fail "second run: not every step cached"; }
grep -q "^every step was cached" run2.out || fail "second run: no 'every step was cached'"
[ "$(wc -l < d1/logs/times.tsv)" -eq $N ] || fail "second run: times.tsv grew"
tables run1.out > t1; tables run2.out > t2
[ -s t1 ] && cmp -s t1 t2 || { diff t1 t2; fail "second run: other tables"; }
cmp -s results1.txt d1/results.txt || fail "second run: results.txt differs"
ok "second run: every step cached, the same tables"

# ---- a full demo must not reuse the miniature's products
if "$G" demo --dir d1 >m.out 2>m.err; then fail "full demo ran in a quick directory"; fi
one_line_error m.err "^graft: d1: holds a quick"
ok "full demo on a quick directory: one-line error"

# ---- a broken step: tat_s1 fails at once while surrogate runs beside it
cp -a d1 d2
rm -rf d2/runs/tat_s1 d2/runs/surrogate_s1
echo "no_such_key = 1;" >> d2/configs/tat.cfg
if "$G" demo --quick --dir d2 >b.out 2>b.err; then fail "broken tat.cfg: exit 0"; fi
one_line_error b.err "^graft: demo: step tat_s1 failed \(d2/logs/tat_s1\.log\): .*no_such_key"
grep -q "no_such_key" d2/logs/tat_s1.log || fail "tat_s1.log: no error"
grep -Eq "^  tat_s1 +failed after" b.out || fail "no failure line"
[ -f d2/runs/surrogate_s1/report.json ] || fail "the step running beside the failure was not waited for"
[ ! -e d2/runs/tat_s1/report.json ] || fail "the failed step has a product"
[ -z "$(procs_in "$W/d2")" ] || fail "children left behind: $(procs_in "$W/d2")"
ok "broken tat.cfg: one line naming tat_s1 and its log, surrogate finished, no child left"

# ---- with one slot, nothing starts after a failure
cp -a d1 d3
rm -rf d3/runs/surrogate_s1 d3/runs/tas_s1 d3/runs/tat_s1 d3/logs/tas_s1.log d3/logs/tat_s1.log
echo "no_such_key = 1;" >> d3/configs/surrogate.cfg
if "$G" demo --quick --dir d3 --jobs 1 >f.out 2>f.err; then fail "broken surrogate.cfg: exit 0"; fi
one_line_error f.err "^graft: demo: step surrogate_s1 failed \(d3/logs/surrogate_s1\.log\)"
[ ! -e d3/logs/tas_s1.log ] && [ ! -e d3/logs/tat_s1.log ] || fail "steps started after the failure"
ok "--jobs 1: nothing starts after a failed step"
# repaired, the next run redoes the failed step and the ones after it; --jobs 1 adds no thread override
cp d1/configs/surrogate.cfg d3/configs/surrogate.cfg
"$G" demo --quick --dir d3 --jobs 1 >g.out 2>g.err || { cat g.out g.err; fail "repaired run"; }
for s in surrogate_s1 tas_s1 tat_s1; do grep -Eq "^  $s +[0-9]+\.[0-9] s$" g.out || fail "repaired run: $s not run"; done
grep -q "^steps run now: 3, .* (1 at once)$" g.out || fail "repaired run: not 3 steps, 1 at once"
for r in surrogate_s1 tas_s1 tat_s1; do grep -q "threads = 2;" d3/runs/$r/config.cfg || fail "--jobs 1: $r's threads changed"; done
ok "repaired: the failed step and those after it run; --jobs 1 keeps the configs' threads"

# ---- SIGTERM: the running steps stop with the demo
cp -a d1 d4
rm -rf d4/runs/scratch_deep_s1 d4/runs/scratch_large_s1 d4/logs/scratch_deep_s1.log d4/logs/scratch_large_s1.log
"$G" demo --quick --dir d4 >k.out 2>k.err &
pid=$!
i=0
# a step's log is created just before its child forks; each of these steps runs for seconds
until [ -e d4/logs/scratch_large_s1.log ] && [ -e d4/logs/scratch_deep_s1.log ]; do
  i=$((i + 1)); [ $i -lt 1200 ] || { kill $pid; fail "SIGTERM: the steps never started"; }
  sleep 0.05
done
[ "$(procs_in "$W/d4" | wc -l)" -ge 3 ] || fail "SIGTERM: expected the demo and two steps running"
kill -TERM $pid
rc=0; wait $pid || rc=$?
[ $rc -eq 143 ] || { cat k.out k.err; fail "SIGTERM: exit $rc, not 143"; }
one_line_error k.err "^graft: demo: stopped by SIGTERM"
[ -z "$(procs_in "$W/d4")" ] || fail "SIGTERM: children left behind: $(procs_in "$W/d4")"
[ ! -e d4/runs/scratch_deep_s1/report.json ] && [ ! -e d4/runs/scratch_large_s1/report.json ] \
  || fail "SIGTERM: an interrupted step has a product"
ok "SIGTERM: both running steps stopped, exit 143, no child left"
echo "demo.quick: all checks passed"
