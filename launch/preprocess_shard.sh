#!/usr/bin/env bash
# One array task of launch/preprocess.sh: preprocess input shard number SLURM_ARRAY_TASK_ID
# (a line of WORK/inputs.txt) into WORK/<task id>. Submitted by launch/preprocess.sh.
#SBATCH --job-name=rexbert-preprocess
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail
cd "${REXBERT_HOME:-${SLURM_SUBMIT_DIR:-.}}"
work=$1
shard=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$work/inputs.txt")
mapfile -t options <"$work/options.txt"
out=$work/$(printf %05d "$SLURM_ARRAY_TASK_ID")
echo "[rexbert] array task $SLURM_ARRAY_TASK_ID: $shard -> $out"
# --overwrite: a requeued task redoes its shard from scratch (the CLI writes atomically)
exec "${REXBERT_PYTHON:-python}" -m data_tools.preprocess "$shard" -o "$out" \
  --workers "${SLURM_CPUS_PER_TASK:-1}" --no-progress --overwrite "${options[@]+"${options[@]}"}"
