#!/usr/bin/env bash
# The merge job of launch/preprocess.sh: concatenate every shard's dataset, in input order,
# into one prefix. Runs after the whole array succeeded (afterok).
#SBATCH --job-name=rexbert-merge
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=02:00:00
#SBATCH --output=logs/%x-%j.out
set -euo pipefail
cd "${REXBERT_HOME:-${SLURM_SUBMIT_DIR:-.}}"
work=$1 output=$2
prefixes=()
count=$(wc -l <"$work/inputs.txt")
for ((i = 0; i < count; i++)); do
  # each task's folder holds one dataset (x.idx, and x_spans.idx that merge folds in)
  prefixes+=("$work/$(printf %05d "$i")"/*.idx)
done
echo "[rexbert] merging $count shards -> $output"
exec "${REXBERT_PYTHON:-python}" -m data_tools.preprocess merge --overwrite -o "$output" "${prefixes[@]}"
