#!/usr/bin/env bash
# The GPU figures of issue 4 in one pass (run on a CUDA machine from the repository root):
#   bash tests/benchmarks/gpu_check.sh OUT_DIR
# 1. the tests that need CUDA (sync-free PPO iteration, CUDA-graph update against the eager one,
#    compiled acting step, env equivalence);
# 2. `rl bench --device cuda`: env throughput, 16 seeds at once, PPO training steps/s at 4k-65k copies;
# 3. PPO wall time to a greedy 20-episode 475 on the torch-native CartPole on the GPU, large batches.
set -u
out=${1:-runs/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, gymnasium; print('torch', torch.__version__, 'gymnasium', gymnasium.__version__)"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests -k "cuda or never_syncs or graphed" 2>&1 | tail -8
timeout 300 python3 -m agents.cli bench --device cuda --only env,seeds,sps --out "$out/bench" 2>&1 | tail -40
for hp in '{"num_envs": 4096, "n_steps": 16, "batch_size": 16384, "n_epochs": 4, "learning_rate": 0.0025, "gamma": 0.99, "gae_lambda": 0.95}' \
          '{"num_envs": 1024, "n_steps": 16, "batch_size": 4096, "n_epochs": 4, "learning_rate": 0.001, "gamma": 0.99, "gae_lambda": 0.95}'; do
  echo "hp $hp"
  timeout 120 python3 tests/benchmarks/bench_pg_solve.py ppo CartPole-v1 --seeds 0-2 --budget 3000000 --backend torch \
      --device cuda --eval-every 65536 --hp "$hp" 2>&1 | tail -4
done
