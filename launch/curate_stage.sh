#!/usr/bin/env bash
# One step of launch/curate.sh: `python -m data_tools.curate` with the given Hydra overrides.
# As an array task it takes shards SLURM_ARRAY_TASK_ID::SLURM_ARRAY_TASK_COUNT of the
# shard-parallel stages (select, filter, clean, decontam, mine); as a single job, all of them.
# Stages resume from their done markers, so a requeued task redoes only unfinished shards.
#SBATCH --job-name=rexbert-curate
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --kill-on-invalid-dep=yes
#SBATCH --output=logs/%x-%A_%a.out
set -euo pipefail
cd "${REXBERT_HOME:-${SLURM_SUBMIT_DIR:-.}}"
echo "[rexbert] $(date +%FT%T) curate task ${SLURM_ARRAY_TASK_ID:-0}/${SLURM_ARRAY_TASK_COUNT:-1}: $*"
exec "${REXBERT_PYTHON:-python}" -m data_tools.curate --preset "${REXBERT_CURATE_PRESET:-ecommerce}" "$@" progress=false \
  shard_index="${SLURM_ARRAY_TASK_ID:-0}" num_shards="${SLURM_ARRAY_TASK_COUNT:-1}"
