#!/bin/bash
# Before/after speed, interleaved on one machine: "before" is the pre-restructure code ($BEFORE),
# "after" the working tree ($AFTER). Same commands, same settings.
# Usage: BEFORE=<checkout of the code before the restructure> AFTER=<this checkout> OUT=<empty dir>
#        MODEL=<dir from `rl pretrain-lm`> VENV=<venv with .[dev,trl,bench]> bash run.sh
set -e
. $VENV/bin/activate
cd $AFTER
OUT=$OUT
run() {  # name code args...
  local name=$1 code=$2; shift 2
  if [ "$code" = before ]; then PP=$BEFORE; else PP=$AFTER; fi
  echo "== $name ($code) $(date +%T)" >> $OUT/log.txt
  ( cd $PP && PYTHONPATH=$PP "$@" ) > $OUT/$name-$code.txt 2>&1
}
cat /proc/cpuinfo | grep "model name" | head -1 > $OUT/machine.txt
run env1 after  python -m agents.cli bench --only env --out $OUT/env1-after
run env1 before python -m agents.cli bench --only env --out $OUT/env1-before
run env2 before python -m agents.cli bench --only env --out $OUT/env2-before
run env2 after  python -m agents.cli bench --only env --out $OUT/env2-after
run ppo1 before python -m agents.cli bench --only ppo --out $OUT/ppo1-before
run ppo1 after  python -m agents.cli bench --only ppo --out $OUT/ppo1-after
run grpo1 after  python $AFTER/tests/benchmarks/bench_lm_grpo.py --model $MODEL --steps 60 --seeds 4 --threads 2 --out $OUT/grpo1-after
run grpo1 before python $BEFORE/tests/benchmarks/bench_lm_grpo.py --model $MODEL --steps 60 --seeds 4 --threads 2 --out $OUT/grpo1-before
run ppo2 after  python -m agents.cli bench --only ppo --out $OUT/ppo2-after
run ppo2 before python -m agents.cli bench --only ppo --out $OUT/ppo2-before
echo "done $(date +%T)" >> $OUT/log.txt
